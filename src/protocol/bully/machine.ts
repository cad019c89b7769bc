/**
 * The Bully algorithm as a pure state machine: the highest-ranked live node (by pid, then id) leads.
 *
 * The classic algorithm runs rounds of ELECTION / OK / COORDINATOR messages, O(n²) in the worst case,
 * and MultiBully needed "a few goes round" to converge. This one converges in one claim once the network
 * is quiet, because every message says who sent it (pid, address) and which epoch it knows:
 *
 *   - A node that loses its leader (silence for `leaderTimeoutMs`, a "bye", or the transport's
 *     process-gone hint) claims at once if no live node outranks it; otherwise it waits one `claimStepMs`
 *     per live node above it, so the highest survivor's claim arrives first and the rest just follow.
 *   - A starting node listens for two heartbeat intervals; if it hears a leader it outranks, or none, it
 *     claims. So all nodes starting at once yield exactly one claim, from the highest (no deadlock).
 *   - A node that hears a claim or heartbeat from a node it outranks claims itself at once: a returning
 *     higher node takes over through one election, not a storm.
 *   - A leader that hears of a newer epoch than its own (from a partition's other leader) claims again
 *     with a larger one, so after any heal the highest node ends up leading with the largest epoch.
 *
 * Each claim takes a new epoch larger than any the node has seen, in the node's own slot so that no two
 * nodes can ever take the same one (see ./epochs.ts): the fencing token. Under a partition each side may
 * elect its own leader, each with its own token: bully promises one leader only once the network is
 * whole again.
 *
 * An epoch from the wire is believed only within `MAX_TERM_JUMP` of the largest known (../terms.ts): a
 * message with any other is dropped whole, reported in `Ready.refused` (counted by the runtime), and
 * changes nothing. No
 * epoch above `MAX_TERM` is ever persisted or sent: a node whose next claim would pass it never claims
 * again, and says so in `view().problems`.
 */
import type { Role } from '../../election.js'
import {
  BROADCAST,
  type Input,
  type LeaderView,
  type MachineView,
  type Outgoing,
  type PeerView,
  type ProtocolMachine,
  type Ready,
  type Refusal,
  type Transition,
} from '../machine.js'
import { believableTerm, MAX_TERM } from '../terms.js'
import { EPOCH_SLOTS, epochSlot, nextEpoch } from './epochs.js'
import type { BullyHardState, BullyMessage } from './messages.js'
import { type BullyTiming, outranks, peerExpiryMs, startListenMs } from './options.js'

export interface BullyPeer {
  id: string
  /** Known only once the peer has spoken, unless given. */
  pid?: number
  address?: string
}

export interface BullyMachineOptions {
  id: string
  /**
   * This node's rank: the highest pid leads (ties broken by the larger id). Its pid modulo 1000 is
   * also the slot its epochs are taken in: give nodes pids that differ there (any distinct pids from 0
   * to 999) and no two leaderships can ever share a fencing token.
   */
  pid: number
  /** This node's unicast address, carried in every message. */
  address: string
  timing: BullyTiming
  /** Peers known at start; others are learned when they speak. */
  peers?: BullyPeer[]
  /** What this node persisted before a restart. */
  hardState?: BullyHardState
}

/**
 * Most peers one node keeps. Without a key anyone can speak, and every claim or heartbeat may name 256
 * members: unbounded, a few thousand forged datagrams would fill the heap (and, over TCP, set the node
 * dialling every address named). A full table makes room by forgetting a peer silent past the expiry.
 */
export const MAX_BULLY_PEERS = 1024

/** Margin on a starting peer's listening time, for clock-rate differences and delay. */
const START_SLACK = 1.2

type Mode = 'starting' | 'electing' | 'follower' | 'leader' | 'stopped'

interface PeerState {
  id: string
  pid: number | undefined
  address: string | undefined
  lastHeard: number
  /** The peer said it left (bye) or its process is gone; live again when it next speaks. */
  gone: boolean
  resigned: boolean
  epoch: number
  /** When it was last heard after a silence (or for the first time): it may be starting itself. */
  since: number
}

