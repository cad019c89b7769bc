/**
 * The invariant checker: bookkeeping of what every node says about itself (role, leader, term, lease)
 * and judgement of it at every step. The simulation tells it what happened; it never looks inside a
 * machine beyond the Ready transitions and the view.
 */
import type { Role } from '../election.js'
import type { CommonInvariant } from './adapter.js'
import type { TraceRing } from './trace.js'

export interface Violation {
  invariant: string
  /** Real (simulated) time, ms. */
  time: number
  message: string
  /** Broken under conditions outside the protocol's promise (clocks beyond the drift bound). */
  expected: boolean
}

interface NodeStatus {
  id: string
  observer: boolean
  alive: boolean
  role: Role
  leaderId: string | undefined
  leaderTerm: number
  /** The node's current or last isLeader interval, in real time: [leaseStart, leaseEnd). */
  leasing: boolean
  leaseEnd: number
  leaseToken: number
  /**
   * The lease of the node's previous process, if it crashed while leasing: nothing outside a process
   * can tell it is gone rather than hung, so it counts until it would have run out.
   */
  ghostEnd: number
  ghostToken: number
  /** Until when (real time) the node's clock is beyond the drift bound (it jumped). */
  outOfBoundUntil: number
  /** The largest token this node has led with (fencing 'unique'). */
  lastOwnToken: number
}

export interface CheckerOptions {
  invariants: ReadonlySet<CommonInvariant>
  members: Array<{ id: string; kind: 'voter' | 'observer' }>
  /** The run is fault-free: no election after the first leader. */
  stability: boolean
  healAt: number
  trace: TraceRing
  /** Whether agreement needs a live majority of voters (raft) or any live voter (bully). Default majority. */
  agreement?: 'majority' | 'any'
  /** The leader the protocol promises once the network is quiet, given the live voters (bully: the highest). */
  expectedLeader?: (live: string[]) => string | undefined
  /**
   * What 'fencing' means: 'monotonic' (default): every leadership that starts carries a larger token
   * than every earlier one; 'unique': no two nodes ever lead with one token and each node's tokens grow
   * (protocols that may lead on both sides of a partition).
   */
  fencing?: 'monotonic' | 'unique'
}

export class InvariantChecker {
  readonly violations: Violation[] = []
  readonly expected: Violation[] = []
  elections = 0
  firstAgreedAt: number | undefined
  agreedAfterHealAt: number | undefined
  /** Whether every live voter already named one leader at the heal instant (no election was needed). */
  agreedAtHeal = false
  /**
   * Real time during which two or more nodes' isLeader() were true at once. A measurement for
   * protocols that do not promise a lease (bully under partitions); raft fails the lease check instead.
   */
  multiLeaderMs = 0
  private multiLeaderSince: number | undefined

  private readonly nodes: NodeStatus[]
  private readonly voterCount: number
  private readonly on: ReadonlySet<CommonInvariant>
  private readonly leaderOfTerm = new Map<number, string>()
  private lastLeaseToken = Number.NEGATIVE_INFINITY
  /** Fencing 'unique': which node first led with each token. */
  private readonly tokenHolder = new Map<number, number>()
  private lastLeaseNode = -1
  private preVoteGuard: { node: number; term: number } | undefined
  private readonly reported = new Set<string>()
  private healed = false

  constructor(private readonly opts: CheckerOptions) {
    this.on = opts.invariants
    this.nodes = opts.members.map((m) => ({
      id: m.id,
      observer: m.kind === 'observer',
      alive: true,
      role: m.kind === 'observer' ? 'observer' : 'follower',
      leaderId: undefined,
      leaderTerm: 0,
      leasing: false,
      leaseEnd: Number.NEGATIVE_INFINITY,
      leaseToken: 0,
      ghostEnd: Number.NEGATIVE_INFINITY,
      ghostToken: 0,
      outOfBoundUntil: Number.NEGATIVE_INFINITY,
      lastOwnToken: Number.NEGATIVE_INFINITY,
    }))
    this.voterCount = opts.members.filter((m) => m.kind === 'voter').length
  }

