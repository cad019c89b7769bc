/**
 * The processes of `ballot demo`: one `ballot run` per node, each with its own data directory (so that a
 * restarted node keeps its term and vote, as a real one would) and an HTTP token that only the demo
 * knows, passed in the environment (never on a command line, where `ps` would show it). Every process
 * is tracked by PID; `stop()` ends each one, paused ones included.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import type { DemoAction, DemoControls, DemoNodeInfo } from '../../server/dashboard/demo.js'

export interface DemoMember {
  id: string
  /** Cluster port on 127.0.0.1. */
  port: number
  /** HTTP port on 127.0.0.1. */
  http: number
}

interface Proc {
  member: DemoMember
  child: ChildProcess | undefined
  state: DemoNodeInfo['state']
}

/** See the module comment. */
export class DemoCluster implements DemoControls {
  private readonly procs: Proc[]

  /**
   * @param members the nodes, with their ports
   * @param opts timing profile, the directory for data directories, the nodes' HTTP token, and a
   *   callback for every change of a process's state
   */
  constructor(
    members: DemoMember[],
    private readonly opts: { timing: string; dir: string; token: string; onChange?: () => void },
  ) {
    this.procs = members.map((member) => ({ member, child: undefined, state: 'exited' }))
  }

  /** Starts every node. */
  startAll(): void {
    for (const p of this.procs) this.spawn(p)
  }

  /** Every node, with its process as it is now. */
  nodes(): DemoNodeInfo[] {
    return this.procs.map((p) => ({
      id: p.member.id,
      http: `127.0.0.1:${p.member.http}`,
      pid: p.child?.pid,
      state: p.state,
    }))
  }

  /** Kills (SIGKILL), pauses (SIGSTOP), resumes (SIGCONT), restarts node `id`, or asks it to resign. */
  async act(id: string, action: DemoAction): Promise<string> {
    const p = this.procs.find((x) => x.member.id === id)
    if (!p) throw new Error(`no node ${id}`)
    const pid = p.child?.pid
    const alive = p.state === 'running' || p.state === 'paused'
    switch (action) {
      case 'kill':
        if (!alive) throw new Error(`${id} is not running`)
        this.set(p, 'killed')
        p.child?.kill('SIGKILL')
        return `killed with SIGKILL (pid ${pid})`
      case 'pause':
        if (p.state !== 'running') throw new Error(`${id} is not running`)
        p.child?.kill('SIGSTOP')
        this.set(p, 'paused')
        return `paused with SIGSTOP (pid ${pid})`
      case 'resume':
        if (p.state !== 'paused') throw new Error(`${id} is not paused`)
        p.child?.kill('SIGCONT')
        this.set(p, 'running')
        return `resumed with SIGCONT (pid ${pid})`
      case 'restart': {
        if (alive) {
          this.set(p, 'killed')
          await this.end(p, 'SIGKILL')
        }
        this.spawn(p)
        return `restarted as pid ${p.child?.pid}`
      }
      case 'resign': {
        if (p.state !== 'running') throw new Error(`${id} is not running`)
        const res = await fetch(`http://127.0.0.1:${p.member.http}/resign`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${this.opts.token}` },
          signal: AbortSignal.timeout(5000),
        })
        const said = (await res.text()).trim()
        if (!res.ok) throw new Error(said)
        return said
      }
    }
  }

  /** Ends every process (SIGTERM, so leaders hand over; SIGKILL after 3 s) and waits for each. */
  async stop(): Promise<void> {
    await Promise.all(
      this.procs.map(async (p) => {
        const paused = p.state === 'paused'
        this.set(p, 'exited')
        if (paused) p.child?.kill('SIGCONT')
        await this.end(p, 'SIGTERM')
      }),
    )
  }

  private spawn(p: Proc): void {
    const list = this.procs.map((x) => `${x.member.id}=127.0.0.1:${x.member.port}`).join(',')
    const env = { ...process.env, BALLOT_HTTP_TOKEN: this.opts.token }
    // This very program again (the bundle, or tsc's output under a loader): argv[1] with the same node
    // flags, so the demo works however ballot was started.
    const child = spawn(
      process.execPath,
      [
        ...process.execArgv,
        process.argv[1] as string,
        'run',
        '--id',
        p.member.id,
        '--nodes',
        list,
        '--http',
        `127.0.0.1:${p.member.http}`,
        '--timing',
        this.opts.timing,
        '--data-dir',
        join(this.opts.dir, p.member.id),
        '--log-format',
        'json',
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'ignore', 'inherit'], env },
    )
    p.child = child
    this.set(p, 'running')
    child.once('exit', () => {
      // A restart replaced this child already: its exit is old news.
      if (p.child !== child) return
      if (p.state === 'running' || p.state === 'paused') this.set(p, 'exited')
    })
  }

  /** Sends `signal` (SIGKILL after 3 s) and resolves when the process is gone. */
  private end(p: Proc, signal: NodeJS.Signals): Promise<void> {
    const child = p.child
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
    return new Promise<void>((resolve) => {
      child.once('exit', () => resolve())
      child.kill(signal)
      if (signal !== 'SIGKILL') setTimeout(() => child.kill('SIGKILL'), 3000).unref()
    })
  }

  private set(p: Proc, state: DemoNodeInfo['state']): void {
    p.state = state
    this.opts.onChange?.()
  }
}
