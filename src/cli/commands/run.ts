/**
 * `ballot run`: join a cluster and serve the HTTP API, next to the services that need a leader.
 * SIGTERM (or Ctrl-C) hands leadership over before the process exits.
 */
import type { Command } from 'commander'
import { startNode } from '../../daemon/node.js'
import { addElectionFlags, loadConfigAndLogger, onShutdown } from './election-flags.js'

export function registerRun(program: Command): void {
  addElectionFlags(
    program
      .command('run')
      .description(
        'Join a cluster (raft or bully) or a store election (--store) and serve GET /leader, /status, /metrics, /events',
      ),
  ).action(async (flags: Record<string, unknown>) => {
    const { config, log } = loadConfigAndLogger(flags)
    const node = await startNode(config, log)
    onShutdown(log, async () => {
      await node.stop()
      return 0
    })
  })
}