  get failed(): boolean {
    return this.violations.length > 0
  }

  fail(invariant: string, time: number, message: string, expected = false): void {
    // One report per invariant per run: the first is the one the trace leads up to.
    const key = `${expected ? 'x' : ''}${invariant}`
    if (this.reported.has(key)) return
    this.reported.add(key)
    const v = { invariant, time, message, expected }
    ;(expected ? this.expected : this.violations).push(v)
    this.opts.trace.add({
      t: time,
      local: undefined,
      node: '!',
      what: expected ? 'EXPECTED' : 'VIOLATION',
      detail: `${invariant}: ${message}`,
    })
  }

  /**
   * The node's clock jumped beyond the drift bound; until `untilReal`, lease overlaps that involve it
   * are what the bound protects, reported apart. Nothing else is excused: not another pair's overlap,
   * not one leader per term, not fencing.
   */
  clockOutOfBound(node: number, untilReal: number): void {
    const s = this.nodes[node] as NodeStatus
    s.outOfBoundUntil = Math.max(s.outOfBoundUntil, untilReal)
  }

  private excused(a: NodeStatus, b: NodeStatus, now: number): boolean {
    return a.outOfBoundUntil > now || b.outOfBoundUntil > now
  }

  /** The node is leading (as opposed to leasing) right now: true for the simulation's view fast path. */
  mayLead(node: number, now: number): boolean {
    const s = this.nodes[node] as NodeStatus
    return s.role === 'leader' || (s.leasing && s.leaseEnd > now)
  }

  // ------------------------------------------------------------------ what nodes report

  transition(node: number, role: Role, leader: { id: string; term: number } | undefined, now: number): void {
    const s = this.nodes[node] as NodeStatus
    const wasLeaderOf = s.role === 'leader' ? s.leaderTerm : -1
    s.role = role
    s.leaderId = leader?.id
    s.leaderTerm = leader?.term ?? s.leaderTerm
    if (s.observer && (role === 'leader' || role === 'candidate') && this.on.has('observer')) {
      this.fail('observer', now, `observer ${s.id} became ${role}`)
    }
    if (role === 'leader' && leader && leader.id === s.id && wasLeaderOf !== leader.term) {
      this.elections++
      const other = this.leaderOfTerm.get(leader.term)
      if (other !== undefined && other !== s.id && this.on.has('one-leader-per-term')) {
        this.fail(
          'one-leader-per-term',
          now,
          `${s.id} and ${other} both became leader in term ${leader.term}`,
        )
      }
      this.leaderOfTerm.set(leader.term, s.id)
    }
    if (this.opts.stability && this.firstAgreedAt !== undefined && this.on.has('stability')) {
      if (role === 'candidate') this.fail('stability', now, `${s.id} campaigned though nothing failed`)
      else if (role === 'leader' && wasLeaderOf !== s.leaderTerm)
        this.fail('stability', now, `${s.id} was elected though nothing failed`)
    }
    const g = this.preVoteGuard
    if (g && this.on.has('pre-vote')) {
      if (node === g.node && (role !== 'leader' || s.leaderTerm !== g.term)) {
        this.fail('pre-vote', now, `leader ${s.id} of term ${g.term} became ${role} in term ${s.leaderTerm}`)
      } else if (node !== g.node && role === 'leader') {
        this.fail('pre-vote', now, `${s.id} deposed the leader of term ${g.term}`)
      }
    }
    this.evaluate(now)
  }

