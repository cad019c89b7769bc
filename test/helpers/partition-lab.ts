/**
 * Real partitions for a real raft cluster: five `ballot run` processes, one per network namespace on a
 * bridge (test/helpers/netns.ts), and a sixth namespace whose poller (fixtures/status-poller.mjs) asks
 * every node's GET /status all through, on one clock. Links are cut with nftables rules inside the
 * nodes' namespaces (never the poller's), replaced atomically: both ways, one way, or random loss
 * (`numgen random mod 100 < N`).
 *
 * "Two leaders at the same moment", when all we have is polling: a node that answered isLeader with
 * lease L to a request sent at s and answered at r claimed at some instant t in [s, r], and its lease ran
 * to t + L ≥ s + L. Raft's lease promises nobody else leads before it ends (only a hand-over, which these
 * tests never do, ends it early). So another node's claim observed wholly inside [r, s + L] is certainly
 * a second leader at the same moment: that is the violation `violations()` looks for, for every pair of
 * claims. Claims whose request intervals merely overlap are counted too, as `ambiguous` (poll intervals
 * long enough could hide either order); the lease check is what fails a test.
 */
import { type ChildProcess, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { CLI } from './daemon.js'
import { type NetnsHost, NetnsLab } from './netns.js'

const POLLER = new URL('../fixtures/status-poller.mjs', import.meta.url).pathname
const CLUSTER_PORT = 7400
const HTTP_PORT = 8080

/** One answer (or failure) of one node's GET /status, timed on the poller's clock (epoch ms). */
export interface Observation {
  node: string
  s: number
  r: number
  ok: boolean
  role?: string
  term?: number
  leader?: string | null
  isLeader?: boolean
  lease?: number | null
}

/** The same clock as the poller's: epoch milliseconds, high resolution. */
export const now = (): number => performance.timeOrigin + performance.now()

export interface Violation {
  a: Observation
  b: Observation
}

/**
 * Pairs of self-claims by two nodes where one was certainly made while the other's lease ran: b's
 * request was sent after a's answer came back (b.s >= a.r) and b's answer came back before a's lease
 * could have ended (b.r <= a.s + a.lease, since a's lease ran to t + lease for some t >= a.s). Also
 * counts the pairs whose request intervals merely overlap (either order possible): `ambiguous`.
 */
export function leaseOverlaps(claimsIn: Observation[]): { certain: Violation[]; ambiguous: number } {
  const claims = claimsIn.filter((o) => o.ok && o.isLeader).sort((x, y) => x.s - y.s)
  const certain: Violation[] = []
  let ambiguous = 0
  for (let i = 0; i < claims.length; i++) {
    const a = claims[i] as Observation
    const leaseEnd = a.s + (a.lease ?? 0)
    for (let j = i + 1; j < claims.length; j++) {
      const b = claims[j] as Observation
      if (b.s > Math.max(leaseEnd, a.r)) break
      if (b.node === a.node) continue
      if (b.s >= a.r && b.r <= leaseEnd) certain.push({ a, b })
      else if (b.s <= a.r) ambiguous++
    }
  }
  return { certain, ambiguous }
}

export class PartitionLab {
  readonly ids = ['n1', 'n2', 'n3', 'n4', 'n5']
  readonly observations: Observation[] = []
  private readonly procs = new Map<string, ChildProcess>()
  private readonly exits: string[] = []
  private poller: ChildProcess | undefined
  /** Directed cuts (from → to dropped) and per-node loss in percent, as applied now. */
  private readonly blocked = new Set<string>()
  private readonly loss = new Map<string, number>()

  private constructor(
    readonly lab: NetnsLab,
    private readonly dir: string,
    readonly timing: 'default' | 'fast',
  ) {}

  static async create(timing: 'default' | 'fast' = 'default', pollMs = 20): Promise<PartitionLab> {
    const netns = NetnsLab.create(6)
    const dir = mkdtempSync(join(tmpdir(), 'ballot-partitions-'))
    const lab = new PartitionLab(netns, dir, timing)
    try {
      for (const id of lab.ids) lab.startNode(id)
      const pollerHost = netns.hosts[5] as NetnsHost
      const targets = lab.ids.map((id) => `${id}=${lab.host(id).ip}:${HTTP_PORT}`)
      const poller = netns.spawn(pollerHost, process.execPath, [POLLER, String(pollMs), ...targets], {
        stdio: ['pipe', 'pipe', 'inherit'],
      })
      lab.poller = poller
      const lines = createInterface({ input: poller.stdout as NodeJS.ReadableStream })
      lines.on('line', (line) => {
        try {
          lab.observations.push(JSON.parse(line) as Observation)
        } catch {
          // not ours
        }
      })
    } catch (err) {
      await lab.remove()
      throw err
    }
    return lab
  }

  host(id: string): NetnsHost {
    return this.lab.hosts[this.ids.indexOf(id)] as NetnsHost
  }

  private startNode(id: string): void {
    const nodes = this.ids.map((m) => `${m}=${this.host(m).ip}:${CLUSTER_PORT}`).join(',')
    const h = this.host(id)
    const child = this.lab.spawn(
      h,
      process.execPath,
      [
        CLI,
        'run',
        '--id',
        id,
        '--nodes',
        nodes,
        '--http',
        `${h.ip}:${HTTP_PORT}`,
        '--timing',
        this.timing,
        '--key',
        'partition-test-key',
        '--data-dir',
        join(this.dir, id),
        '--log-format',
        'json',
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'ignore', 'ignore'] },
    )
    child.once('exit', (code, signal) => this.exits.push(`${id} exited (${code ?? signal})`))
    this.procs.set(id, child)
  }

  /** Processes that exited on their own (none should). */
  get died(): string[] {
    return [...this.exits]
  }

  // ------------------------------------------------------------------ faults

  /** Drops everything between the two groups, both ways. */
  split(left: string[], right: string[]): void {
    for (const a of left) for (const b of right) this.blocked.add(`${a}>${b}`).add(`${b}>${a}`)
    this.apply()
  }

  /** Drops what `from` sends to each of `to` (one way: `from` still hears them). */
  blockOneWay(from: string, to: string[]): void {
    for (const b of to) this.blocked.add(`${from}>${b}`)
    this.apply()
  }

  /** Every node drops `percent`% of the packets it receives from other nodes, at random. */
  randomLoss(percent: number): void {
    for (const id of this.ids) this.loss.set(id, percent)
    this.apply()
  }

  /** Removes every cut and every loss rule. */
  heal(): void {
    this.blocked.clear()
    this.loss.clear()
    this.apply()
  }

  /** Rewrites each node's table from the state above, atomically (one nft transaction per namespace). */
  private apply(): void {
    for (const id of this.ids) {
      const drops: string[] = []
      for (const other of this.ids) {
        if (this.blocked.has(`${id}>${other}`)) drops.push(`    ip daddr ${this.host(other).ip} drop`)
      }
      const ins: string[] = []
      for (const other of this.ids) {
        if (this.blocked.has(`${other}>${id}`)) ins.push(`    ip saddr ${this.host(other).ip} drop`)
      }
      const pct = this.loss.get(id)
      if (pct) {
        const peers = this.ids.filter((o) => o !== id).map((o) => this.host(o).ip)
        ins.push(`    ip saddr { ${peers.join(', ')} } numgen random mod 100 < ${pct} drop`)
      }
      const script = [
        'table inet ballotcut',
        'delete table inet ballotcut',
        'table inet ballotcut {',
        '  chain out {',
        '    type filter hook output priority 0;',
        ...drops,
        '  }',
        '  chain in {',
        '    type filter hook input priority 0;',
        ...ins,
        '  }',
        '}',
        '',
      ].join('\n')
      execFileSync('ip', ['netns', 'exec', this.host(id).ns, 'nft', '-f', '-'], { input: script })
    }
  }

  // ------------------------------------------------------------------ what the poller saw

  /** The newest answer of each node, sent after `since`. */
  latest(since: number): Map<string, Observation> {
    const out = new Map<string, Observation>()
    for (let i = this.observations.length - 1; i >= 0 && out.size < this.ids.length; i--) {
      const o = this.observations[i] as Observation
      if (o.s < since) break
      if (o.ok && !out.has(o.node)) out.set(o.node, o)
    }
    return out
  }

  /**
   * The leader every node names and that claims with a lease, from answers sent after `since`, or
   * undefined while they do not all agree.
   */
  agreed(since: number, among: string[] = this.ids): { id: string; term: number } | undefined {
    const latest = this.latest(since)
    if (among.some((id) => !latest.has(id))) return undefined
    const first = latest.get(among[0] as string) as Observation
    const leader = first.leader
    if (!leader) return undefined
    for (const id of among) {
      const o = latest.get(id) as Observation
      if (o.leader !== leader || o.term !== first.term) return undefined
    }
    const own = latest.get(leader)
    if (own && !own.isLeader) return undefined
    return { id: leader, term: first.term as number }
  }

  /** Waits (polling the poller's stream) until `probe` returns something; throws after `timeoutMs`. */
  async waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const v = probe()
      if (v !== undefined && v !== false) return v
      if (this.exits.length > 0) throw new Error(`while waiting for ${what}: ${this.exits.join(', ')}`)
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  /** Waits until all five agree on a leader (after `since`), and returns it. */
  stableLeader(since = now(), timeoutMs = 30_000): Promise<{ id: string; term: number }> {
    return this.waitFor('all five to agree on a leader', () => this.agreed(since), timeoutMs)
  }

  /** Self-claims with a lease, in order of the request's send time. */
  claims(from = 0, to = Number.POSITIVE_INFINITY): Observation[] {
    return this.observations.filter((o) => o.ok && o.isLeader && o.s >= from && o.s <= to)
  }

  /** Pairs of claims certainly at the same moment since `from` (see {@link leaseOverlaps}). */
  violations(from = 0): { certain: Violation[]; ambiguous: number } {
    return leaseOverlaps(this.claims(from))
  }

  /** The first answer, sent after `since`, matching `pred`. */
  first(since: number, pred: (o: Observation) => boolean): Observation | undefined {
    return this.observations.find((o) => o.s >= since && o.ok && pred(o))
  }

  /** The last claim of `id` sent before `before`. */
  lastClaim(id: string, since: number, before = Number.POSITIVE_INFINITY): Observation | undefined {
    let last: Observation | undefined
    for (const o of this.observations) {
      if (o.s >= before) break
      if (o.s >= since && o.ok && o.node === id && o.isLeader) last = o
    }
    return last
  }

  /** Stops the poller and every node (by PID), removes the namespaces and the data directory. */
  async remove(): Promise<void> {
    this.poller?.stdin?.end()
    await this.lab.remove()
    rmSync(this.dir, { recursive: true, force: true })
  }
}
