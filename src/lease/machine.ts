/**
 * The lease driver's pure state machine: every timing rule of a candidate on a coordination store, and
 * nothing else. Same shape as the raft and bully machines: `step(now, input)`, `ready()`, `view(now)`;
 * no clock, timer, I/O or randomness of its own (the random source is injected, for jitter).
 *
 * It asks for one store request at a time (`ready().requests`); the runtime notes its monotonic time just
 * before sending each one and passes it back with the result as `sentAt`. The rules:
 *
 *   1. The session is proven alive only by a request the store confirmed (the grant, or a keep-alive),
 *      and counts from when that request was sent:
 *        validUntil = sentAt + ttl × (1 − maxClockDrift) − safetyMargin     (ttl: the granted one)
 *   2. isLeader() is true only while this candidate heads the store's line AND the session is valid AND
 *      the connection is not suspended (any failed request, or the backend's `suspended`).
 *   3. A keep-alive goes out every ttl/3 after the send of the last confirmed one; failures are retried
 *      with exponential backoff and jitter; a lost session is replaced by a new one, and the line joined
 *      again.
 *   4. Fencing tokens only grow: the machine never reports a leadership whose token is not above every
 *      token it reported before (its own or another's). A leadership, once interrupted (suspension,
 *      validity lapsed), is never resumed on the same token: like Curator's LeaderLatch after a
 *      reconnect, the candidate leaves the line and joins again at the back, with a new token.
 *   5. resign: leave the line and join again at once (at the back: the next candidate leads first).
 *      stop: leave and close the session.
 *   6. A request the store has not answered within requestTimeoutMs of its send fails as 'unavailable'
 *      (the connection is in doubt: rule 2 stops leadership at once); its answer, if it comes later, is
 *      ignored. The runtime need not bound its requests: the machine names the timeout as a deadline.
 */
import type { Role } from '../election.js'
import { StoreUnavailableError, TokenNotNewerError } from '../errors.js'
import type { Random } from '../protocol/machine.js'
import { type BackendSession, type LineEntry, lineHead } from './backend.js'
import { keepAliveIntervalMs, type LeaseTiming, validityMs } from './options.js'

/** A store request the machine wants sent; its result comes back as an input with the same `seq`. */
export type LeaseRequest =
  | { kind: 'openSession'; seq: number; ttlMs: number }
  | { kind: 'keepAlive'; seq: number }
  | { kind: 'join'; seq: number }
  | { kind: 'leave'; seq: number }
  | { kind: 'closeSession'; seq: number }

/** Why a request failed, as the runtime classifies the backend's error. */
export type FailureReason = 'unavailable' | 'refused' | 'sessionLost'

export type LeaseInput =
  /** Time passed (the runtime calls this at or after `ready().deadline`). */
  | { kind: 'tick' }
  | { kind: 'start' }
  | { kind: 'sessionOpened'; seq: number; sentAt: number; session: BackendSession }
  | { kind: 'keptAlive'; seq: number; sentAt: number }
  | { kind: 'joined'; seq: number; entry: LineEntry }
  | { kind: 'left'; seq: number }
  | { kind: 'sessionClosed'; seq: number }
  | { kind: 'failed'; seq: number; reason: FailureReason; error: Error }
  /** The backend's events. */
  | { kind: 'line'; entries: LineEntry[] }
  | { kind: 'suspended'; error: Error }
  | { kind: 'resumed' }
  | { kind: 'sessionLost'; error: Error }
  /** Commands. */
  | { kind: 'resign' }
  | { kind: 'stop' }

export interface LeaseView {
  id: string
  role: Role
  /** Rule 2, at `now`. */
  isLeader: boolean
  /** Who leads as far as this candidate may say (an accepted head of the line), if anyone. */
  leader: LineEntry | undefined
  /** The line as last reported by the store, head first. */
  line: LineEntry[]
  /** This candidate's own entry while it is in the line. */
  self: LineEntry | undefined
  session: (BackendSession & { validUntil: number }) | undefined
  suspended: boolean
  /** When isLeader() turns false unless a keep-alive is confirmed first; undefined when not leading. */
  leaseExpiresAt: number | undefined
  /** Consecutive failed requests. */
  failures: number
  stopped: boolean
}

