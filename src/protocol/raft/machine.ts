/**
 * Raft's leader election as a pure state machine: terms, randomized timeouts, heartbeats, votes,
 * pre-vote, check-quorum, a leader lease, observers, hand-over and priority. There is no log: the
 * only thing agreed on is who leads, and the term is the fencing token.
 *
 * No clock, timer, socket or randomness of its own: see ../machine.ts.
 */
import type { Role } from '../../election.js'
import type {
  Input,
  LeaderView,
  MachineView,
  Outgoing,
  PeerView,
  ProtocolMachine,
  Random,
  Ready,
  Refusal,
  Transition,
} from '../machine.js'
import { believableTerm, canAdvanceTerm } from '../terms.js'
import type { RaftHardState, RaftMessage } from './messages.js'
import {
  leaseDurationMs,
  type RaftMember,
  type RaftTiming,
  validateMembers,
  validateTiming,
} from './options.js'

export interface RaftMachineOptions {
  id: string
  /** Every member of the cluster, this node included; the same list on every node. */
  members: RaftMember[]
  timing: RaftTiming
  random: Random
  /** This node's tags, announced to every peer. */
  tags?: Record<string, string>
  /** What this node persisted before it last stopped; a fresh node starts at term 0. */
  hardState?: RaftHardState
  /** Pre-vote (default true): a node must win a trial round before it raises its term. */
  preVote?: boolean
  /**
   * Test-only fault injection for the simulator's self-test: grant votes without checking the term or
   * the vote already cast. Never set this in production.
   */
  unsafeSkipVoteChecks?: boolean
  /**
   * Test-only fault injection for the simulator's self-test: a new leader does not wait out the
   * promises its voters broke (the lease of a crashed or cut-off leader). Never set this in production.
   */
  unsafeSkipPromiseWait?: boolean
}

/**
 * A follower's promise: having acknowledged a heartbeat of the leader of `term`, it votes for nobody
 * else until `until` (its own clock). The leader's lease rests on this.
 */
interface Promise {
  term: number
  until: number
}

interface PeerState {
  id: string
  kind: 'voter' | 'observer'
  priority: number
  tags: Record<string, string>
  role: Role | 'unknown'
  term: number
  lastContact: number | undefined
  connected: boolean
  /** Leader only: the send time (own clock) of the newest heartbeat of this term the peer acknowledged. */
  ackedSent: number
  /** The peer's voter list, when its hello named another one than ours: all it says is refused. */
  otherVoters: string[] | undefined
  /** Leader only: since when this peer has acknowledged without a gap (for priority hand-over). */
  healthySince: number | undefined
}

type Mode = 'follower' | 'precandidate' | 'candidate' | 'leader' | 'observer' | 'stopped'

export class RaftMachine implements ProtocolMachine<RaftMessage, RaftHardState> {
  readonly id: string
  private readonly timing: RaftTiming
  private readonly random: Random
  private readonly preVote: boolean
  private readonly unsafe: boolean
  private readonly unsafeSkipPromiseWait: boolean
  /** The voters' ids, sorted: announced in hello and compared with each peer's. */
  private readonly voterIds: string[]
  private readonly selfKind: 'voter' | 'observer'
  private readonly selfPriority: number
  private readonly tags: Record<string, string>
  private readonly peers = new Map<string, PeerState>()
  private readonly voterCount: number