export class BullyMachine implements ProtocolMachine<BullyMessage, BullyHardState> {
  readonly id: string
  private readonly pid: number
  /** This node's rank, as `outranks` compares it. */
  private readonly self: { pid: number; id: string }
  private readonly address: string
  private readonly timing: BullyTiming
  private readonly peers = new Map<string, PeerState>()

  private mode: Mode = 'starting'
  /** Epoch of the leadership this node follows or holds (0: none yet). */
  private epoch = 0
  /** The largest epoch this node has seen anywhere; a claim takes the next one in its slot. */
  private maxEpoch: number
  /** This node's epoch slot (see ./epochs.ts). */
  private readonly slot: number
  /** Messages refused since the last Ready (an epoch beyond belief, see ../terms.ts). */
  private refused: Refusal[] = []
  /** Set once this node's next claim would pass MAX_TERM: it never claims again. */
  private exhausted = false
  /** Peers whose pid puts them in this node's epoch slot (their claims could share a token with ours). */
  private readonly slotSharers = new Set<string>()
  private leaderId: string | undefined
  private leaderHeard = Number.NEGATIVE_INFINITY
  /** The leader this node just lost: not counted among live nodes until it speaks again. */
  private lostLeader: string | undefined
  /** Until when this node leaves leadership to others after resign() (see BullyTiming.resignHoldMs). */
  private resignedUntil = Number.NEGATIVE_INFINITY
  /** Whether the resign hold is on, as of the last input. */
  private resigned = false
  private started = false
  private electionDeadline = Number.POSITIVE_INFINITY
  private heartbeatDeadline = Number.POSITIVE_INFINITY
  private aliveDeadline = Number.POSITIVE_INFINITY
  private dirty = false
  /** The sender of the message refused by the last input, if it was one (see peerConnected). */
  private refusedLast: string | undefined
  private outbox: Outgoing<BullyMessage>[] = []
  private transitions: Transition[] = []
  private lastTransition: { role: Role; leader: string | undefined; epoch: number } | undefined

  constructor(opts: BullyMachineOptions) {
    this.id = opts.id
    this.pid = opts.pid
    this.self = { pid: opts.pid, id: opts.id }
    this.address = opts.address
    this.timing = opts.timing
    this.slot = epochSlot(opts.pid)
    this.maxEpoch = opts.hardState?.epoch ?? 0
    for (const p of opts.peers ?? []) if (p.id !== this.id) this.learn(p.id, p.pid, p.address)
  }

  /** The unicast address a peer (or this node) announced, if known. */
  addressOf(id: string): string | undefined {
    return id === this.id ? this.address : this.peers.get(id)?.address
  }

  step(now: number, input: Input<BullyMessage>): void {
    if (this.mode === 'stopped') return
    if (!this.started && input.kind !== 'stop') this.start(now)
    const refusedJustNow = this.refusedLast
    this.refusedLast = undefined
    this.resigned = now < this.resignedUntil
    switch (input.kind) {
      case 'tick':
        this.tick(now)
        break
      case 'receive':
        this.receive(now, input.from, input.msg)
        break
      case 'peerConnected':
        // Greet only a node this one knows, and not on the heels of a message of its that was refused:
        // over multicast a sender's first message is followed at once by the news of a new peer, and a
        // refused message (a forged epoch jump) must not earn its sender a hello and the member list.
        if (!this.peers.has(input.peer) || refusedJustNow === input.peer) break
        this.send(input.peer, this.message('hello'))
        if (this.mode === 'leader') this.send(input.peer, this.withMembers(this.message('hb')))
        break
      case 'peerUnreachable':
        this.peerGone(now, input.peer)
        break
      case 'resign':
        if (this.mode === 'leader') this.resign(now)
        break
      case 'stop':
        if (this.started) this.send(BROADCAST, { ...this.message('bye'), leaving: true } as BullyMessage)
        this.mode = 'stopped'
        this.leaderId = undefined
        break
    }
    this.noteTransition()
  }