export interface LeaseReady {
  requests: LeaseRequest[]
  /** Requests that went unanswered past requestTimeoutMs (rule 6), now failed; their errors are in `errors`. */
  timedOut: LeaseRequest[]
  /** Errors to report (store unavailable or refused, token not newer, session lost). */
  errors: Error[]
  /** Absolute time of the next tick the machine needs (Infinity: none). */
  deadline: number
}

export interface LeaseMachineOptions {
  id: string
  timing: LeaseTiming
  random: Random
  /** The store's name, for the errors of requests that timed out (rule 6). Default 'store'. */
  store?: string
  /** Where the store is (hosts, agent URL; never credentials), for those errors too. */
  target?: string
}

/** How each request is named in a timeout's error. */
const REQUEST_NAMES: Record<LeaseRequest['kind'], string> = {
  openSession: 'a session grant',
  keepAlive: 'a keep-alive',
  join: 'a join',
  leave: 'a leave',
  closeSession: 'a session close',
}

interface Session extends BackendSession {
  /** Send time of the last request the store confirmed on this session. */
  provenAt: number
  validUntil: number
}

export class LeaseMachine {
  readonly id: string
  private readonly timing: LeaseTiming
  private readonly random: Random

  private started = false
  private stopping = false
  private stopped = false
  private seq = 0
  private pending: LeaseRequest | undefined
  /** When the request in flight times out (rule 6). */
  private pendingTimeoutAt = Number.POSITIVE_INFINITY
  private readonly store: string
  private readonly target: string | undefined
  private session: Session | undefined
  private self: LineEntry | undefined
  private line: LineEntry[] = []
  private suspended = false
  private failures = 0
  private retryAt = Number.NEGATIVE_INFINITY
  /** Leave the line and join again (resign, or an interrupted leadership). */
  private rejoin = false
  /** The leadership this candidate holds (rule 4): its token. */
  private leadingToken: bigint | undefined
  /** The leader this machine reports, once accepted. */
  private reported: LineEntry | undefined
  /**
   * The last leadership reported, kept while none is: when a line briefly shows no one to report (our
   * own entry, just left, at the head of a line read before the leave), the same leadership is named
   * again after, on its own token, rather than refused as not above itself.
   */
  private lastReported: LineEntry | undefined
  /** The highest token reported so far (-1: none). */
  private highestToken = -1n
  /** A token already refused, so the error is reported once. */
  private refusedToken: bigint | undefined

  private requests: LeaseRequest[] = []
  private timedOut: LeaseRequest[] = []
  private errors: Error[] = []

  constructor(opts: LeaseMachineOptions) {
    this.id = opts.id
    this.timing = opts.timing
    this.random = opts.random
    this.store = opts.store ?? 'store'
    this.target = opts.target
  }