  private mode: Mode
  private term: number
  private votedFor: string | undefined
  private leaderId: string | undefined
  /** When this node last heard from the current leader (-Infinity: not within any lease). */
  private leaderContact = Number.NEGATIVE_INFINITY
  private electionDeadline = Number.POSITIVE_INFINITY
  private heartbeatDeadline = Number.POSITIVE_INFINITY
  private votes = new Set<string>()
  /** When this node last became leader: check-quorum counts from here until the first acks arrive. */
  private leaderSince = Number.NEGATIVE_INFINITY
  /**
   * A new leader's lease starts no sooner than this. Voters may have broken their promise to an earlier
   * leader (a wrong peerUnreachable hint, a restart that forgot when they last acked), so that leader's
   * lease may still run. Each vote says how long the voter's broken promise had left; the lease waits
   * for the longest (scaled for drift), and for any wait a predecessor handed over with its TimeoutNow.
   * A vote that broke no promise costs nothing.
   */
  private leaseNotBefore = Number.NEGATIVE_INFINITY
  /** This node's promise to the leader of the newest term it acked (see Promise). */
  private promise: Promise = { term: 0, until: Number.NEGATIVE_INFINITY }
  /** Until when this node's promises to leaders of terms before `promise.term` run. */
  private olderPromiseUntil = Number.NEGATIVE_INFINITY
  /** During a candidacy: the end of the longest broken promise among the votes so far (own clock). */
  private votersPromiseEnd = Number.NEGATIVE_INFINITY
  /** Leader only: the send time (own clock) of each heartbeat of the current term, by its seq. */
  private readonly heartbeatsSent = new Map<number, number>()
  private nextHeartbeatSeq = 1
  private started = false
  /** Whether the next pre-vote round may be retried soon (once per leader heard). */
  private quickPreVoteRetry = true
  /**
   * Pre-votes refused only because this node still followed a live leader: peer → proposed term. When
   * that leader's process turns out to be gone, they are granted at once, so the first survivor to
   * notice the crash need not wait for a retry while the others catch up.
   */
  private readonly deferredPreVotes = new Map<string, number>()
  /** The successor a leader named as it handed over, and until when not to compete with it. */
  private handoverTo: { id: string; until: number } | undefined
  /** Whether the current candidacy is a hand-over (the previous leader gave up its lease first). */
  private transferCampaign = false
  /** The `now` of the latest step. */
  private lastStepAt = Number.NEGATIVE_INFINITY

  private outbox: Outgoing<RaftMessage>[] = []
  private transitions: Transition[] = []
  private refused: Refusal[] = []
  private dirty = false
  private lastTransition: { role: Role; leader: string | undefined; term: number } | undefined

  constructor(opts: RaftMachineOptions) {
    this.id = opts.id
    validateMembers(opts.id, opts.members)
    this.timing = validateTiming({ ...opts.timing })
    this.random = opts.random
    this.preVote = opts.preVote ?? true
    this.unsafe = opts.unsafeSkipVoteChecks ?? false
    this.unsafeSkipPromiseWait = opts.unsafeSkipPromiseWait ?? false
    this.voterIds = opts.members
      .filter((m) => (m.kind ?? 'voter') === 'voter')
      .map((m) => m.id)
      .sort()
    this.tags = { ...(opts.tags ?? {}) }
    let voters = 0
    let selfKind: 'voter' | 'observer' = 'voter'
    let selfPriority = 0
    for (const m of opts.members) {
      const kind = m.kind ?? 'voter'
      if (kind === 'voter') voters++
      if (m.id === opts.id) {
        selfKind = kind
        selfPriority = m.priority ?? 0
        continue
      }
      this.peers.set(m.id, {
        id: m.id,
        kind,
        priority: m.priority ?? 0,
        tags: {},
        role: 'unknown',
        term: 0,
        lastContact: undefined,
        connected: false,
        ackedSent: Number.NEGATIVE_INFINITY,
        healthySince: undefined,
        otherVoters: undefined,
      })
    }
    this.voterCount = voters
    this.selfKind = selfKind
    this.selfPriority = selfPriority
    this.term = opts.hardState?.term ?? 0
    this.votedFor = opts.hardState?.votedFor
    this.mode = selfKind === 'observer' ? 'observer' : 'follower'
  }

  // ---------------------------------------------------------------- inputs

  step(now: number, input: Input<RaftMessage>): void {
    if (this.mode === 'stopped') return
    if (now < this.lastStepAt) this.clockWentBack(now)
    this.lastStepAt = now
    if (!this.started) this.start(now)
    switch (input.kind) {
      case 'tick':
        this.tick(now)
        break
      case 'receive':
        this.receive(now, input.from, input.msg)
        break
      case 'peerConnected':
        this.peerConnected(now, input.peer)
        break
      case 'peerUnreachable':
        this.peerUnreachable(now, input.peer)
        break
      case 'resign':
        if (this.mode === 'leader') this.handOver(now)
        break
      case 'stop':
        if (this.mode === 'leader' && input.handover) this.handOver(now)
        this.mode = 'stopped'
        this.leaderId = undefined
        this.electionDeadline = Number.POSITIVE_INFINITY
        this.heartbeatDeadline = Number.POSITIVE_INFINITY
        break
    }
    this.noteTransition()
  }

