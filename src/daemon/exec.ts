/**
 * `ballot exec`: run a command only while this node leads, in the manner of `consul lock`, with one
 * promise more: two copies never run at once anywhere in the cluster, even when ballot is SIGKILLed or
 * its host is cut off or paused.
 *
 *   - The child starts only while isLeader() is true, with BALLOT_TOKEN (the fencing token) and
 *     BALLOT_LEADER_ID in its environment.
 *   - It runs under `setpriv --pdeathsig KILL`: if ballot dies, even by SIGKILL, the kernel kills it.
 *     Another node can lead only once the dead leader's lease has surely run out (raft waits out the
 *     promises its voters made), by which time the child is long gone.
 *   - Each leadership has its own token. If the token changes while this node stays leader (bully
 *     claiming again with a larger epoch after a partition heals), the old leadership is over: the
 *     child, whose BALLOT_TOKEN is no longer current, is killed as on any loss of leadership, and once
 *     it is gone a new child starts with the new token. A restart rather than letting it run on: the
 *     token is in its environment and cannot be changed under it, and a resource fencing on tokens may
 *     already refuse the old one.
 *   - While leading, a watchdog follows the lease: if heartbeats stop being acknowledged (a partition,
 *     a pause), the child gets SIGTERM when half the lease is left and SIGKILL at a quarter, so it is
 *     dead before the lease lapses and before anyone else may lead. If leadership is lost anyway, the
 *     child is killed at once.
 *   - Giving leadership up on purpose (SIGTERM/SIGINT to ballot, POST /resign) stops the child first,
 *     with SIGTERM and then SIGKILL after the grace period, and only then hands over.
 *   - A child that exits on its own while this node leads is restarted after a short delay, or with
 *     `exitWithChild` ballot leaves the cluster and exits with the child's exit code.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import type { Disposable, LeaderInfo } from '../election.js'
import type { DaemonElection } from './elections.js'
import type { Logger } from './log.js'

export interface LeaderExecOptions {
  election: DaemonElection
  command: string
  args: string[]
  /** SIGTERM → SIGKILL grace when leadership is given up on purpose (ms). Default 5000. */
  graceMs?: number
  /** Exit with the child's code when it exits while leading, instead of restarting it. */
  exitWithChild?: boolean
  /** Delay before restarting a child that exited while leading (ms). Default 1000. */
  restartDelayMs?: number
  log: Logger
}

const hasSetpriv = (() => {
  let known: boolean | undefined
  return () => {
    known ??= spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0
    return known
  }
})()

export class LeaderExec {
  private readonly opts: LeaderExecOptions
  private child: ChildProcess | undefined
  private childExited: Promise<number | null> | undefined
  private stopping = false
  private subscription: Disposable | undefined
  private resolveExit: ((code: number) => void) | undefined
  private readonly exit: Promise<number>
  /** The largest lease remainder seen: the lease's length, as renewed in practice. */
  private fullLease = 0

  constructor(opts: LeaderExecOptions) {
    this.opts = opts
    this.exit = new Promise((resolve) => {
      this.resolveExit = resolve
    })
    if (!hasSetpriv())
      opts.log.warn('setpriv not found (util-linux): the command may outlive ballot if ballot is SIGKILLed')
  }

  /** Starts supervising; resolves with the exit code ballot should exit with (exitWithChild), else on stop. */
  run(): Promise<number> {
    this.subscription = this.opts.election.whileLeader((signal, lead) => this.lead(signal, lead))
    return this.exit
  }

  /** Forwards a signal (SIGHUP, SIGUSR1, ...) to the running child. */
  forward(signal: NodeJS.Signals): void {
    if (this.child?.exitCode === null) this.child.kill(signal)
  }

  /** Stops the child gracefully (SIGTERM, then SIGKILL after the grace) and waits until it is gone. */
  async stopChild(): Promise<void> {
    const child = this.child
    const exited = this.childExited
    if (!child || !exited || child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const grace = this.opts.graceMs ?? 5000
    const timer = setTimeout(() => child.kill('SIGKILL'), grace)
    await exited
    clearTimeout(timer)
  }

  /** Leaves for good: stop the child, stop supervising. */
  async stop(code = 0): Promise<void> {
    this.stopping = true
    this.subscription?.dispose()
    await this.stopChild()
    this.resolveExit?.(code)
  }

  private async lead(signal: AbortSignal, lead: LeaderInfo): Promise<void> {
    // A new leadership can begin the instant the last one ends (a new token while leading: bully
    // claiming again). The last one's child was killed when it ended, but must be gone before a child
    // with the new token starts: never two copies at once, not even for a moment on one host.
    await this.childExited
    while (!signal.aborted && !this.stopping) {
      if (!this.opts.election.isLeader()) return
      const code = await this.runChild(signal, lead)
      if (signal.aborted || this.stopping) return
      if (this.opts.exitWithChild) {
        this.opts.log.info({ code }, 'exec: the command exited; leaving with its exit code')
        await this.stop(code ?? 1)
        return
      }
      this.opts.log.warn({ code }, 'exec: the command exited while leading; restarting it')
      await new Promise((r) => setTimeout(r, this.opts.restartDelayMs ?? 1000))
    }
  }

  private runChild(signal: AbortSignal, lead: LeaderInfo): Promise<number | null> {
    const { command, args, log } = this.opts
    const [cmd, argv] = hasSetpriv()
      ? ['setpriv', ['--pdeathsig', 'KILL', '--', command, ...args]]
      : [command, args]
    const child = spawn(cmd, argv, {
      stdio: 'inherit',
      env: { ...process.env, BALLOT_TOKEN: lead.token.toString(), BALLOT_LEADER_ID: lead.id },
    })
    this.child = child
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code, sig) => resolve(code ?? (sig ? 128 : null)))
      child.once('error', (err) => {
        log.error({ err: err.message }, 'exec: cannot start the command')
        resolve(127)
      })
    })
    this.childExited = exited
    log.info({ pid: child.pid, token: lead.token.toString() }, 'exec: started the command')

    // Lost leadership (the lease lapsed, or another leader): nobody waits for a grace period now.
    const onAbort = () => {
      if (!this.stopping) child.kill('SIGKILL')
    }
    signal.addEventListener('abort', onAbort, { once: true })
    let termSent = false
    const watchdog = setInterval(() => {
      const left = this.opts.election.leaseRemainingMs()
      if (left === undefined) return
      this.fullLease = Math.max(this.fullLease, left)
      if (left < this.fullLease / 4) child.kill('SIGKILL')
      else if (left < this.fullLease / 2 && !termSent) {
        termSent = true
        log.warn(
          { leaseLeftMs: Math.round(left) },
          'exec: the lease is not being renewed; stopping the command',
        )
        child.kill('SIGTERM')
      }
    }, 5)
    return exited.finally(() => {
      clearInterval(watchdog)
      signal.removeEventListener('abort', onAbort)
      log.info({ pid: child.pid }, 'exec: the command stopped')
    })
  }
}
