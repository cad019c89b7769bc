/**
 * `ballot run`: join a cluster and serve the HTTP API, next to the services that need a leader.
 * SIGTERM (or Ctrl-C) hands leadership over before the process exits.
 */
import type { Command } from 'commander'
import { startNode } from '../../daemon/node.js'
import { tuneV8ForIdleDaemon } from '../../daemon/v8-tuning.js'
import { addElectionFlags, loadConfigAndLogger, onShutdown } from './election-flags.js'

export function registerRun(program: Command): void {
  addElectionFlags(
    program
      .command('run')
      .description(
        'Join a cluster (raft or bully) or a store election (--store) and serve GET /leader, /status, /metrics, /events',
      ),
  ).action(async (flags: Record<string, unknown>) => {
    const { config, log } = loadConfigAndLogger(flags, { loneDefault: true })
    tuneV8ForIdleDaemon()
    const node = await startNode(config, log)
    if (config.lone) {
      // Said in plain words whatever the log format: this is what a first-time user sees.
      const http = node.httpAddress ?? config.http
      process.stderr.write(
        `ballot: a one-node ${config.algo} group on ${config.nodes[0]?.replace(/^.*=/, '')} (no --nodes given); ` +
          `HTTP API at http://${http}/ (try: ballot leader --http ${http}); Ctrl-C stops it\n`,
      )
    }
    onShutdown(log, async () => {
      await node.stop()
      return 0
    })
  })
}