  // ---------------------------------------------------------------- time

  private start(now: number): void {
    this.started = true
    this.mode = 'starting'
    // Listen for a leader (and for who else is here) before claiming.
    this.electionDeadline = now + startListenMs(this.timing)
    this.aliveDeadline = now + this.timing.aliveIntervalMs
    this.send(BROADCAST, this.message('hello'))
  }

  private tick(now: number): void {
    if (this.mode === 'leader') {
      if (now >= this.heartbeatDeadline) {
        // Now and then the heartbeat lists every node we know, so the cluster's lists converge.
        const withMembers = now >= this.aliveDeadline
        if (withMembers) this.aliveDeadline = now + this.timing.aliveIntervalMs
        this.send(BROADCAST, withMembers ? this.withMembers(this.message('hb')) : this.message('hb'))
        this.heartbeatDeadline = now + this.timing.heartbeatIntervalMs
      }
      return
    }
    if (now >= this.aliveDeadline) {
      this.send(BROADCAST, this.message('hello'))
      this.aliveDeadline = now + this.timing.aliveIntervalMs
    }
    if (this.mode === 'follower' && now >= this.leaderHeard + this.timing.leaderTimeoutMs) {
      this.leaderLost(now)
      return
    }
    if (this.mode === 'starting' && now >= this.electionDeadline) {
      this.mode = 'electing'
      this.scheduleClaim(now)
      return
    }
    if (this.mode === 'electing' && now >= this.electionDeadline) this.claim(now)
  }

  // ---------------------------------------------------------------- elections

  /**
   * Claims now if no live node outranks this one; else waits one step per node above it, counted from
   * when the last of those could itself claim (a node that has just started listens first).
   */
  private scheduleClaim(now: number): void {
    const above = this.liveAbove(now)
    if (above.count === 0 && !this.resigned) {
      this.claim(now)
      return
    }
    // A resigned node waits behind everyone, but still leads if nobody else does.
    const rank = this.resigned ? this.peers.size + 1 : above.count
    this.electionDeadline = Math.max(now, above.readyAt) + rank * this.timing.claimStepMs
  }

  /** Live, eligible nodes that outrank this one, and when the last of them ends its start-up listening. */
  private liveAbove(now: number): { count: number; readyAt: number } {
    const expiry = peerExpiryMs(this.timing)
    let count = 0
    let readyAt = Number.NEGATIVE_INFINITY
    for (const p of this.peers.values()) {
      if (p.pid === undefined || p.gone || p.resigned || p.id === this.lostLeader) continue
      if (now - p.lastHeard > expiry) continue
      if (!outranks({ pid: p.pid, id: p.id }, this.self)) continue
      count++
      // Its listening ends startListenMs after it started, by its own clock: allow for clock rates that
      // differ by up to 10 % and for delay, so a lower node never beats a higher one to the claim.
      readyAt = Math.max(readyAt, p.since + startListenMs(this.timing) * START_SLACK)
    }
    return { count, readyAt }
  }

  private leaderLost(now: number): void {
    this.lostLeader = this.leaderId
    this.leaderId = undefined
    this.leaderHeard = Number.NEGATIVE_INFINITY
    this.mode = 'electing'
    this.scheduleClaim(now)
  }

  /** Whether this node can still take a new epoch (its next one would not pass MAX_TERM). */
  private canClaim(): boolean {
    return nextEpoch(this.maxEpoch, this.slot) <= MAX_TERM
  }

