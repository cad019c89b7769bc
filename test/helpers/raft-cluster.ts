/**
 * Real raft processes on loopback for tests and benchmarks: start, watch their event lines, wait on
 * conditions, kill by PID. Every process started here is killed by `close()`, and every data directory
 * removed, whatever happened in between.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import dgram from 'node:dgram'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { RaftElectionOptions, RaftPeer } from '../../src/index.js'

const FIXTURE = new URL('../fixtures/raft-node.ts', import.meta.url).pathname

export interface NodeEvent {
  ev: string
  t: number
  [key: string]: unknown
}

/** Ports that are free right now (bound to port 0 and released). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const s = net.createServer()
          s.once('error', reject)
          s.listen(0, '127.0.0.1', () => resolve(s))
        }),
    ),
  )
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port)
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
  return ports
}

/** A UDP port that is free right now on loopback (for a multicast group port nobody else uses). */
export async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4')
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()))
  const { port } = s.address()
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

/**
 * Polls a probe until it returns something other than undefined/false. The deadline only bounds how
 * long a test takes to fail: generous, so that a loaded machine (processes that take seconds to start,
 * elections that take several rounds) is never mistaken for a broken one.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = probe()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** A fixture node process (raft by default) printing JSON event lines; also used for bully nodes. */
export class RaftProcess {
  readonly events: NodeEvent[] = []
  readonly child: ChildProcess
  exited = false
  private buffer = ''

  constructor(
    readonly id: string,
    options: object,
    /** Which fixture script to run (default: the raft node), and how (default: node on this host). */
    fixture: string = FIXTURE,
    launch: (command: string, args: string[]) => ChildProcess = (command, args) =>
      spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] }),
  ) {
    this.child = launch(process.execPath, ['--import', 'tsx', fixture, JSON.stringify(options)])
    this.child.stdout?.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString()
      let nl = this.buffer.indexOf('\n')
      while (nl >= 0) {
        const line = this.buffer.slice(0, nl)
        this.buffer = this.buffer.slice(nl + 1)
        try {
          this.events.push(JSON.parse(line) as NodeEvent)
        } catch {
          // not one of ours; ignore
        }
        nl = this.buffer.indexOf('\n')
      }
    })
    this.child.on('exit', () => {
      this.exited = true
    })
  }

  get pid(): number {
    return this.child.pid ?? -1
  }

  send(command: string): void {
    if (!this.exited) this.child.stdin?.write(`${command}\n`)
  }

  /** The newest change event: this node's role and who it names as leader. */
  lastChange(): NodeEvent | undefined {
    for (let i = this.events.length - 1; i >= 0; i--)
      if (this.events[i]?.ev === 'change') return this.events[i]
    return undefined
  }

  leaderName(): string | undefined {
    return this.lastChange()?.leader as string | undefined
  }

  async state(): Promise<NodeEvent> {
    const before = this.events.length
    this.send('state')
    return waitFor(`state of ${this.id}`, () => this.events.slice(before).find((e) => e.ev === 'state'))
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.exited) process.kill(this.pid, signal)
  }

  async waitExit(timeoutMs = 30_000): Promise<void> {
    await waitFor(`exit of ${this.id}`, () => this.exited, timeoutMs)
  }
}

export interface ClusterOptions {
  size: number
  observers?: number
  timing?: RaftElectionOptions['timing']
  key?: string
  durable?: boolean
  extra?: (id: string) => Partial<RaftElectionOptions>
}

export class RaftCluster {
  readonly members: RaftPeer[]
  readonly nodes = new Map<string, RaftProcess>()
  readonly dataRoot: string
  private readonly opts: ClusterOptions

  private constructor(opts: ClusterOptions, ports: number[]) {
    this.opts = opts
    this.dataRoot = mkdtempSync(join(tmpdir(), 'ballot-raft-'))
    const total = opts.size + (opts.observers ?? 0)
    this.members = Array.from({ length: total }, (_, i) => ({
      id: `n${i + 1}`,
      address: `127.0.0.1:${ports[i]}`,
      kind: i < opts.size ? ('voter' as const) : ('observer' as const),
    }))
  }

  static async create(opts: ClusterOptions): Promise<RaftCluster> {
    return new RaftCluster(opts, await freePorts(opts.size + (opts.observers ?? 0)))
  }

  start(id: string): RaftProcess {
    const node = new RaftProcess(id, {
      id,
      members: this.members,
      timing: this.opts.timing ?? 'fast',
      key: this.opts.key,
      dataDir: this.opts.durable === false ? undefined : join(this.dataRoot, id),
      ...this.opts.extra?.(id),
    })
    this.nodes.set(id, node)
    return node
  }

  startAll(): RaftProcess[] {
    return this.members.map((m) => this.start(m.id))
  }

  live(): RaftProcess[] {
    return [...this.nodes.values()].filter((n) => !n.exited)
  }

  /** The leader every live node names, once they all agree on one that is live. */
  agreedLeader(among: RaftProcess[] = this.live()): { id: string; token: number } | undefined {
    const first = among[0]?.lastChange()
    if (!first?.leader) return undefined
    for (const n of among) {
      const c = n.lastChange()
      if (c?.leader !== first.leader || c?.token !== first.token) return undefined
    }
    const leader = this.nodes.get(first.leader as string)
    if (!leader || leader.exited) return undefined
    return { id: first.leader as string, token: first.token as number }
  }

  async waitForAgreement(among?: () => RaftProcess[], timeoutMs = 60_000) {
    return waitFor('an agreed leader', () => this.agreedLeader(among?.()), timeoutMs)
  }

  /** Each node's changes and lease gains and losses, with times (ms), oldest first: for failure messages. */
  history(): string {
    return [...this.nodes.values()]
      .map((n) => {
        const lines = n.events
          .filter((e) => e.ev === 'change' || e.ev === 'lead')
          .map((e) =>
            e.ev === 'lead'
              ? `${e.t.toFixed(0)} ${e.leading ? 'lease' : 'no lease'}`
              : `${e.t.toFixed(0)} ${e.role} ${e.leader ?? '-'}@${e.token ?? '-'}`,
          )
        return `${n.id} (pid ${n.pid}${n.exited ? ', exited' : ''}): ${lines.join(', ')}`
      })
      .join('\n')
  }

  async close(): Promise<void> {
    for (const n of this.nodes.values()) n.kill('SIGKILL')
    await Promise.all([...this.nodes.values()].map((n) => n.waitExit().catch(() => undefined)))
    rmSync(this.dataRoot, { recursive: true, force: true })
  }
}
