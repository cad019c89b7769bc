/**
 * LeaseElection: a candidate in a coordination store's election (etcd today), as an Election like the
 * raft and bully drivers. A thin layer over the pure LeaseMachine: it stamps every input with the
 * clock, notes the send time of each store request before it goes out, wakes the machine at the
 * deadline it names (which includes each request's timeout: the machine's rule 6), and turns its view
 * into events.
 */
import type { ClusterState, ElectionCounters, LeaderInfo, ResignOptions, StopOptions } from '../election.js'
import { ClosedError, InvalidOptionsError, SessionLostError } from '../errors.js'
import type { Random } from '../protocol/machine.js'
import { checkOptions, type KnownKeys } from '../runtime/check-options.js'
import { type Clock, realClock } from '../runtime/clock.js'
import { ElectionBase } from '../runtime/election-base.js'
import { TransportStats, type TransportStatsSnapshot } from '../transport/transport.js'
import type { BackendEvents, LeaseBackend, LineEntry } from './backend.js'
import { asStoreError, closeBackend, connectBackend } from './connect.js'
import { lineMembers } from './line-members.js'
import {
  type FailureReason,
  type LeaseInput,
  LeaseMachine,
  type LeaseRequest,
  type LeaseView,
} from './machine.js'
import { type LeaseTiming, resolveLeaseTiming } from './options.js'

/** Options of `new LeaseElection()`. Unknown keys are refused (INVALID_OPTIONS naming the key). */
export interface LeaseElectionOptions {
  /** This candidate's id: the value of its entry in the store's line (what `etcdctl elect -l` prints). */
  id: string
  /** The store's recipe for one election, e.g. `new EtcdBackend({ hosts, election })`. */
  backend: LeaseBackend
  /** Where this candidate can be reached while it leads (published with its entry). */
  address?: string | undefined
  /** This candidate's tags, published with its entry. */
  tags?: Readonly<Record<string, string>> | undefined
  /** Session TTL (ms, default 5000) and the other timings, filled in from the TTL (see ./options.ts). */
  timing?: { [K in keyof LeaseTiming]?: LeaseTiming[K] | undefined } | undefined
  /** How long start() waits for the first answer of the store (ms). Default 5000. */
  connectTimeoutMs?: number | undefined
  /** Max time a state callback runs before its signal aborts (ms). Default 10 000. */
  callbackTimeoutMs?: number | undefined
  /** The clock to run on (tests pass their own). Default: the real one. */
  clock?: Clock | undefined
  /** The random source for retry jitter, returning [0, 1). Default `Math.random`. */
  random?: Random | undefined
}

const LEASE_OPTION_KEYS: KnownKeys<LeaseElectionOptions> = {
  id: true,
  backend: true,
  address: true,
  tags: true,
  timing: true,
  connectTimeoutMs: true,
  callbackTimeoutMs: true,
  clock: true,
  random: true,
}

export function classify(err: unknown): FailureReason {
  const code = (err as { code?: string })?.code
  if (err instanceof SessionLostError || code === 'SESSION_LOST') return 'sessionLost'
  if (code === 'STORE_REFUSED') return 'refused'
  return 'unavailable'
}

/**
 * A candidate in a coordination store's election (etcd, ZooKeeper, Consul): the store decides who is
 * first in line, this driver decides on its own clock how long it may call itself leader. The fencing
 * token is the store's (etcd: the create revision of the leader's key).
 */
export class LeaseElection extends ElectionBase {
  private readonly electionCounters = { electionsStarted: 0, electionsWon: 0, leaderChanges: 0 }
  /** Store requests sent, failed (sendFailures) and events received (messagesReceived). */
  private readonly stats = new TransportStats()
  private readonly opts: LeaseElectionOptions
  private readonly machine: LeaseMachine
  private readonly clock: Clock
  private readonly resolved: LeaseTiming
  private timer: unknown
  private leaseTimer: unknown
  private started = false
  private stopped = false
  private closed = false
  private stopWaiters: Array<() => void> = []
  private readonly leaderSince = new Map<string, number>()
  private lastLeading = false
  private lastHeadKey: string | undefined