  private start(now: number): void {
    this.started = true
    // A starting node cannot know when it last acked a leader (a restart forgets it, and a node without
    // durable state may even have forgotten the term), so it assumes it did just now, in any term.
    const until = now + this.timing.electionTimeoutMinMs
    this.promise = { term: this.term, until }
    this.olderPromiseUntil = until
    this.resetElectionTimer(now)
    this.noteTransition()
  }

  /**
   * A monotonic clock never goes back; if this one did (a broken host), every time this node noted is
   * in its future. Acks then look fresher than they are, so they are all forgotten: the lease needs
   * new ones. Timers are pulled in so the node neither falls silent nor waits the jump out; promises
   * are kept as they are, which only makes them longer.
   */
  private clockWentBack(now: number): void {
    for (const p of this.peers.values()) {
      p.ackedSent = Number.NEGATIVE_INFINITY
      p.healthySince = undefined
    }
    this.heartbeatsSent.clear()
    this.leaderSince = Math.min(this.leaderSince, now)
    this.heartbeatDeadline = Math.min(this.heartbeatDeadline, now + this.timing.heartbeatIntervalMs)
    this.electionDeadline = Math.min(this.electionDeadline, now + this.timing.electionTimeoutMaxMs)
  }

  private tick(now: number): void {
    if (this.mode === 'leader') {
      // Check-quorum: a leader that has not heard from a majority within the election timeout steps
      // down, so a partitioned leader does not linger (and its lease ran out before this).
      // Written as the deadline in ready() is, so a tick at exactly that deadline acts (in floating
      // point, now - base >= min can be false when now = base + min).
      if (now >= this.checkQuorumBase(now) + this.timing.electionTimeoutMinMs) {
        this.becomeFollower(now, this.term, undefined)
        return
      }
      if (now >= this.heartbeatDeadline) {
        this.broadcastHeartbeat(now)
        this.maybeHandOverToPriority(now)
      }
      return
    }
    if (this.mode === 'observer') return
    if (now >= this.electionDeadline) this.campaign(now, this.preVote ? 'pre' : 'real')
  }

  private peerConnected(now: number, peerId: string): void {
    const peer = this.peers.get(peerId)
    if (!peer) return
    peer.connected = true
    this.send(peerId, {
      t: 'hello',
      term: this.term,
      kind: this.selfKind,
      tags: this.tags,
      voters: this.voterIds,
    })
    // A leader greets a (re)joining peer at once, so it learns the leader before its own timer fires.
    if (this.mode === 'leader') this.send(peerId, { t: 'hb', term: this.term, seq: this.heartbeatSeq(now) })
  }

  private peerUnreachable(now: number, peerId: string): void {
    const peer = this.peers.get(peerId)
    if (!peer) return
    peer.connected = false
    peer.healthySince = undefined
    peer.ackedSent = Number.NEGATIVE_INFINITY
    if (peerId === this.leaderId && this.mode !== 'leader') {
      // The leader's process is gone (its connection closed and a reconnect was refused). Forget it
      // and campaign now rather than after a full election timeout. Pre-vote still guards the cluster:
      // peers that can still hear the leader refuse, so one flaky link deposes nobody.
      this.leaderId = undefined
      this.leaderContact = Number.NEGATIVE_INFINITY
      peer.role = 'unknown'
      if (this.mode !== 'follower') return
      // The leader handed over before it went: its successor is campaigning, so leave it the field.
      if (this.awaitingHandover(now)) return
      this.grantDeferredPreVotes()
      // Survivors that all campaign at once split the vote and must wait a whole timeout to retry, so
      // they go in turn: the best-ranked reachable voter at once, each next one a short step later.
      const rank = this.failoverRank()
      if (rank === 0) this.campaign(now, this.preVote ? 'pre' : 'real')
      else this.electionDeadline = Math.min(this.electionDeadline, now + rank * this.failoverStepMs())
    }
  }

  /** How many reachable voters rank above this one (by priority, then id) to campaign after a crash. */
  private failoverRank(): number {
    let rank = 0
    for (const p of this.voters()) {
      if (!p.connected || p.id === this.leaderId) continue
      if (p.priority > this.selfPriority || (p.priority === this.selfPriority && p.id < this.id)) rank++
    }
    return rank
  }

