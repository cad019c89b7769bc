/** The election flags shared by `ballot run` and `ballot exec`, and the start-up both do. */
import type { Command } from 'commander'
import { type DaemonConfig, ELECTION_FLAGS, loadDaemonConfig } from '../../daemon/config.js'
import { createLogger, type Logger } from '../../daemon/log.js'

export function addElectionFlags(cmd: Command): Command {
  for (const [flag, help] of ELECTION_FLAGS) cmd.option(flag, help)
  return cmd
}

export function loadConfigAndLogger(
  flags: Record<string, unknown>,
  opts: { loneDefault?: boolean } = {},
): { config: DaemonConfig; log: Logger } {
  const config = loadDaemonConfig(flags, process.env, opts)
  return { config, log: createLogger({ format: config.logFormat, level: config.logLevel }) }
}

/** Runs `onStop` once on SIGTERM or SIGINT, then exits with the code it returns. */
export function onShutdown(log: Logger, onStop: () => Promise<number>): void {
  let stopping = false
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'shutting down')
    onStop()
      .then((code) => process.exit(code))
      .catch((err: unknown) => {
        log.error({ err: (err as Error).message }, 'shutdown failed')
        process.exit(1)
      })
  }
  process.on('SIGTERM', handler)
  process.on('SIGINT', handler)
}