  step(now: number, input: LeaseInput): void {
    if (this.stopped) return
    this.expire(now)
    switch (input.kind) {
      case 'tick':
        break
      case 'start':
        this.started = true
        break
      case 'sessionOpened':
        if (!this.settle(input.seq)) return
        this.succeeded()
        this.session = { ...input.session, provenAt: input.sentAt, validUntil: 0 }
        this.prove(input.sentAt)
        break
      case 'keptAlive':
        if (!this.settle(input.seq)) return
        this.succeeded()
        this.prove(input.sentAt)
        break
      case 'joined':
        if (!this.settle(input.seq)) return
        this.succeeded()
        this.self = input.entry
        break
      case 'left':
        if (!this.settle(input.seq)) return
        this.succeeded()
        this.leftLine()
        break
      case 'sessionClosed':
        if (!this.settle(input.seq)) return
        this.succeeded()
        this.session = undefined
        this.self = undefined
        break
      case 'failed': {
        const request = this.pending
        if (!this.settle(input.seq) || !request) return
        this.fail(now, request, input.reason, input.error)
        break
      }
      case 'line':
        this.line = [...input.entries].sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0))
        if (this.self) {
          const key = this.self.key
          const mine = this.line.find((e) => e.key === key)
          // Our entry is gone (deleted by hand, or with its session): join again.
          if (mine) this.self = mine
          else if (this.pending?.kind !== 'join') this.self = undefined
        }
        break
      case 'suspended':
        this.suspended = true
        this.backoff(now)
        break
      case 'resumed':
        this.suspended = false
        break
      case 'sessionLost':
        this.errors.push(input.error)
        this.loseSession(now)
        break
      case 'resign':
        if (this.leadingToken !== undefined || this.isHead()) this.rejoin = true
        break
      case 'stop':
        this.stopping = true
        break
    }
    this.advance(now)
  }

  ready(): LeaseReady {
    const out: LeaseReady = {
      requests: this.requests,
      timedOut: this.timedOut,
      errors: this.errors,
      deadline: this.deadline(),
    }
    this.requests = []
    this.timedOut = []
    this.errors = []
    return out
  }

  view(now: number): LeaseView {
    const leading = this.leadingAt(now)
    const self = this.self
    return {
      id: this.id,
      role: this.stopped ? 'stopped' : leading ? 'leader' : this.reported ? 'follower' : 'candidate',
      isLeader: leading,
      leader: leading ? self : this.reported,
      line: this.line,
      self,
      session: this.session
        ? { id: this.session.id, ttlMs: this.session.ttlMs, validUntil: this.session.validUntil }
        : undefined,
      suspended: this.suspended,
      leaseExpiresAt: leading ? this.session?.validUntil : undefined,
      failures: this.failures,
      stopped: this.stopped,
    }
  }

  // ---- rules ------------------------------------------------------------------------------------

  /** Rule 2 at `now`, for a leadership already accepted (rule 4). */
  private leadingAt(now: number): boolean {
    return (
      this.leadingToken !== undefined &&
      !this.stopping &&
      !this.rejoin &&
      !this.suspended &&
      this.session !== undefined &&
      now < this.session.validUntil &&
      this.isHead() &&
      this.line[0]?.token === this.leadingToken
    )
  }

  /**
   * The line's head, if it holds the lock. An entry with token 0 holds nothing: lock-based stores
   * (Consul, Redis, PostgreSQL) list waiting candidates so, and once this candidate's own entry left the
   * line (leftLine) the next waiter can come first until the store reports who took the lock. Nobody
   * leads until then.
   */
  private head(): LineEntry | undefined {
    return lineHead(this.line)
  }

  private isHead(): boolean {
    return this.self !== undefined && this.head()?.key === this.self.key
  }

  /** Rule 1: a confirmed request sent at `sentAt` proves the session until validUntil. */
  private prove(sentAt: number): void {
    const s = this.session
    if (!s) return
    // Confirmations may come back out of order; only a later send extends validity.
    if (sentAt < s.provenAt && s.validUntil > 0) return
    s.provenAt = sentAt
    s.validUntil = sentAt + validityMs(this.timing, s.ttlMs)
  }

  private advance(now: number): void {
    this.updateLeadership(now)
    if (this.pending || !this.started) return
    if (this.stopping) {
      if (this.self) this.send(now, { kind: 'leave', seq: 0 })
      else if (this.session) this.send(now, { kind: 'closeSession', seq: 0 })
      else {
        this.stopped = true
        this.reported = undefined
      }
      return
    }
    if (now < this.retryAt) return
    const s = this.session
    if (!s) this.send(now, { kind: 'openSession', seq: 0, ttlMs: this.timing.ttlMs })
    else if (this.suspended || now >= s.provenAt + keepAliveIntervalMs(s.ttlMs))
      this.send(now, { kind: 'keepAlive', seq: 0 })
    else if (this.rejoin && this.self) this.send(now, { kind: 'leave', seq: 0 })
    else if (!this.self) {
      this.rejoin = false
      this.send(now, { kind: 'join', seq: 0 })
    }
  }

  /** Rules 2 and 4: starts, keeps or ends this candidate's leadership, and picks the leader to report. */
  private updateLeadership(now: number): void {
    const head = this.head()
    if (this.leadingToken !== undefined && !this.leadingAt(now)) {
      // Interrupted or over: never resumed on this token. Still at the head with it? Go to the back.
      if (!this.stopping && this.isHead() && head?.token === this.leadingToken) this.rejoin = true
      this.leadingToken = undefined
    }
    const mayLead =
      this.isHead() &&
      !this.rejoin &&
      !this.stopping &&
      !this.suspended &&
      this.session !== undefined &&
      now < this.session.validUntil
    if (this.leadingToken === undefined && mayLead && head) {
      if (head.token > this.highestToken) {
        this.leadingToken = head.token
        this.highestToken = head.token
      } else this.refuse(head, 'lead')
    }
    if (this.leadingToken !== undefined) {
      this.reported = head
      this.lastReported = head
      return
    }
    // Nobody leads; or we head the line but may not lead; or the head is our own entry of a lost session.
    if (!head || this.isHead() || head.id === this.id) {
      this.reported = undefined
      return
    }
    if (this.lastReported?.key === head.key && this.lastReported.token === head.token) {
      // The same leadership (reported now, or just before a gap); tags or address may have changed.
      this.reported = head
      this.lastReported = head
      return
    }
    if (head.token > this.highestToken) {
      this.highestToken = head.token
      this.reported = head
      this.lastReported = head
    } else {
      this.refuse(head, 'report')
      this.reported = undefined
    }
  }

  private refuse(head: LineEntry, what: 'lead' | 'report'): void {
    // Our own stale entry would block the line: go to the back and get a fresh token (every time: the
    // store may show the same stale token again after a rejoin, as Consul's lock can).
    if (what === 'lead') this.rejoin = true
    if (this.refusedToken === head.token) return
    this.refusedToken = head.token
    this.errors.push(
      new TokenNotNewerError(
        `the store shows ${head.id} (${head.key}) at the head of the line with token ${head.token}, not above ` +
          `${this.highestToken} already reported: refusing to ${what === 'lead' ? 'lead on it' : 'report it'}`,
      ),
    )
  }

  // ---- requests and their outcomes --------------------------------------------------------------

  private send(now: number, request: LeaseRequest): void {
    const r = { ...request, seq: ++this.seq } as LeaseRequest
    this.pending = r
    this.pendingTimeoutAt = now + this.timing.requestTimeoutMs
    this.requests.push(r)
  }

  /** Rule 6: the request in flight, unanswered past its timeout, fails as 'unavailable'. */
  private expire(now: number): void {
    const request = this.pending
    if (!request || now < this.pendingTimeoutAt) return
    this.settle(request.seq)
    this.timedOut.push(request)
    const where = this.target ? `${this.store} ${this.target}` : this.store
    const error = new StoreUnavailableError(
      this.store,
      `${where}: no answer to ${REQUEST_NAMES[request.kind]} within ${this.timing.requestTimeoutMs} ms`,
    )
    this.fail(now, request, 'unavailable', error)
  }

  /** True when `seq` is the request in flight (a late answer to an abandoned one is ignored). */
  private settle(seq: number): boolean {
    if (this.pending?.seq !== seq) return false
    this.pending = undefined
    this.pendingTimeoutAt = Number.POSITIVE_INFINITY
    return true
  }

  private succeeded(): void {
    this.failures = 0
    this.retryAt = Number.NEGATIVE_INFINITY
    this.suspended = false
  }

  private fail(now: number, request: LeaseRequest, reason: FailureReason, error: Error): void {
    this.errors.push(error)
    if (this.stopping) {
      // Stopping is best effort: the session expires at the store by itself.
      if (request.kind === 'leave') this.self = undefined
      if (request.kind === 'closeSession') this.session = undefined
      return
    }
    if (reason === 'sessionLost') {
      this.loseSession(now)
      return
    }
    if (reason === 'unavailable') this.suspended = true
    this.backoff(now)
  }

  private backoff(now: number): void {
    this.failures++
    const { backoffMinMs, backoffMaxMs } = this.timing
    const base = Math.min(backoffMaxMs, backoffMinMs * 2 ** Math.min(this.failures - 1, 30))
    this.retryAt = now + base * (0.5 + 0.5 * this.random())
  }

  private loseSession(now: number): void {
    this.session = undefined
    this.self = undefined
    this.rejoin = false
    this.leadingToken = undefined
    this.suspended = false
    // A lost session is replaced at once, unless the store keeps failing.
    if (this.failures > 0) this.backoff(now)
    else this.retryAt = Number.NEGATIVE_INFINITY
  }

  private leftLine(): void {
    const key = this.self?.key
    this.self = undefined
    this.line = this.line.filter((e) => e.key !== key)
  }

  private deadline(): number {
    if (this.stopped) return Number.POSITIVE_INFINITY
    let d = Number.POSITIVE_INFINITY
    const s = this.session
    if (this.leadingToken !== undefined && s) d = Math.min(d, s.validUntil)
    if (this.pending) d = Math.min(d, this.pendingTimeoutAt)
    if (!this.pending && this.started && !this.stopping) {
      if (this.retryAt > Number.NEGATIVE_INFINITY) d = Math.min(d, this.retryAt)
      if (s && !this.suspended) d = Math.min(d, s.provenAt + keepAliveIntervalMs(s.ttlMs))
    }
    return d
  }
}