  private awaitingHandover(now: number): boolean {
    return this.handoverTo !== undefined && now < this.handoverTo.until
  }

  private grantDeferredPreVotes(): void {
    for (const [peerId, term] of this.deferredPreVotes) {
      if (term === this.term + 1) this.send(peerId, { t: 'prevote-resp', term, granted: true })
    }
    this.deferredPreVotes.clear()
  }

  /** Long enough for one pre-vote and vote round trip on a LAN, short against the election timeout. */
  private failoverStepMs(): number {
    return Math.max(this.timing.heartbeatIntervalMs / 2, 5)
  }

  private receive(now: number, from: string, msg: RaftMessage): void {
    const peer = this.peers.get(from)
    if (!peer) return // not a member: the transport counts and drops these before they get here
    if (!believableTerm(this.term, msg.term)) {
      this.refused.push({
        peer: from,
        reason: 'term-jump',
        detail: `${from} sent term ${msg.term}, more than 2^32 above this node's ${this.term}; dropped`,
      })
      return
    }
    if (msg.t === 'hello') {
      const same =
        msg.voters.length === this.voterIds.length && msg.voters.every((v, i) => v === this.voterIds[i])
      peer.otherVoters = same ? undefined : [...msg.voters]
    }
    if (peer.otherVoters) {
      // Two member lists mean two ideas of a majority: counting this peer could make two leaders.
      this.refused.push({
        peer: from,
        reason: 'member-list',
        detail: `${from} counts voters [${peer.otherVoters.join(', ')}] but this node counts [${this.voterIds.join(', ')}]; its messages are refused until both lists are the same`,
      })
      return
    }
    peer.lastContact = now
    peer.connected = true
    if (msg.term > peer.term) peer.term = msg.term

    switch (msg.t) {
      case 'hello':
        peer.tags = { ...msg.tags }
        if (peer.role === 'unknown') peer.role = msg.kind === 'observer' ? 'observer' : 'follower'
        return
      case 'prevote':
        this.onPreVote(now, peer, msg.term)
        return
      case 'prevote-resp':
        this.onPreVoteResponse(now, peer, msg.term, msg.granted)
        return
      case 'vote':
        this.onVote(now, peer, msg.term, msg.transfer)
        return
      case 'vote-resp':
        this.onVoteResponse(now, peer, msg.term, msg.granted, msg.promiseMs ?? 0)
        return
      case 'hb':
        this.onHeartbeat(now, peer, msg.term, msg.seq)
        return
      case 'hb-resp':
        this.onHeartbeatResponse(now, peer, msg.term, msg.seq, msg.ack)
        return
      case 'timeout-now':
        if (msg.term === this.term && from === this.leaderId && this.mode === 'follower')
          this.campaign(now, 'transfer', this.stretch(Math.min(msg.waitMs, this.maxPromiseMs())))
        return
      case 'handover':
        if (msg.term === this.term && from === this.leaderId && msg.to !== this.id) {
          this.handoverTo = { id: msg.to, until: now + this.timing.electionTimeoutMinMs }
        }
        return
    }
  }

  // ---------------------------------------------------------------- elections

  /**
   * Whether this node still follows a leader it heard from within the minimum election timeout. Such a
   * node refuses votes and pre-votes (unless the leader itself asked for a hand-over): the leader's lease
   * rests on this promise.
   */
  private inLease(now: number): boolean {
    return this.leaderId !== undefined && now - this.leaderContact < this.timing.electionTimeoutMinMs
  }

