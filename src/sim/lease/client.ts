/**
 * A lease candidate in the simulator: the real LeaseMachine (src/lease/machine.ts, the code the daemon
 * runs) driven by a small pure adapter that plays the roles src/lease/candidate.ts and a store backend
 * play in production, without I/O:
 *
 *   - each store request the machine asks for becomes one message to the store, stamped with the local
 *     time it was sent (`sentAt`, rule 1's start), and its reply one message back; a request not
 *     answered within `requestTimeoutMs` is failed by the machine itself (its rule 6, the same code
 *     candidate.ts relies on), and a later answer is ignored;
 *   - the backend's watch: registered when the connection to the store opens, its notifications (the
 *     whole line at a revision) handed to the machine newest first and never older than one already
 *     handed (the BackendEvents contract); a join's answer hands over the line read with it first;
 *   - leave deletes exactly the entry it means (a compare-and-set on its revision): a request that
 *     timed out may still be applied later, after a join under the same key;
 *   - a missed notification (lost, or still on its way) shows in the revision every reply carries: the
 *     candidate then reads the line again (what a backend does after a watch gap), so no candidate waits
 *     forever on a line it will never be told about.
 *
 * Everything the machine decides (who leads, for how long, when to renew, retry or rejoin) stays in the
 * machine: this adapter only carries requests, answers and the clock to it.
 */
import type { Role } from '../../election.js'
import type { LineEntry } from '../../lease/backend.js'
import { type LeaseInput, LeaseMachine, type LeaseRequest } from '../../lease/machine.js'
import type { LeaseTiming } from '../../lease/options.js'
import type {
  Input,
  LeaderView,
  MachineView,
  Outgoing,
  ProtocolMachine,
  Random,
  Ready,
  Transition,
} from '../../protocol/machine.js'
import type { LeaseWire, StoreReply, StoreRequest, WireEntry } from './wire.js'

export interface LeaseClientOptions {
  id: string
  /** The store's address in the simulation. */
  store: string
  timing: LeaseTiming
  random: Random
  /**
   * Test-only: count validity from when a confirmation *arrived* instead of when its request was sent
   * (a runtime that reads the clock after the await): the time a reply spent in flight, or a pause
   * spent with it in the socket, is then counted as time the store had renewed the session.
   */
  validityFromReply?: boolean
  /**
   * Test-only: leave deletes the key whatever entry it holds now, as the etcd and Consul backends of
   * src/lease/stores do at this writing (ZooKeeper's sequential nodes never reuse a name): a leave that
   * times out is not cancelled, and when it is applied after the candidate joined again under the same
   * session (the same key), it deletes the new entry while its candidate leads on it.
   */
  unguardedLeave?: boolean
  /** Test-only: a missed notification is never caught up with (no re-read on a newer revision). */
  noCatchUp?: boolean
  /**
   * Test-only: the token is the entry key's version (1 for every new key) instead of its create
   * revision: tokens no longer grow across the store.
   */
  tokenFromVersion?: boolean
}

interface Pending {
  wireSeq: number
  request: LeaseRequest
  sentAt: number
}

export class LeaseClient implements ProtocolMachine<LeaseWire, undefined> {
  readonly id: string
  private readonly machine: LeaseMachine
  private started = false
  private wireSeq = 0
  private pending: Pending | undefined
  /** The watch (or a re-read of the line) in flight. */
  private watch: { seq: number; timeoutAt: number } | undefined
  private connected = false
  /** The revision of the newest line handed to the machine. */
  private lineRev = -1
  private machineDeadline = Number.POSITIVE_INFINITY
  private messages: Outgoing<LeaseWire>[] = []
  private transitions: Transition[] = []
  private lastRole: Role = 'candidate'
  private lastLeader: LeaderView | undefined

  constructor(private readonly opts: LeaseClientOptions) {
    this.id = opts.id
    this.machine = new LeaseMachine({
      id: opts.id,
      timing: opts.timing,
      random: opts.random,
      store: 'store',
      target: opts.store,
    })
  }

  step(now: number, input: Input<LeaseWire>): void {
    switch (input.kind) {
      case 'tick':
        this.timeouts(now)
        this.feed(now, { kind: 'tick' })
        break
      case 'receive':
        if (input.from === this.opts.store) this.receive(now, input.msg as StoreReply)
        break
      case 'peerConnected':
        if (input.peer !== this.opts.store) break
        this.connected = true
        this.read(now)
        // As LeaseElection.start() does: the machine starts once the store is connected.
        if (!this.started) {
          this.started = true
          this.feed(now, { kind: 'start' })
        }
        break
      case 'peerUnreachable':
        if (input.peer === this.opts.store) this.connected = false
        break
      case 'resign':
        this.feed(now, { kind: 'resign' })
        break
      case 'stop':
        // Not started: nothing to leave (LeaseElection.stop() before start() only closes).
        if (this.started) this.feed(now, { kind: 'stop' })
        break
    }
    this.observe(now)
  }

  ready(): Ready<LeaseWire, undefined> {
    let deadline = this.machineDeadline
    if (this.watch) deadline = Math.min(deadline, this.watch.timeoutAt)
    const out = { persist: undefined, messages: this.messages, transitions: this.transitions, deadline }
    this.messages = []
    this.transitions = []
    return out
  }

