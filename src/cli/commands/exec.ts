/**
 * `ballot exec [election flags] -- CMD ARGS`: run CMD only while this node leads (see daemon/exec.ts for
 * what is promised). SIGTERM/SIGINT stop CMD first, then hand leadership over; SIGHUP, SIGUSR1 and
 * SIGUSR2 are passed on to CMD.
 */
import type { Command } from 'commander'
import { LeaderExec } from '../../daemon/exec.js'
import { startNode } from '../../daemon/node.js'
import { tuneV8ForIdleDaemon } from '../../daemon/v8-tuning.js'
import { InvalidOptionsError } from '../../errors.js'
import { addElectionFlags, loadConfigAndLogger, onShutdown } from './election-flags.js'

export function registerExec(program: Command): void {
  addElectionFlags(
    program
      .command('exec')
      .description('Run a command only while this node leads (like consul lock); never two copies at once')
      .argument('<command...>', 'the command and its arguments, after --')
      .option('--grace <ms>', 'SIGTERM to SIGKILL grace when stopping the command on purpose', '5000')
      .option('--exit-with-child', 'exit with the command exit code instead of restarting it'),
  ).action(async (command: string[], flags: Record<string, unknown>) => {
    const grace = Number(flags.grace)
    if (!Number.isInteger(grace) || grace < 0)
      throw new InvalidOptionsError('--grace', `must be a whole number of ms, got "${flags.grace}"`)
    const { grace: _g, exitWithChild, ...electionFlags } = flags
    const { config, log } = loadConfigAndLogger(electionFlags)
    tuneV8ForIdleDaemon()
    let exec: LeaderExec | undefined
    const node = await startNode(config, log, { beforeResign: () => exec?.stopChild() ?? Promise.resolve() })
    exec = new LeaderExec({
      election: node.election,
      command: command[0] as string,
      args: command.slice(1),
      graceMs: grace,
      exitWithChild: exitWithChild === true,
      log,
    })
    for (const sig of ['SIGHUP', 'SIGUSR1', 'SIGUSR2'] as const) process.on(sig, () => exec?.forward(sig))
    let shuttingDown = false
    onShutdown(log, async () => {
      shuttingDown = true
      await exec?.stop()
      await node.stop()
      return 0
    })
    const code = await exec.run()
    if (shuttingDown) return // the shutdown handler stops the node and exits
    await node.stop()
    process.exit(code)
  })
}