  /**
   * @param inheritedWaitMs on a hand-over: how long (own clock) the predecessor still had to wait
   *   before its lease could start; this candidacy waits at least as long.
   */
  private campaign(now: number, how: 'pre' | 'real' | 'transfer', inheritedWaitMs = 0): void {
    if (this.selfKind === 'observer' || this.mode === 'leader' || this.mode === 'stopped') return
    if (!canAdvanceTerm(this.term)) return // the term space is used up: never send a term peers refuse
    this.votes = new Set([this.id])
    this.leaderId = undefined
    this.leaderContact = Number.NEGATIVE_INFINITY
    this.resetElectionTimer(now)
    if (how === 'pre') {
      this.mode = 'precandidate'
      if (this.quickPreVoteRetry) {
        // Peers that heard the silent leader a moment after we did refuse us (still in their lease) for
        // a few milliseconds more; retry this once soon instead of after a whole election timeout.
        this.quickPreVoteRetry = false
        const hb = this.timing.heartbeatIntervalMs
        this.electionDeadline = now + hb + this.random() * hb
      }
      if (this.hasQuorum(this.votes)) {
        this.campaign(now, 'real')
        return
      }
      for (const p of this.voters()) this.send(p.id, { t: 'prevote', term: this.term + 1 })
      return
    }
    this.mode = 'candidate'
    this.transferCampaign = how === 'transfer'
    // Our own vote may break our own promise too (a campaign started on a crash hint).
    this.votersPromiseEnd = Math.max(
      now + this.brokenPromiseMs(now, this.term + 1, this.transferCampaign),
      now + inheritedWaitMs,
    )
    this.setHardState(this.term + 1, this.id)
    if (this.hasQuorum(this.votes)) {
      this.becomeLeader(now)
      return
    }
    for (const p of this.voters())
      this.send(p.id, { t: 'vote', term: this.term, transfer: how === 'transfer' })
  }

  private onPreVote(now: number, peer: PeerState, term: number): void {
    const eligible = this.selfKind === 'voter' && peer.kind === 'voter' && term > this.term
    const competesWithHandover = this.awaitingHandover(now) && peer.id !== this.handoverTo?.id
    const granted =
      (this.unsafe && this.selfKind === 'voter' && peer.kind === 'voter') ||
      (eligible && !this.inLease(now) && this.mode !== 'leader' && !competesWithHandover)
    if (!granted && eligible && this.inLease(now) && this.mode === 'follower') {
      this.deferredPreVotes.set(peer.id, term)
    }
    // The reply carries the proposed term when granted, our own when not, so a stale candidate learns.
    this.send(peer.id, { t: 'prevote-resp', term: granted ? term : this.term, granted })
  }

  private onPreVoteResponse(now: number, peer: PeerState, term: number, granted: boolean): void {
    if (this.mode !== 'precandidate') return
    if (granted && term === this.term + 1) {
      this.votes.add(peer.id)
      if (this.hasQuorum(this.votes)) this.campaign(now, 'real')
    } else if (!granted && term > this.term) {
      this.becomeFollower(now, term, undefined)
    }
  }

  private onVote(now: number, peer: PeerState, term: number, transfer: boolean): void {
    if (this.selfKind === 'observer' || peer.kind !== 'voter') return
    if (this.unsafe) {
      // The deliberately broken variant: vote for anyone, any term, as often as asked.
      if (term > this.term) this.becomeFollower(now, term, undefined)
      this.setHardState(this.term, peer.id)
      this.send(peer.id, { t: 'vote-resp', term, granted: true })
      return
    }
    if (term < this.term) {
      this.send(peer.id, { t: 'vote-resp', term: this.term, granted: false })
      return
    }
    // Ignore (do not even adopt the term of) a vote request while we follow a live leader, unless that
    // leader is handing over. This keeps a returning or flaky node from deposing a healthy leader.
    if (!transfer && (this.inLease(now) || this.mode === 'leader') && term > this.term) return
    if (term > this.term) this.becomeFollower(now, term, undefined)
    const granted = this.votedFor === undefined || this.votedFor === peer.id
    if (granted) {
      this.setHardState(this.term, peer.id)
      this.resetElectionTimer(now)
      const promiseMs = this.brokenPromiseMs(now, this.term, transfer)
      if (promiseMs > 0) {
        this.send(peer.id, { t: 'vote-resp', term: this.term, granted, promiseMs })
        return
      }
    }
    this.send(peer.id, { t: 'vote-resp', term: this.term, granted })
  }

  private onVoteResponse(
    now: number,
    peer: PeerState,
    term: number,
    granted: boolean,
    promiseMs: number,
  ): void {
    if (term > this.term) {
      this.becomeFollower(now, term, undefined)
      return
    }
    if (this.mode !== 'candidate' || term !== this.term || !granted) return
    if (promiseMs > 0) {
      // promiseMs ran on the voter's clock from when it sent the vote, before now. No promise is longer
      // than electionTimeoutMin, so a larger figure is a fault, capped rather than believed.
      const ms = Math.min(promiseMs, this.maxPromiseMs())
      this.votersPromiseEnd = Math.max(this.votersPromiseEnd, now + this.stretch(ms))
    }
    this.votes.add(peer.id)
    if (this.hasQuorum(this.votes)) this.becomeLeader(now)
  }

