/**
 * In-process lease candidates and followers on a real etcd, with what tests judge them by: every change
 * they report (with a monotonic time), and a sampler that looks at every candidate's isLeader() at the
 * same instant, again and again, to prove that two never claimed leadership at once.
 */
import type { LeaderInfo, LeadershipChange } from '../../src/election.js'
import type { LeaseBackend } from '../../src/lease/backend.js'
import { LeaseElection, type LeaseElectionOptions } from '../../src/lease/candidate.js'
import { LeaseFollower } from '../../src/lease/follower.js'
import { EtcdBackend } from '../../src/lease/stores/etcd.js'
import { waitUntil } from './services.js'

export interface Seen {
  t: number
  change: LeadershipChange
  leading: boolean
}

export class Recorded<E extends LeaseElection | LeaseFollower> {
  readonly seen: Seen[] = []
  readonly errors: Array<{ t: number; code?: string; message: string }> = []
  constructor(readonly e: E) {
    e.on('change', (change) => this.seen.push({ t: performance.now(), change, leading: e.isLeader() }))
    e.on('error', (err) =>
      this.errors.push({ t: performance.now(), code: (err as { code?: string }).code, message: err.message }),
    )
  }
  /** Leaders reported, in order, without repeats (id@token). */
  leaders(): string[] {
    const out: string[] = []
    for (const s of this.seen) {
      const l = s.change.leader
      if (!l) continue
      const name = `${l.id}@${l.token}`
      if (out.at(-1) !== name) out.push(name)
    }
    return out
  }
  /**
   * What this candidate knows, in one line for a failed wait: its role, session, line and leader as the
   * machine sees them, and its last few errors.
   */
  describe(): string {
    if (!(this.e instanceof LeaseElection)) return `follower: leader ${this.e.leader()?.id ?? 'none'}`
    const v = this.e.view()
    const entry = (x: { id: string; token: bigint } | undefined) => (x ? `${x.id}@${x.token}` : 'none')
    const errors = this.errors.slice(-3).map((e) => `${e.code ?? '?'}: ${e.message}`)
    return (
      `${v.id} ${v.role} leader=${entry(v.leader)} self=${entry(v.self)} ` +
      `line=[${v.line.map(entry).join(' ')}] session=${v.session?.id ?? 'none'} ` +
      `suspended=${v.suspended} failures=${v.failures} errors=${JSON.stringify(errors)}`
    )
  }
  /** Leaderships this candidate took, in order (id@token). */
  own(): string[] {
    return this.seen
      .filter((s) => s.change.role === 'leader')
      .map((s) => `${s.change.leader?.id}@${s.change.leader?.token}`)
  }
}

/** A recorded candidate on any backend: address `<id>.example:80`, tags {name: id}, TTL 2 s unless `extra` says. */
export function candidateOn(
  backend: LeaseBackend,
  id: string,
  extra: Partial<LeaseElectionOptions> = {},
): Recorded<LeaseElection> {
  return new Recorded(
    new LeaseElection({
      id,
      backend,
      address: `${id}.example:80`,
      tags: { name: id },
      timing: { ttlMs: 2000 },
      ...extra,
    }),
  )
}

/**
 * Starts the candidates one by one, each once the one before is in the line: start() may resolve before
 * the join lands, so starting them back to back does not fix the order of the line.
 */
export async function startInLine(cs: Array<Recorded<LeaseElection>>): Promise<void> {
  for (const c of cs) {
    await c.e.start()
    await waitUntil(`${c.e.id} in line`, () => c.e.view().self)
  }
}

export function followerOn(backend: LeaseBackend): Recorded<LeaseFollower> {
  return new Recorded(new LeaseFollower({ backend }))
}

export function candidate(
  endpoint: string,
  election: string,
  id: string,
  extra: Partial<LeaseElectionOptions> = {},
): Recorded<LeaseElection> {
  return candidateOn(new EtcdBackend({ hosts: [endpoint], election }), id, extra)
}

export function follower(endpoint: string, election: string): Recorded<LeaseFollower> {
  return followerOn(new EtcdBackend({ hosts: [endpoint], election }))
}

/** Leaderships the candidates took, in time order, without repeats (id@token). */
export function taken(cs: Array<Recorded<LeaseElection>>): string[] {
  return cs
    .flatMap((c) =>
      c.seen.filter((s) => s.change.role === 'leader').map((s) => ({ t: s.t, l: s.change.leader })),
    )
    .sort((a, b) => a.t - b.t)
    .map((x) => `${x.l?.id}@${x.l?.token}`)
    .filter((x, i, all) => all[i - 1] !== x)
}

/**
 * Checks, at the very instant any candidate starts to lead (leadership only ever starts inside a step of
 * its machine, which the runtime reports at once), that no other candidate's isLeader() is true; and
 * records every leadership claimed (id and token), in order. Candidates must live in this process.
 */
export class ClaimChecker {
  readonly overlaps: string[] = []
  readonly claims: Array<{ t: number; id: string; token: bigint }> = []

  constructor(private readonly all: LeaseElection[]) {
    for (const e of all) e.on('change', (c) => c.role === 'leader' && this.check(e, c.leader as LeaderInfo))
  }

  private check(e: LeaseElection, lead: LeaderInfo): void {
    const t = performance.now()
    const others = this.all.filter((o) => o !== e && o.isLeader())
    if (others.length > 0)
      this.overlaps.push(
        `${t.toFixed(1)}: ${e.id} started to lead while ${others.map((o) => o.id).join(', ')} did`,
      )
    this.claims.push({ t, id: lead.id, token: lead.token })
  }

  /** Tokens of successive leaderships, which must strictly grow. */
  tokensGrow(): boolean {
    return this.claims.every((c, i) => i === 0 || c.token > (this.claims[i - 1]?.token ?? -1n))
  }

  describe(): string {
    return this.claims.map((c) => `${c.t.toFixed(0)} ${c.id}@${c.token}`).join(', ')
  }
}