  /**
   * What the node's view said after a step: isLeader, and (if so) when in real time it lapses unless
   * renewed. Intervals of different nodes must never overlap.
   */
  lease(node: number, isLeader: boolean, endReal: number, token: number, now: number): void {
    const s = this.nodes[node] as NodeStatus
    if (!isLeader) {
      if (s.leasing && s.leaseEnd > now) s.leaseEnd = now
      s.leasing = false
      this.countLeaders(now)
      return
    }
    if (s.observer && this.on.has('observer')) this.fail('observer', now, `observer ${s.id} claims isLeader`)
    const starting = !(s.leasing && s.leaseEnd > now) || s.leaseToken !== token
    if (starting) {
      if (this.on.has('fencing') && this.opts.fencing === 'unique') this.uniqueToken(s, node, token, now)
      else if (this.on.has('fencing')) {
        if (token < this.lastLeaseToken || (token === this.lastLeaseToken && node !== this.lastLeaseNode)) {
          const prev = this.nodes[this.lastLeaseNode]?.id
          this.fail(
            'fencing',
            now,
            `${s.id} leads with token ${token} after ${prev} led with token ${this.lastLeaseToken}`,
          )
        }
      }
      if (token >= this.lastLeaseToken) {
        this.lastLeaseToken = token
        this.lastLeaseNode = node
      }
    }
    s.leasing = true
    s.leaseEnd = endReal
    s.leaseToken = token
    this.countLeaders(now)
    if (!this.on.has('lease')) return
    for (let i = 0; i < this.nodes.length; i++) {
      const o = this.nodes[i] as NodeStatus
      if (i === node) continue
      const live = o.leasing && o.leaseEnd > now
      if (!live && o.ghostEnd <= now) continue
      const [end, term, how] = live
        ? [o.leaseEnd, o.leaseToken, '']
        : [o.ghostEnd, o.ghostToken, ' (its process crashed, but nobody can know that)']
      this.fail(
        'lease',
        now,
        `${s.id} (term ${token}) and ${o.id} (term ${term}) are both leader at once; ${o.id}'s lease runs ${(end - now).toFixed(3)} ms more${how}`,
        this.excused(s, o, now),
      )
    }
    this.evaluate(now)
  }

  /**
   * Fencing for protocols that may lead on both sides of a partition (bully): no token is ever used by
   * two nodes, and each node's leaderships carry growing tokens. (Across a partition, a later
   * leadership may carry a smaller token than one the other side started: downstream keeps the larger.)
   */
  private uniqueToken(s: NodeStatus, node: number, token: number, now: number): void {
    const holder = this.tokenHolder.get(token)
    if (holder !== undefined && holder !== node) {
      this.fail(
        'fencing',
        now,
        `${s.id} leads with token ${token}, which ${this.nodes[holder]?.id} led with too`,
      )
    } else if (token < s.lastOwnToken) {
      this.fail('fencing', now, `${s.id} leads with token ${token} after leading with ${s.lastOwnToken}`)
    }
    this.tokenHolder.set(token, node)
    s.lastOwnToken = Math.max(s.lastOwnToken, token)
  }

  /** Tracks spans with more than one node claiming isLeader(). */
  private countLeaders(now: number): void {
    let leaders = 0
    for (const n of this.nodes) if (n.alive && n.leasing && n.leaseEnd > now) leaders++
    if (leaders > 1 && this.multiLeaderSince === undefined) this.multiLeaderSince = now
    else if (leaders <= 1 && this.multiLeaderSince !== undefined) {
      this.multiLeaderMs += now - this.multiLeaderSince
      this.multiLeaderSince = undefined
    }
  }

  /** Closes the multi-leader measurement at the end of a run. */
  finish(now: number): void {
    if (this.multiLeaderSince !== undefined) {
      this.multiLeaderMs += now - this.multiLeaderSince
      this.multiLeaderSince = undefined
    }
  }

  crashed(node: number, now: number): void {
    const s = this.nodes[node] as NodeStatus
    s.alive = false
    s.role = 'stopped'
    s.leaderId = undefined
    if (s.leasing && s.leaseEnd > now) {
      s.ghostEnd = s.leaseEnd
      s.ghostToken = s.leaseToken
    }
    s.leasing = false
    this.countLeaders(now)
    const g = this.preVoteGuard
    if (g && g.node === node) this.preVoteGuard = undefined
    this.evaluate(now)
  }

  restarted(node: number, now: number): void {
    const s = this.nodes[node] as NodeStatus
    s.alive = true
    s.role = s.observer ? 'observer' : 'follower'
    s.leaderId = undefined
    this.evaluate(now)
  }