  // ---------------------------------------------------------------- leading

  private becomeLeader(now: number): void {
    this.mode = 'leader'
    this.leaderId = this.id
    this.leaderContact = now
    this.leaderSince = now
    // The previous leader's lease may still run if a voter broke its promise to it; wait that out.
    // (A lone voter has no rival to wait for.)
    this.leaseNotBefore =
      this.voterCount === 1 || this.unsafeSkipPromiseWait ? now : Math.max(now, this.votersPromiseEnd)
    this.electionDeadline = Number.POSITIVE_INFINITY
    this.heartbeatsSent.clear()
    for (const p of this.peers.values()) {
      p.ackedSent = Number.NEGATIVE_INFINITY
      p.healthySince = undefined
      if (p.role === 'leader') p.role = 'follower'
    }
    this.broadcastHeartbeat(now)
  }

  private broadcastHeartbeat(now: number): void {
    const seq = this.heartbeatSeq(now)
    for (const p of this.peers.values()) this.send(p.id, { t: 'hb', term: this.term, seq })
    this.heartbeatDeadline = now + this.timing.heartbeatIntervalMs
  }

  /** Numbers a heartbeat about to go out and notes its send time; forgets those too old to matter. */
  private heartbeatSeq(now: number): number {
    const seq = this.nextHeartbeatSeq++
    this.heartbeatsSent.set(seq, now)
    // An ack of a heartbeat older than electionTimeoutMin renews nothing (the lease is shorter).
    const horizon = now - this.timing.electionTimeoutMinMs
    for (const [s, at] of this.heartbeatsSent) {
      if (at >= horizon) break // insertion order is send order
      this.heartbeatsSent.delete(s)
    }
    return seq
  }

  private onHeartbeatResponse(now: number, peer: PeerState, term: number, seq: number, ack: boolean): void {
    if (term > this.term) {
      this.becomeFollower(now, term, undefined)
      return
    }
    if (this.mode !== 'leader' || term !== this.term || !ack) return
    // Only a heartbeat this leader sent in this term counts, timed by when it was sent (own clock): no
    // time on the wire is believed, and a reply to an older term's heartbeat names no seq here.
    const sent = this.heartbeatsSent.get(seq)
    if (sent === undefined) return
    peer.role = peer.kind === 'observer' ? 'observer' : 'follower'
    // A gap longer than the election timeout restarts the peer's healthy streak.
    if (peer.healthySince === undefined || sent - peer.ackedSent > this.timing.electionTimeoutMinMs) {
      peer.healthySince = now
    }
    if (sent > peer.ackedSent) peer.ackedSent = sent
  }

  /**
   * The send time of the newest heartbeat a majority of voters (this node included) acknowledged. Every
   * voter in that majority reset its timer after that moment and will not vote for another node until
   * `electionTimeoutMin` after it, by its own clock.
   */
  private quorumAckedSent(now: number): number {
    const acked: number[] = []
    if (this.selfKind === 'voter') acked.push(now)
    for (const p of this.peers.values()) if (p.kind === 'voter') acked.push(p.ackedSent)
    acked.sort((a, b) => b - a)
    return acked[this.quorum() - 1] ?? Number.NEGATIVE_INFINITY
  }

  /**
   * Check-quorum measures silence from the newest majority ack, or from winning the election when no
   * majority has acked yet. (The lease, unlike this, never counts votes: a voter promises nothing
   * about later terms when it votes.)
   */
  private checkQuorumBase(now: number): number {
    return Math.max(this.leaderSince, this.quorumAckedSent(now))
  }

  private leaseValid(now: number): boolean {
    return (
      this.mode === 'leader' &&
      now >= this.lastStepAt && // a clock that went back proves nothing until the next step
      now >= this.leaseNotBefore &&
      now >= this.leaseNotBefore &&
      now < this.quorumAckedSent(now) + leaseDurationMs(this.timing)
    )
  }