  /** Checks the options (throws InvalidOptionsError naming the field); start() connects and joins. */
  constructor(opts: LeaseElectionOptions) {
    checkOptions(opts, LEASE_OPTION_KEYS, 'options')
    if (opts.timing !== undefined)
      checkOptions(
        opts.timing,
        {
          ttlMs: true,
          maxClockDrift: true,
          safetyMarginMs: true,
          backoffMinMs: true,
          backoffMaxMs: true,
          requestTimeoutMs: true,
        } satisfies KnownKeys<LeaseTiming>,
        'timing',
      )
    const clock = opts.clock ?? realClock
    super({ callbackTimeoutMs: opts.callbackTimeoutMs, wall: () => clock.wall() })
    if (!opts.id) throw new InvalidOptionsError('id', 'must not be empty')
    this.opts = opts
    this.clock = clock
    this.resolved = resolveLeaseTiming(opts.timing)
    this.machine = new LeaseMachine({
      id: opts.id,
      timing: this.resolved,
      random: opts.random ?? Math.random,
      store: opts.backend?.store,
      target: opts.backend?.target,
    })
  }

  /** This candidate's id. */
  get id(): string {
    return this.opts.id
  }

  /** The address published with this candidate's entry ('' when none). */
  get address(): string {
    return this.opts.address ?? ''
  }

  /** The timings in force (filled in from the TTL). */
  get timing(): LeaseTiming {
    return { ...this.resolved }
  }

  /** The store's name ('etcd', 'zookeeper', 'consul'). */
  get store(): string {
    return this.opts.backend.store
  }

  /** The store backend this candidate runs on (for what only one store can tell, such as notifications). */
  get backend(): LeaseBackend {
    return this.opts.backend
  }

  /** Times this candidate reached the head of the line and led, leaderships seen: a snapshot. */
  get counters(): ElectionCounters {
    return Object.freeze({ ...this.electionCounters })
  }

  /** Store requests sent and failed, store events received: a snapshot. */
  get transportStats(): TransportStatsSnapshot {
    return this.stats.snapshot()
  }

  /**
   * Connects to the store (one round trip, checking the election's prefix) and joins the line. Rejects
   * with a StoreError when the store cannot be reached within connectTimeoutMs or refuses (a bad
   * address, foreign data under the prefix); once started, every failure is retried with backoff.
   */
  async start(): Promise<void> {
    if (this.stopped) throw new ClosedError()
    if (this.started) return
    const backend = this.opts.backend
    const events: BackendEvents = {
      line: (entries) => this.onEvent({ kind: 'line', entries }),
      suspended: (reason) => this.onEvent({ kind: 'suspended', error: reason }),
      resumed: () => this.onEvent({ kind: 'resumed' }),
      sessionLost: (reason) => this.onEvent({ kind: 'sessionLost', error: reason }),
    }
    try {
      await connectBackend(backend, events, { watchOnly: false, timeoutMs: this.opts.connectTimeoutMs })
    } catch (err) {
      this.closed = true
      throw err
    }
    this.started = true
    this.input({ kind: 'start' })
  }

