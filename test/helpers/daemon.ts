/**
 * Real `ballot run` / `ballot exec` processes (the built CLI) for daemon tests: start, query their HTTP
 * API, kill by PID. `close()` kills everything started here and removes every temporary directory.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePorts, waitFor } from './raft-cluster.js'

/** The built CLI; BALLOT_CLI names another build (a bench comparing before and after, say). */
export const CLI = process.env.BALLOT_CLI ?? new URL('../../dist/cli/main.js', import.meta.url).pathname

export class DaemonProc {
  readonly child: ChildProcess
  readonly logs: Array<Record<string, unknown>> = []
  exited = false
  private buffer = ''

  constructor(
    readonly name: string,
    readonly http: string,
    args: string[],
    /** Flags for node itself (`--cpu-prof`, say), before the CLI's path. */
    nodeArgs: string[] = [],
  ) {
    this.child = spawn(process.execPath, [...nodeArgs, CLI, ...args], {
      stdio: ['ignore', 'inherit', 'pipe'],
    })
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString()
      let nl = this.buffer.indexOf('\n')
      while (nl >= 0) {
        const line = this.buffer.slice(0, nl)
        this.buffer = this.buffer.slice(nl + 1)
        try {
          this.logs.push(JSON.parse(line) as Record<string, unknown>)
        } catch {
          process.stderr.write(`[${name}] ${line}\n`)
        }
        nl = this.buffer.indexOf('\n')
      }
    })
    this.child.once('exit', () => {
      this.exited = true
    })
  }

  get pid(): number {
    return this.child.pid ?? -1
  }

  async get(path: string, headers: Record<string, string> = {}) {
    const res = await fetch(`http://${this.http}${path}`, { headers, signal: AbortSignal.timeout(20_000) })
    return { status: res.status, body: await res.text(), headers: res.headers }
  }

  /** GET /leader, or undefined while the node is not answering. */
  async leader(): Promise<{ status: number; body: string } | undefined> {
    try {
      return await this.get('/leader')
    } catch {
      return undefined
    }
  }

  async leaderJson(): Promise<{ id: string; address: string; token: string } | undefined> {
    try {
      const r = await this.get('/leader', { Accept: 'application/json' })
      return r.status === 200 ? JSON.parse(r.body) : undefined
    } catch {
      return undefined
    }
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.exited) process.kill(this.pid, signal)
  }

  async waitExit(timeoutMs = 30_000): Promise<void> {
    await waitFor(`exit of ${this.name}`, () => this.exited, timeoutMs)
  }
}

/** Polls an async probe until it returns something other than undefined/false (see waitFor's deadline). */
export async function waitForAsync<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

export interface DaemonClusterOptions {
  /**
   * The timing profile every node runs with (default 'fast'). A test that is not about speed and needs
   * a leader that stays put on a loaded machine uses 'default': 'fast' lets a 45 ms stall of the leader's
   * event loop end its lease.
   */
  timing?: 'fast' | 'default'
}

export class DaemonCluster {
  readonly procs = new Map<string, DaemonProc>()
  readonly dir = mkdtempSync(join(tmpdir(), 'ballot-daemon-'))
  members: Array<{ id: string; port: number; http: number }> = []
  timing: 'fast' | 'default' = 'fast'

  static async create(size: number, opts: DaemonClusterOptions = {}): Promise<DaemonCluster> {
    const c = new DaemonCluster()
    c.timing = opts.timing ?? 'fast'
    const ports = await freePorts(size * 2)
    c.members = Array.from({ length: size }, (_, i) => ({
      id: `n${i + 1}`,
      port: ports[2 * i] as number,
      http: ports[2 * i + 1] as number,
    }))
    return c
  }

  get nodes(): string {
    return this.members.map((m) => `${m.id}=127.0.0.1:${m.port}`).join(',')
  }

  /** Starts `ballot <command>` for member `id` with the cluster flags, plus `extra` arguments. */
  start(
    id: string,
    extra: string[] = [],
    command: 'run' | 'exec' = 'run',
    tail: string[] = [],
    nodeArgs: string[] = [],
  ): DaemonProc {
    const m = this.members.find((x) => x.id === id)
    if (!m) throw new Error(`no member ${id}`)
    const args = [
      command,
      '--id',
      id,
      '--nodes',
      this.nodes,
      '--http',
      `127.0.0.1:${m.http}`,
      '--timing',
      this.timing,
      '--log-format',
      'json',
      '--data-dir',
      join(this.dir, id),
      ...extra,
      ...(tail.length ? ['--', ...tail] : []),
    ]
    const p = new DaemonProc(id, `127.0.0.1:${m.http}`, args, nodeArgs)
    this.procs.set(id, p)
    return p
  }

  live(): DaemonProc[] {
    return [...this.procs.values()].filter((p) => !p.exited)
  }

  /** The leader (id, token) every given node names over HTTP, once they all agree. */
  async agreed(among: DaemonProc[] = this.live()) {
    const seen = await Promise.all(among.map((p) => p.leaderJson()))
    const first = seen[0]
    if (!first || seen.some((s) => s?.id !== first.id || s?.token !== first.token)) return undefined
    return { id: first.id, token: Number(first.token), address: first.address }
  }

  async waitForAgreement(among?: () => DaemonProc[], timeoutMs = 60_000) {
    return waitForAsync('an agreed leader over HTTP', () => this.agreed(among?.()), timeoutMs)
  }

  /** What every ballot said (time, message, and whether it led), oldest first: for failure messages. */
  history(): string {
    const out: string[] = []
    for (const p of this.procs.values()) {
      out.push(`ballot ${p.name} (pid ${p.pid}${p.exited ? ', exited' : ''}):`)
      for (const l of p.logs) {
        const other = l.pid !== p.pid ? ` (pid ${l.pid})` : ''
        const leading = l.isLeader !== undefined ? ` isLeader=${l.isLeader}` : ''
        out.push(`  ${l.time} ${l.msg}${other}${leading}`)
      }
    }
    return out.join('\n')
  }

  async close(): Promise<void> {
    for (const p of this.procs.values()) p.kill('SIGKILL')
    await Promise.all([...this.procs.values()].map((p) => p.waitExit().catch(() => undefined)))
    rmSync(this.dir, { recursive: true, force: true })
  }
}