  /** Passes leadership to the best ready voter with a TimeoutNow, then steps down at once. */
  private handOver(now: number): void {
    const target = this.handOverTarget(now)
    // Whatever this leader still had to wait out before its own lease, its successor waits out too.
    const waitMs = Math.max(0, this.leaseNotBefore - now)
    // Stepping down first drops the lease, so this node never claims leadership once the target may win.
    this.becomeFollower(now, this.term, undefined)
    if (target) {
      this.send(target.id, { t: 'timeout-now', term: this.term, waitMs })
      for (const p of this.peers.values())
        if (p !== target) this.send(p.id, { t: 'handover', term: this.term, to: target.id })
      // Do not compete with the successor: wait a full timeout before campaigning ourselves.
      this.electionDeadline = now + this.timing.electionTimeoutMaxMs
    }
  }

  private handOverTarget(now: number): PeerState | undefined {
    const fresh = now - 2 * this.timing.heartbeatIntervalMs - this.timing.electionTimeoutMinMs / 2
    let best: PeerState | undefined
    for (const p of this.voters()) {
      if (!p.connected || p.ackedSent < fresh) continue
      if (
        !best ||
        p.priority > best.priority ||
        (p.priority === best.priority && p.ackedSent > best.ackedSent)
      ) {
        best = p
      }
    }
    return best
  }

  /** A higher-priority voter that has been healthy for a whole election timeout takes over. */
  private maybeHandOverToPriority(now: number): void {
    const target = this.handOverTarget(now)
    if (!target || target.priority <= this.selfPriority || target.healthySince === undefined) return
    if (now - target.healthySince < this.timing.electionTimeoutMaxMs) return
    this.handOver(now)
  }

  // ---------------------------------------------------------------- following

  private onHeartbeat(now: number, peer: PeerState, term: number, seq: number): void {
    if (term < this.term) {
      // A stale leader: tell it our term so it steps down.
      this.send(peer.id, { t: 'hb-resp', term: this.term, seq, ack: false })
      return
    }
    if (
      term > this.term ||
      this.mode === 'candidate' ||
      this.mode === 'precandidate' ||
      this.mode === 'leader'
    ) {
      this.becomeFollower(now, term, peer.id)
    }
    if (this.leaderId !== peer.id) {
      for (const p of this.peers.values()) if (p.role === 'leader') p.role = 'follower'
      this.leaderId = peer.id
      this.handoverTo = undefined
    }
    peer.role = 'leader'
    this.leaderContact = now
    // Acking this heartbeat is the promise the leader's lease rests on.
    this.promiseTo(this.term, now + this.timing.electionTimeoutMinMs)
    this.quickPreVoteRetry = true
    this.resetElectionTimer(now)
    this.send(peer.id, { t: 'hb-resp', term: this.term, seq, ack: true })
  }

  private promiseTo(term: number, until: number): void {
    if (term > this.promise.term) {
      this.olderPromiseUntil = Math.max(this.olderPromiseUntil, this.promise.until)
      this.promise = { term, until }
    } else {
      this.promise.until = Math.max(this.promise.until, until)
    }
  }

  /**
   * How long (own clock) the promises this node made are still owed, if it votes now for a candidate of
   * `term`. A hand-over waives only the promise to the leader that handed over (the leader of
   * `term − 1`, which dropped its lease before asking); promises to leaders of older terms still count.
   */
  private brokenPromiseMs(now: number, term: number, transfer: boolean): number {
    const waived = transfer && this.promise.term === term - 1
    const until = Math.max(this.olderPromiseUntil, waived ? Number.NEGATIVE_INFINITY : this.promise.until)
    return Math.max(0, until - now)
  }

  /** A promise lasts electionTimeoutMin by the voter's clock: no broken one can have more left. */
  private maxPromiseMs(): number {
    return this.timing.electionTimeoutMinMs
  }

  /** A duration measured on another node's clock, as an upper bound on ours (both within the drift bound). */
  private stretch(ms: number): number {
    const d = this.timing.maxClockDrift
    return (ms * (1 + d)) / (1 - d)
  }