  /** Leaves the line and closes the session (a leader stops leading before its entry goes). */
  async stop(_opts: StopOptions = {}): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.started) {
      const done = new Promise<void>((resolve) => this.stopWaiters.push(resolve))
      this.input({ kind: 'stop' })
      // Leave and close are each bounded by the request timeout; this bounds the whole.
      let guard: NodeJS.Timeout | undefined
      await Promise.race([
        done,
        new Promise<void>((r) => {
          guard = setTimeout(r, 3 * this.resolved.requestTimeoutMs)
        }),
      ])
      clearTimeout(guard)
    }
    this.closed = true
    this.clock.clearTimer(this.timer)
    this.clock.clearTimer(this.leaseTimer)
    await closeBackend(this.opts.backend, (err) => this.reportError(err))
    this.observe('stopped', false, undefined)
  }

  /**
   * Steps down: leaves the line and joins again at the back, so the next candidate leads first; waits
   * for the next leadership (see Election.resign), by default up to the TTL.
   */
  async resign(options: ResignOptions = {}): Promise<LeaderInfo | undefined> {
    if (this.stopped) throw new ClosedError()
    return this.resignAndWait(options, this.resolved.ttlMs, () => this.input({ kind: 'resign' }))
  }

  /** True only while this candidate heads the line, its session is valid and the store not in doubt. */
  isLeader(): boolean {
    return this.started && !this.stopped && this.machine.view(this.clock.now()).isLeader
  }

  /** How long leadership has left unless a keep-alive is confirmed first (ms); undefined when not leading. */
  override leaseRemainingMs(): number | undefined {
    if (!this.isLeader()) return undefined
    const v = this.machine.view(this.clock.now())
    return v.leaseExpiresAt === undefined ? undefined : Math.max(0, v.leaseExpiresAt - this.clock.now())
  }

  /** The machine's view now (for status pages and tests). */
  view(): LeaseView {
    return this.machine.view(this.clock.now())
  }

  /** The line of candidates, head first, as last read. */
  clusterState(): ClusterState {
    const v = this.view()
    const members = lineMembers(v.line, { headLeads: false, leaderKey: v.leader?.key, selfKey: v.self?.key })
    return {
      self: this.opts.id,
      role: this.state(),
      term: v.leader?.token ?? 0n,
      leader: this.leader(),
      members,
    }
  }

  // ---- driving the machine ----------------------------------------------------------------------

  private onEvent(input: LeaseInput): void {
    this.stats.messagesReceived++
    this.input(input)
  }

  private input(input: LeaseInput): void {
    // Before start() the machine only takes note (it sends nothing until 'start'); after stop() is
    // over, late answers are dropped so that no timer outlives the election.
    if (this.closed) return
    this.machine.step(this.clock.now(), input)
    this.flush()
  }

  private flush(): void {
    const ready = this.machine.ready()
    const now = this.clock.now()
    const view = this.machine.view(now)
    // Events first: a leader that stops leading is told (and its work aborted) before any request that
    // could let another candidate lead goes out.
    this.report(view)
    this.stats.sendFailures += ready.timedOut.length
    for (const err of ready.errors) this.reportError(err)
    for (const request of ready.requests) this.send(request)
    if (view.stopped) {
      for (const w of this.stopWaiters.splice(0)) w()
      return
    }
    this.clock.clearTimer(this.timer)
    if (Number.isFinite(ready.deadline))
      this.timer = this.clock.setTimer(() => this.input({ kind: 'tick' }), ready.deadline - now)
    // isLeader() lapses on its own at leaseExpiresAt; report it then, not at the next input.
    this.clock.clearTimer(this.leaseTimer)
    if (view.leaseExpiresAt !== undefined)
      this.leaseTimer = this.clock.setTimer(() => this.input({ kind: 'tick' }), view.leaseExpiresAt - now + 1)
  }

  private send(request: LeaseRequest): void {
    const backend = this.opts.backend
    const { seq } = request
    this.stats.messagesSent++
    // The send time is noted before the request leaves: validity counts from it (machine rule 1). No
    // timeout here: the machine fails a request unanswered in time (rule 6) and ignores a late answer.
    const sentAt = this.clock.now()
    const run = <T>(work: () => Promise<T>, done: (value: T) => LeaseInput) => {
      Promise.resolve()
        .then(work)
        .then(
          (value) => this.input(done(value)),
          (err: unknown) => {
            this.stats.sendFailures++
            const error = asStoreError(backend.store, err)
            this.input({ kind: 'failed', seq, reason: classify(error), error })
          },
        )
    }
    switch (request.kind) {
      case 'openSession':
        run(
          () => backend.openSession(request.ttlMs),
          (session) => ({ kind: 'sessionOpened', seq, sentAt, session }),
        )
        break
      case 'keepAlive':
        run(
          () => backend.keepAlive(),
          () => ({ kind: 'keptAlive', seq, sentAt }),
        )
        break
      case 'join':
        run(
          () => backend.join({ id: this.opts.id, address: this.opts.address, tags: this.opts.tags }),
          (entry) => ({ kind: 'joined', seq, entry }),
        )
        break
      case 'leave':
        run(
          () => backend.leave(),
          () => ({ kind: 'left', seq }),
        )
        break
      case 'closeSession':
        run(
          () => backend.closeSession(),
          () => ({ kind: 'sessionClosed', seq }),
        )
        break
    }
  }

  private report(view: LeaseView): void {
    if (view.stopped) return
    const head = view.line[0]
    if (head && head.key !== this.lastHeadKey && view.self && head.key === view.self.key)
      this.electionCounters.electionsStarted++
    this.lastHeadKey = head?.key
    if (view.isLeader && !this.lastLeading) this.electionCounters.electionsWon++
    this.lastLeading = view.isLeader
    this.observe(view.role, view.isLeader, this.info(view.leader))
  }

  private info(entry: LineEntry | undefined): LeaderInfo | undefined {
    if (!entry) return undefined
    const key = `${entry.key}@${entry.token}`
    let since = this.leaderSince.get(key)
    if (since === undefined) {
      this.leaderSince.clear()
      since = this.clock.wall()
      this.leaderSince.set(key, since)
      this.electionCounters.leaderChanges++
    }
    const self = entry.id === this.opts.id && entry.key === this.machine.view(this.clock.now()).self?.key
    return {
      id: entry.id,
      address: self ? this.opts.address : entry.address,
      token: entry.token,
      since,
      tags: self ? { ...(this.opts.tags ?? {}) } : entry.tags,
    }
  }
}
