/**
 * V8 settings for a long-running daemon that is idle almost all of the time. Its hot code is a few
 * heartbeats a second, where the optimizing compilers (Maglev, Turbofan) gain nothing measurable but
 * cost memory: their code, their background threads' malloc arenas and their working memory made each
 * idle `ballot run` some 6 MB larger (bench/idle.ts: 63 → 57 MB a node, no more CPU). So a daemon runs
 * its JavaScript in the interpreter and the baseline compiler (Sparkplug) only.
 *
 * Set from the command's action, before the node starts; a `--max-opt` given to node itself
 * (NODE_OPTIONS or the command line) is left alone.
 */
import { setFlagsFromString } from 'node:v8'

export function tuneV8ForIdleDaemon(): void {
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)]
  if (given.some((a) => a.startsWith('--max-opt'))) return
  setFlagsFromString('--max-opt=1')
}