  private claim(now: number): void {
    if (!this.canClaim()) {
      // Sending or persisting a larger epoch would brick every peer and this node's own restart. Never
      // claim again; a leader that had to claim again steps down.
      this.exhausted = true
      this.electionDeadline = Number.POSITIVE_INFINITY
      if (this.leaderId === this.id) {
        this.leaderId = undefined
        this.mode = 'electing'
        this.heartbeatDeadline = Number.POSITIVE_INFINITY
      }
      return
    }
    this.maxEpoch = nextEpoch(this.maxEpoch, this.slot)
    this.dirty = true
    this.epoch = this.maxEpoch
    this.mode = 'leader'
    this.leaderId = this.id
    this.lostLeader = undefined
    this.resigned = false
    this.resignedUntil = Number.NEGATIVE_INFINITY
    this.electionDeadline = Number.POSITIVE_INFINITY
    this.heartbeatDeadline = now + this.timing.heartbeatIntervalMs
    this.send(BROADCAST, this.withMembers(this.message('claim')))
  }

  private resign(now: number): void {
    this.resigned = true
    this.resignedUntil = now + this.timing.resignHoldMs
    this.send(BROADCAST, { ...this.message('bye'), leaving: false } as BullyMessage)
    this.leaderId = undefined
    this.mode = 'electing'
    this.heartbeatDeadline = Number.POSITIVE_INFINITY
    // Take leadership back only if nobody else has claimed within a full timeout.
    this.electionDeadline = now + this.timing.leaderTimeoutMs + this.peers.size * this.timing.claimStepMs
  }

  private follow(now: number, leader: PeerState, epoch: number): void {
    this.mode = 'follower'
    this.leaderId = leader.id
    this.epoch = epoch
    this.leaderHeard = now
    this.lostLeader = undefined
    this.electionDeadline = Number.POSITIVE_INFINITY
    this.heartbeatDeadline = Number.POSITIVE_INFINITY
  }

  // ---------------------------------------------------------------- messages

  private receive(now: number, from: string, msg: BullyMessage): void {
    if (from === this.id) return
    const heardOf = msg.t === 'claim' || msg.t === 'hb' ? Math.max(msg.epoch, msg.max ?? 0) : msg.epoch
    if (!believableTerm(this.maxEpoch, msg.epoch) || !believableTerm(this.maxEpoch, heardOf)) {
      // Believed, it would lift maxEpoch near 2^53, where no node could ever claim again.
      this.refusedLast = from
      this.refused.push({
        peer: from,
        reason: 'term-jump',
        detail: `${from} sent epoch ${heardOf}, more than 2^32 above this node's ${this.maxEpoch}; dropped`,
      })
      return
    }
    const known = this.peers.get(from)
    const isNew = known === undefined || known.gone || now - known.lastHeard > peerExpiryMs(this.timing)
    const peer = this.learn(from, msg.pid, msg.addr, now)
    if (!peer) {
      this.refusedLast = from
      this.refused.push({
        peer: from,
        reason: 'unknown-peer',
        detail: `${from} is new and this node already keeps ${MAX_BULLY_PEERS} peers heard recently; dropped`,
      })
      return
    }
    if (isNew) peer.since = now
    peer.lastHeard = now
    peer.gone = false
    peer.resigned = msg.resigned ?? false
    peer.epoch = msg.epoch
    if (heardOf > this.maxEpoch) {
      this.maxEpoch = heardOf
      this.dirty = true
    }
    switch (msg.t) {
      case 'hello':
        // A newcomer (or a node back from silence) learns of us, and of the leader, at once.
        if (isNew) {
          this.send(from, this.message('hello'))
          if (this.mode === 'leader') this.send(from, this.withMembers(this.message('hb')))
        }
        if (
          this.mode === 'leader' &&
          msg.epoch > this.epoch &&
          outranks(this.self, { pid: peer.pid ?? Number.NEGATIVE_INFINITY, id: peer.id })
        )
          this.claimAgain(now)
        return
      case 'claim':
      case 'hb':
        for (const m of msg.members ?? []) if (m.id !== this.id) this.learn(m.id, undefined, m.addr, now)
        this.onLeaderMessage(now, peer, msg.epoch)
        return
      case 'bye':
        peer.gone = msg.leaving
        if (peer.id === this.leaderId && this.mode === 'follower') this.leaderLost(now)
        else if (this.mode === 'electing') this.scheduleClaim(now)
        return
    }
  }