  private becomeFollower(now: number, term: number, leader: string | undefined): void {
    if (term > this.term) this.setHardState(term, undefined)
    this.mode = this.selfKind === 'observer' ? 'observer' : 'follower'
    this.leaderId = leader
    this.leaderContact = leader === undefined ? Number.NEGATIVE_INFINITY : now
    this.heartbeatDeadline = Number.POSITIVE_INFINITY
    this.votes.clear()
    this.resetElectionTimer(now)
  }

  // ---------------------------------------------------------------- helpers

  private voters(): PeerState[] {
    return [...this.peers.values()].filter((p) => p.kind === 'voter')
  }

  private quorum(): number {
    return Math.floor(this.voterCount / 2) + 1
  }

  private hasQuorum(votes: Set<string>): boolean {
    return votes.size >= this.quorum()
  }

  private resetElectionTimer(now: number): void {
    if (this.selfKind === 'observer') {
      this.electionDeadline = Number.POSITIVE_INFINITY
      return
    }
    const { electionTimeoutMinMs: min, electionTimeoutMaxMs: max } = this.timing
    this.electionDeadline = now + min + this.random() * (max - min)
  }

  private setHardState(term: number, votedFor: string | undefined): void {
    if (term === this.term && votedFor === this.votedFor) return
    this.term = term
    this.votedFor = votedFor
    this.dirty = true
  }

  private send(to: string, msg: RaftMessage): void {
    this.outbox.push({ to, msg })
  }

  private publicRole(): Role {
    return this.mode === 'precandidate' ? 'candidate' : this.mode
  }

  private noteTransition(): void {
    const role = this.publicRole()
    const leader = this.leaderId
    const last = this.lastTransition
    if (
      last &&
      last.role === role &&
      last.leader === leader &&
      (leader === undefined || last.term === this.term)
    ) {
      return
    }
    this.lastTransition = { role, leader, term: this.term }
    this.transitions.push({
      role,
      leader: leader === undefined ? undefined : { id: leader, term: this.term },
    })
  }

  // ---------------------------------------------------------------- outputs

  ready(): Ready<RaftMessage, RaftHardState> {
    const persist = this.dirty ? { term: this.term, votedFor: this.votedFor } : undefined
    this.dirty = false
    const messages = this.outbox
    this.outbox = []
    const transitions = this.transitions
    this.transitions = []
    const refused = this.refused
    this.refused = []
    let deadline = Number.POSITIVE_INFINITY
    if (this.mode === 'leader') {
      // Wake for the next heartbeat, and for check-quorum if no ack arrives meanwhile.
      const base = Math.max(this.leaderSince, this.quorumAckedSent(Number.POSITIVE_INFINITY))
      deadline = Math.min(this.heartbeatDeadline, base + this.timing.electionTimeoutMinMs)
      // Wake when the lease may start, so the driver reports isLeader turning true on time.
      if (this.leaseNotBefore > this.lastStepAt) deadline = Math.min(deadline, this.leaseNotBefore)
    } else if (this.mode !== 'stopped' && this.mode !== 'observer') {
      deadline = this.electionDeadline
    }
    return { persist, messages, transitions, deadline, ...(refused.length > 0 ? { refused } : {}) }
  }

  view(now: number): MachineView {
    const leader: LeaderView | undefined =
      this.leaderId === undefined ? undefined : { id: this.leaderId, term: this.term }
    const peers: PeerView[] = [...this.peers.values()].map((p) => ({
      id: p.id,
      kind: p.kind,
      role: p.role,
      term: p.term,
      tags: { ...p.tags },
      lastContact: p.lastContact,
      reachable: p.connected,
    }))
    const leaseEnd = this.quorumAckedSent(now) + leaseDurationMs(this.timing)
    const valid = this.leaseValid(now)
    const starts =
      !valid &&
      this.mode === 'leader' &&
      now >= this.lastStepAt &&
      now < this.leaseNotBefore &&
      leaseEnd > this.leaseNotBefore
    return {
      id: this.id,
      role: this.publicRole(),
      term: this.term,
      leader,
      isLeader: valid,
      leaseExpiresAt: valid ? leaseEnd : undefined,
      leaseStartsAt: starts ? this.leaseNotBefore : undefined,
      peers,
    }
  }

  /** The tags this node announces. */
  selfTags(): Record<string, string> {
    return { ...this.tags }
  }

  hardState(): RaftHardState {
    return { term: this.term, votedFor: this.votedFor }
  }
}