  /** From now on the current leader must keep its term (a follower is about to be isolated). */
  guardPreVote(now: number): void {
    const leader = this.agreedLeader()
    if (leader === undefined) return
    this.preVoteGuard = { node: leader, term: (this.nodes[leader] as NodeStatus).leaderTerm }
    this.opts.trace.add({
      t: now,
      local: undefined,
      node: '*',
      what: 'guard',
      detail: `pre-vote: ${(this.nodes[leader] as NodeStatus).id} must keep term ${this.preVoteGuard.term}`,
    })
  }

  // ------------------------------------------------------------------ agreement and liveness

  /**
   * The node every live voter names as leader, itself live and leading; else undefined. A `usable`
   * leader must also hold isLeader() at `now`: a leader that can never act is no leader.
   */
  agreedLeader(usable?: { now: number }): number | undefined {
    let id: string | undefined
    let term = -1
    let live = 0
    for (const s of this.nodes) {
      if (s.observer || !s.alive) continue
      live++
      if (s.leaderId === undefined) return undefined
      if (id === undefined) {
        id = s.leaderId
        term = s.leaderTerm
      } else if (s.leaderId !== id || s.leaderTerm !== term) return undefined
    }
    if (!this.enoughLive(live) || id === undefined) return undefined
    const idx = this.nodes.findIndex((s) => s.id === id)
    const leader = this.nodes[idx]
    if (!leader?.alive || leader.role !== 'leader') return undefined
    if (usable && !(leader.leasing && leader.leaseEnd > usable.now)) return undefined
    return idx
  }

  /** The slot-0 node for faults: the agreed leader, else the highest-term node acting as leader. */
  currentLeader(): number | undefined {
    const agreed = this.agreedLeader()
    if (agreed !== undefined) return agreed
    let best: number | undefined
    for (let i = 0; i < this.nodes.length; i++) {
      const s = this.nodes[i] as NodeStatus
      if (
        s.alive &&
        s.role === 'leader' &&
        (best === undefined || s.leaderTerm > (this.nodes[best] as NodeStatus).leaderTerm)
      )
        best = i
    }
    return best
  }

  private enoughLive(live: number): boolean {
    return this.opts.agreement === 'any' ? live > 0 : live * 2 > this.voterCount
  }

  /** The agreed leader, if it is also the one the protocol promises (bully: the highest live node). */
  private settledLeader(now: number): number | undefined {
    const agreed = this.agreedLeader({ now })
    if (agreed === undefined || !this.opts.expectedLeader) return agreed
    const live = this.nodes.filter((s) => s.alive && !s.observer).map((s) => s.id)
    return this.opts.expectedLeader(live) === (this.nodes[agreed] as NodeStatus).id ? agreed : undefined
  }

  evaluate(now: number): void {
    if (this.firstAgreedAt !== undefined && (!this.healed || this.agreedAfterHealAt !== undefined)) return
    if (this.settledLeader(now) === undefined) return
    if (this.firstAgreedAt === undefined) this.firstAgreedAt = now
    if (this.healed && this.agreedAfterHealAt === undefined) this.agreedAfterHealAt = now
  }

  /** Called at the heal instant, after every other event of that instant. */
  heal(now: number): void {
    this.healed = true
    this.agreedAtHeal = this.settledLeader(now) !== undefined
    this.evaluate(now)
  }

  /** At the liveness deadline: a leader must be agreed if a majority of voters is live. */
  livenessDeadline(now: number, boundMs: number): void {
    if (this.agreedAfterHealAt !== undefined || !this.on.has('liveness')) return
    const live = this.nodes.filter((s) => !s.observer && s.alive).length
    if (!this.enoughLive(live)) return
    const says = this.nodes
      .filter((s) => s.alive && !s.observer)
      .map((s) => `${s.id}:${s.role}${s.leaderId ? `→${s.leaderId}@${s.leaderTerm}` : ''}`)
      .join(' ')
    const what = this.opts.expectedLeader
      ? 'no agreed, usable leader (the expected one)'
      : 'no agreed leader holding isLeader()'
    this.fail('liveness', now, `${what} ${boundMs.toFixed(0)} ms after the heal (${says})`)
  }
}