  /** A claim or heartbeat: `peer` says it leads with `epoch`. */
  private onLeaderMessage(now: number, peer: PeerState, epoch: number): void {
    const candidate = { pid: peer.pid ?? Number.NEGATIVE_INFINITY, id: peer.id }
    // A node that can no longer claim (epochs exhausted) follows whoever leads instead.
    if (outranks(this.self, candidate) && !this.resigned && this.canClaim()) {
      // We outrank it and we are alive: bully it.
      if (this.mode === 'leader') {
        if (epoch >= this.epoch) this.claimAgain(now)
        else this.send(peer.id, this.message('hb')) // it will see a higher node with a newer epoch
        return
      }
      // While we follow a live leader that outranks it, that leader will answer it.
      const leader = this.leaderId === undefined ? undefined : this.peers.get(this.leaderId)
      if (
        this.mode === 'follower' &&
        leader?.pid !== undefined &&
        outranks({ pid: leader.pid, id: leader.id }, candidate)
      )
        return
      this.claim(now)
      return
    }
    const current = this.leaderId === undefined ? undefined : this.peers.get(this.leaderId)
    const accept =
      epoch > this.epoch ||
      (epoch === this.epoch &&
        (current === undefined ||
          current.id === peer.id ||
          this.mode !== 'follower' ||
          outranks(candidate, { pid: current.pid ?? Number.NEGATIVE_INFINITY, id: current.id })))
    if (!accept) {
      // A stale leader: tell it the epoch we know, so it claims again with a newer one.
      this.send(peer.id, this.message('hello'))
      return
    }
    if (peer.id === this.leaderId && this.mode === 'follower') {
      this.leaderHeard = now
      this.epoch = epoch
      return
    }
    this.follow(now, peer, epoch)
  }

  /** Already leading, but another leader's epoch caught up with ours: claim a newer one. */
  private claimAgain(now: number): void {
    this.mode = 'electing'
    this.claim(now)
  }

  private peerGone(now: number, id: string): void {
    const peer = this.peers.get(id)
    if (!peer) return
    peer.gone = true
    if (id === this.leaderId && this.mode === 'follower') this.leaderLost(now)
  }

  /**
   * The peer's state, made on first mention; undefined when the table is full of peers heard within the
   * expiry (see MAX_BULLY_PEERS).
   */
  private learn(
    id: string,
    pid: number | undefined,
    address: string | undefined,
    now = Number.NEGATIVE_INFINITY,
  ): PeerState | undefined {
    let peer = this.peers.get(id)
    if (!peer) {
      if (this.peers.size >= MAX_BULLY_PEERS && !this.forgetOneSilent(now)) return undefined
      peer = {
        id,
        pid,
        address,
        lastHeard: Number.NEGATIVE_INFINITY,
        gone: false,
        resigned: false,
        epoch: 0,
        since: Number.NEGATIVE_INFINITY,
      }
      this.peers.set(id, peer)
    }
    if (pid !== undefined) {
      peer.pid = pid
      if (epochSlot(pid) === this.slot) this.slotSharers.add(id)
      else this.slotSharers.delete(id)
    }
    if (address !== undefined) peer.address = address
    return peer
  }

  /** Forgets one peer silent past the expiry (never the leader being followed); false if none is. */
  private forgetOneSilent(now: number): boolean {
    const expiry = peerExpiryMs(this.timing)
    for (const [id, p] of this.peers) {
      if (id === this.leaderId || id === this.lostLeader || now - p.lastHeard <= expiry) continue
      this.peers.delete(id)
      this.slotSharers.delete(id)
      return true
    }
    return false
  }