  view(now: number): MachineView {
    const v = this.machine.view(now)
    const leader = v.leader ? { id: v.leader.id, term: Number(v.leader.token) } : undefined
    return {
      id: this.id,
      role: v.role,
      term: leader?.term ?? 0,
      leader,
      isLeader: v.isLeader,
      leaseExpiresAt: v.leaseExpiresAt,
      peers: [],
    }
  }

  // ---- the runtime's part: inputs in, requests out ----------------------------------------------

  private feed(now: number, input: LeaseInput): void {
    this.machine.step(now, input)
    const ready = this.machine.ready()
    // A request the machine timed out (its rule 6): its answer, if it comes, is dropped here too.
    if (this.pending && ready.timedOut.some((r) => r.seq === this.pending?.request.seq))
      this.pending = undefined
    for (const request of ready.requests) this.send(now, request)
    this.machineDeadline = ready.deadline
  }

  private send(now: number, request: LeaseRequest): void {
    const seq = ++this.wireSeq
    const v = this.machine.view(now)
    const session = Number(v.session?.id ?? -1)
    let msg: StoreRequest
    switch (request.kind) {
      case 'openSession':
        msg = { t: 'open', seq, ttlMs: request.ttlMs }
        break
      case 'keepAlive':
        msg = { t: 'keepAlive', seq, session }
        break
      case 'join':
        // One key per session, as etcd's election names it: joining again under it is idempotent.
        msg = { t: 'join', seq, session, id: this.id, key: `e/${session}` }
        break
      case 'leave': {
        const key = v.self?.key ?? `e/${session}`
        const rev = v.self === undefined || this.opts.unguardedLeave ? undefined : Number(v.self.token)
        msg = rev === undefined ? { t: 'leave', seq, key } : { t: 'leave', seq, key, rev }
        break
      }
      case 'closeSession':
        msg = { t: 'close', seq, session }
        break
    }
    // The send time is noted as the request leaves: validity counts from it (machine rule 1).
    this.pending = { wireSeq: seq, request, sentAt: now }
    this.messages.push({ to: this.opts.store, msg })
  }

  /** The watch's own timeout (a request's is the machine's: rule 6). */
  private timeouts(now: number): void {
    if (this.watch && now >= this.watch.timeoutAt) {
      this.watch = undefined
      this.read(now)
    }
  }

  /** Registers the watch and reads the line (again). */
  private read(now: number): void {
    if (!this.connected || this.watch) return
    const seq = ++this.wireSeq
    this.watch = { seq, timeoutAt: now + this.opts.timing.requestTimeoutMs }
    this.messages.push({ to: this.opts.store, msg: { t: 'watch', seq } })
  }

  private receive(now: number, msg: StoreReply): void {
    if (msg.t === 'line') {
      if (msg.seq !== undefined && msg.seq === this.watch?.seq) this.watch = undefined
      this.line(now, msg.rev, msg.entries)
      return
    }
    const p = this.pending
    // A late answer (its request timed out) or a duplicate: the runtime has moved on. (The machine
    // ignores an answer to a request it timed out, too: its seq no longer matches.)
    if (p && p.wireSeq === msg.seq) {
      this.pending = undefined
      const seq = p.request.seq
      const sentAt = this.opts.validityFromReply ? now : p.sentAt
      switch (msg.t) {
        case 'opened':
          this.feed(now, {
            kind: 'sessionOpened',
            seq,
            sentAt,
            session: { id: String(msg.session), ttlMs: msg.ttlMs },
          })
          break
        case 'joined':
          // As the backend does: the line read with the join is reported before the join's answer.
          this.line(now, msg.rev, msg.entries)
          this.feed(now, { kind: 'joined', seq, entry: this.entry(msg.entry) })
          break
        case 'sessionLost':
          this.feed(now, {
            kind: 'failed',
            seq,
            reason: 'sessionLost',
            error: new Error('store: session lost'),
          })
          break
        case 'done':
          if (p.request.kind === 'keepAlive') this.feed(now, { kind: 'keptAlive', seq, sentAt })
          else if (p.request.kind === 'leave') this.feed(now, { kind: 'left', seq })
          else this.feed(now, { kind: 'sessionClosed', seq })
          break
      }
    }
    // The store has moved past the line we know: a notification was lost or is still on its way.
    if (msg.rev > this.lineRev && !this.opts.noCatchUp) this.read(now)
  }

  /** Hands the machine a line, unless it already has this one or a newer one. */
  private line(now: number, rev: number, entries: WireEntry[]): void {
    if (rev <= this.lineRev) return
    this.lineRev = rev
    this.feed(now, { kind: 'line', entries: entries.map((e) => this.entry(e)) })
  }

  private entry(e: WireEntry): LineEntry {
    const rev = BigInt(e.rev)
    return { id: e.id, key: e.key, order: rev, token: this.opts.tokenFromVersion ? 1n : rev }
  }

  /** Role and leader changes become the Ready's transitions, for the checker. */
  private observe(now: number): void {
    const v = this.view(now)
    const same =
      v.role === this.lastRole &&
      v.leader?.id === this.lastLeader?.id &&
      v.leader?.term === this.lastLeader?.term
    if (same) return
    this.lastRole = v.role
    this.lastLeader = v.leader
    this.transitions.push({ role: v.role, leader: v.leader })
  }
}
