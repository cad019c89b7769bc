/**
 * LeaseFollower: watches a store's election without joining it, and reports every change of leader as
 * it happens (the head of the line, in the store's order). It is an Election in the role 'observer':
 * `changes()`, `on('change')`, `leader()`, `clusterState()`; it never leads, and `resign()` refuses.
 * `ballot leader --store` and `ballot watch --store` are this.
 */
import type { ClusterState, ElectionCounters, LeaderInfo } from '../election.js'
import { ClosedError, NotLeaderError, TokenNotNewerError } from '../errors.js'
import { checkOptions, type KnownKeys } from '../runtime/check-options.js'
import { type Clock, realClock } from '../runtime/clock.js'
import { ElectionBase } from '../runtime/election-base.js'
import { TransportStats, type TransportStatsSnapshot } from '../transport/transport.js'
import { type BackendEvents, type LeaseBackend, type LineEntry, lineHead } from './backend.js'
import { closeBackend, connectBackend } from './connect.js'
import { lineMembers } from './line-members.js'

/** Options of `new LeaseFollower()`. Unknown keys are refused (INVALID_OPTIONS naming the key). */
export interface LeaseFollowerOptions {
  /** The store's recipe for the election to watch, e.g. `new EtcdBackend({ hosts, election })`. */
  backend: LeaseBackend
  /** A name for this follower in logs and status (default "follower"). */
  id?: string | undefined
  /** How long start() waits for the store's first answer (ms). Default 5000. */
  connectTimeoutMs?: number | undefined
  /** The clock to run on (tests pass their own). Default: the real one. */
  clock?: Clock | undefined
}

const FOLLOWER_OPTION_KEYS: KnownKeys<LeaseFollowerOptions> = {
  backend: true,
  id: true,
  connectTimeoutMs: true,
  clock: true,
}

/**
 * Watches a store's election without joining it: every change of leader, in the store's order. An
 * Election in the role 'observer' that never leads (`resign()` rejects with NOT_LEADER).
 */
export class LeaseFollower extends ElectionBase {
  private readonly electionCounters = { electionsStarted: 0, electionsWon: 0, leaderChanges: 0 }
  private readonly stats = new TransportStats()
  private readonly opts: LeaseFollowerOptions
  private readonly clock: Clock
  private line: LineEntry[] = []
  private suspended = false
  private started = false
  private stopped = false
  private highestToken = -1n
  private current: LeaderInfo | undefined

  /** Checks the options (throws InvalidOptionsError naming the field); start() connects. */
  constructor(opts: LeaseFollowerOptions) {
    checkOptions(opts, FOLLOWER_OPTION_KEYS, 'options')
    const clock = opts.clock ?? realClock
    super({ wall: () => clock.wall() })
    this.opts = opts
    this.clock = clock
  }

  /** This follower's name. */
  get id(): string {
    return this.opts.id ?? 'follower'
  }

  /** Always '': a follower publishes no address. */
  get address(): string {
    return ''
  }

  /** Leaderships seen: a snapshot. */
  get counters(): ElectionCounters {
    return Object.freeze({ ...this.electionCounters })
  }

  /** Store events received, failures: a snapshot. */
  get transportStats(): TransportStatsSnapshot {
    return this.stats.snapshot()
  }

  /** Connects and reads the line once; rejects with a StoreError on a bad address or foreign data. */
  async start(): Promise<void> {
    if (this.stopped) throw new ClosedError()
    if (this.started) return
    const backend = this.opts.backend
    const events: BackendEvents = {
      line: (entries) => this.onLine(entries),
      suspended: (reason) => {
        this.stats.sendFailures++
        if (!this.suspended) this.reportError(reason)
        this.suspended = true
      },
      resumed: () => {
        this.suspended = false
      },
      sessionLost: () => {},
    }
    try {
      await connectBackend(backend, events, { watchOnly: true, timeoutMs: this.opts.connectTimeoutMs })
    } catch (err) {
      this.stopped = true
      throw err
    }
    this.started = true
    this.emitView()
  }

  /** Stops watching and closes the store connection. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    // A follower has nothing left to lose at stop: a failed close is not worth an error event.
    await closeBackend(this.opts.backend, () => {})
    this.observe('stopped', false, undefined)
  }

  /** Always rejects with a NotLeaderError: a follower never leads. */
  async resign(): Promise<LeaderInfo | undefined> {
    throw new NotLeaderError('a follower never leads')
  }

  /** Always false: a follower never leads. */
  isLeader(): boolean {
    return false
  }

  /** Whether the connection to the store is in doubt right now (the leader shown may be stale). */
  get storeSuspended(): boolean {
    return this.suspended
  }

  /** The line of candidates in the store, head first. */
  clusterState(): ClusterState {
    const leader = this.leader()
    const members = lineMembers(this.line)
    return { self: this.id, role: this.state(), term: leader?.token ?? 0n, leader, members }
  }

  private onLine(entries: LineEntry[]): void {
    this.stats.messagesReceived++
    this.line = [...entries].sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0))
    if (this.started && !this.stopped) this.emitView()
  }

  private emitView(): void {
    const head = lineHead(this.line)
    let leader: LeaderInfo | undefined
    if (head) {
      if (this.current && this.current.id === head.id && this.current.token === head.token) {
        leader = { ...this.current, address: head.address, tags: head.tags }
      } else if (head.token > this.highestToken) {
        this.highestToken = head.token
        this.electionCounters.leaderChanges++
        leader = {
          id: head.id,
          address: head.address,
          token: head.token,
          since: this.clock.wall(),
          tags: head.tags,
        }
      } else {
        this.reportError(
          new TokenNotNewerError(
            `the store shows ${head.id} at the head with token ${head.token}, not above ${this.highestToken}`,
          ),
        )
        leader = undefined
      }
    }
    this.current = leader
    this.observe('observer', false, leader)
  }
}