  private message(t: 'hello' | 'claim' | 'hb' | 'bye'): BullyMessage {
    const m = { t, pid: this.pid, addr: this.address, epoch: this.maxEpoch } as BullyMessage
    if (m.t === 'claim' || m.t === 'hb') {
      m.epoch = this.epoch
      // What we have heard of travels on, so a claim made after hearing us is above it too.
      if (this.maxEpoch > this.epoch) m.max = this.maxEpoch
    }
    if (this.resigned) m.resigned = true
    return m
  }

  private withMembers(msg: BullyMessage): BullyMessage {
    if (msg.t !== 'claim' && msg.t !== 'hb') return msg
    const members = [{ id: this.id, addr: this.address }]
    for (const p of this.peers.values()) {
      if (p.address !== undefined && !p.gone && members.length < 256)
        members.push({ id: p.id, addr: p.address })
    }
    return { ...msg, members }
  }

  private send(to: string, msg: BullyMessage): void {
    this.outbox.push({ to, msg })
  }

  // ---------------------------------------------------------------- output

  private publicRole(): Role {
    switch (this.mode) {
      case 'leader':
        return 'leader'
      case 'follower':
        return 'follower'
      case 'stopped':
        return 'stopped'
      default:
        return 'candidate'
    }
  }

  private noteTransition(): void {
    const role = this.publicRole()
    const last = this.lastTransition
    if (
      last &&
      last.role === role &&
      last.leader === this.leaderId &&
      (this.leaderId === undefined || last.epoch === this.epoch)
    )
      return
    this.lastTransition = { role, leader: this.leaderId, epoch: this.epoch }
    this.transitions.push({
      role,
      leader: this.leaderId === undefined ? undefined : { id: this.leaderId, term: this.epoch },
    })
  }

  ready(): Ready<BullyMessage, BullyHardState> {
    const persist = this.dirty ? { epoch: this.maxEpoch } : undefined
    this.dirty = false
    const messages = this.outbox
    this.outbox = []
    const transitions = this.transitions
    this.transitions = []
    const refused = this.refused
    this.refused = []
    let deadline = Number.POSITIVE_INFINITY
    switch (this.mode) {
      case 'leader':
        deadline = this.heartbeatDeadline
        break
      case 'follower':
        deadline = Math.min(this.leaderHeard + this.timing.leaderTimeoutMs, this.aliveDeadline)
        break
      case 'starting':
      case 'electing':
        deadline = Math.min(this.electionDeadline, this.aliveDeadline)
        break
    }
    return { persist, messages, transitions, deadline, ...(refused.length > 0 ? { refused } : {}) }
  }

  view(now: number): MachineView {
    const leader: LeaderView | undefined =
      this.leaderId === undefined ? undefined : { id: this.leaderId, term: this.epoch }
    const expiry = peerExpiryMs(this.timing)
    const peers: PeerView[] = [...this.peers.values()].map((p) => ({
      id: p.id,
      kind: 'voter',
      role:
        p.id === this.leaderId ? 'leader' : p.lastHeard > Number.NEGATIVE_INFINITY ? 'follower' : 'unknown',
      term: p.epoch,
      tags: {},
      lastContact: Number.isFinite(p.lastHeard) ? p.lastHeard : undefined,
      reachable: !p.gone && now - p.lastHeard <= expiry,
    }))
    const problems: string[] = []
    if (this.exhausted)
      problems.push(
        `epochs exhausted: the next claim would pass ${MAX_TERM}, so this node never claims again`,
      )
    for (const id of this.slotSharers)
      problems.push(
        `${id} has pid ${this.peers.get(id)?.pid}, in this node's epoch slot (pid ${this.pid}; pids are taken modulo ${EPOCH_SLOTS}): claims of the two at once could share a fencing token; give every node its own pid from 0 to ${EPOCH_SLOTS - 1}`,
      )
    return {
      id: this.id,
      role: this.publicRole(),
      term: this.epoch,
      leader,
      isLeader: this.mode === 'leader',
      peers,
      problems,
    }
  }
}
