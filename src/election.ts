/**
 * The public face of ballot: one Election interface that every driver (raft, bully, lease) implements.
 * Drivers differ in how they agree; users see the same states, events and fencing tokens.
 * @module
 */

/** What a node is doing in the election right now. */
export type Role = 'follower' | 'candidate' | 'leader' | 'observer' | 'stopped'

/** Who leads, as far as one node knows. */
export interface LeaderInfo {
  /** The leader's node id. */
  id: string
  /** Where the leader can be reached (host:port, or an IP for bully over multicast), when known. */
  address?: string
  /**
   * Fencing token: grows with every new term of leadership, whatever the driver (raft term, bully
   * epoch, ...). Downstream systems keep the largest token they have seen and refuse smaller ones.
   */
  token: bigint
  /** When this node learned of this leadership (milliseconds since the Unix epoch). */
  since: number
  /** The leader's tags (key/value metadata it announced). */
  tags?: Record<string, string>
}

/**
 * One step in the history of leadership seen by one node; `changes()` yields these in order, and the
 * `change` event carries them. Each is a real change of `role`, `leading` or `leader`: a raft node that
 * wins an election may report two (role `leader` with `leading: false` while it waits out the promises
 * its voters made to the old leader, then `leading: true` once its lease holds).
 */
export interface LeadershipChange {
  /** This node's role after the change. */
  role: Role
  /**
   * Whether this node may act as leader after the change: what `isLeader()` said at that moment. A
   * node can have the role `leader` and not be leading (a raft leader before its lease holds, or after
   * it lapsed).
   */
  leading: boolean
  /** Who leads after the change (undefined while nobody is known to lead). */
  leader: LeaderInfo | undefined
  /**
   * The leadership before `leader`: the last leader this node knew of other than `leader` (another
   * node, or the same node on an older token). Kept across gaps with no leader, so after a hand-over
   * the new leader's change names the old one. When `leader` is undefined, the one that just ended.
   */
  previous: LeaderInfo | undefined
  /** Wall-clock time of the change (milliseconds since the Unix epoch). */
  at: number
  /**
   * Set only when this iterator fell behind and its queue overflowed: how many changes were dropped just
   * before this one (the oldest go first; see {@link ChangesOptions.maxQueued}).
   */
  skipped?: number
}

/** Options of `changes()`. */
export interface ChangesOptions {
  /** Ends the iteration when aborted (changes still queued are dropped). */
  signal?: AbortSignal | undefined
  /**
   * Most changes held for an iterator whose reader falls behind. Default 1024. Past it the oldest
   * queued changes are dropped, and the next change yielded carries `skipped`, the number dropped.
   */
  maxQueued?: number | undefined
}

/** One node as seen from another, for `clusterState()` and the status page. */
export interface MemberState {
  /** The member's id. */
  id: string
  /** Where the member listens for cluster traffic (host:port; an IP for bully over multicast), when known. */
  address?: string
  /** 'voter' takes part in elections; 'observer' follows and never votes or leads. */
  kind: 'voter' | 'observer'
  /** The role this node last knew the member to have ('unknown' before any contact). */
  role: Role | 'unknown'
  /** The highest term or epoch seen from the member. */
  term: bigint
  /** The member's tags, as it announced them. */
  tags: Record<string, string>
  /**
   * Milliseconds since this node last heard from the member (undefined: never). A follower hears only
   * from the leader and candidates, so its figures for other followers are old: ask the leader.
   */
  lastContactMs?: number
  /** Whether the member can be reached right now (a live connection or recent message). */
  reachable: boolean
  /** Whether the member is this node. */
  self: boolean
}

/** The group as one node sees it: `clusterState()`, and the HTTP API's `/status`. */
export interface ClusterState {
  /** This node's id. */
  self: string
  /** This node's role. */
  role: Role
  /** The highest term (raft), epoch (bully) or leader token (lease) this node knows. */
  term: bigint
  /** Who leads, as far as this node knows. */
  leader: LeaderInfo | undefined
  /** Every member this node knows of, itself included (`self: true`). */
  members: MemberState[]
}

/** Context handed to state callbacks: aborted when the state is left or the callback's time is up. */
export interface CallbackContext {
  /**
   * Aborts when the state is left (for `enterLeader`, with a `LeadershipLostError`) or when
   * `timeoutMs` has passed.
   */
  signal: AbortSignal
  /** How long the callback may run before its signal aborts (milliseconds). */
  timeoutMs: number
}

/**
 * A follower or candidate state callback: runs when the state is entered or left, with the leader this
 * node knows then (undefined while there is none). A rejected promise or a throw is reported on
 * `error` as a `CallbackError`.
 */
export type StateCallback = (ctx: CallbackContext, leader: LeaderInfo | undefined) => void | Promise<void>

/**
 * A leader state callback: the leadership concerned is always known, this node's own, with its fencing
 * token.
 */
export type LeaderStateCallback = (ctx: CallbackContext, leader: LeaderInfo) => void | Promise<void>

/** The events of `on()` and `off()`, with the signature of their handlers. */
export interface ElectionEvents {
  /**
   * This node began leading (`isLeader()` turned true), or began a new leadership with a new token.
   * The signal aborts, with a `LeadershipLostError`, when that leadership ends.
   */
  enterLeader: LeaderStateCallback
  /** This node stopped leading; `leader` is the leadership that ended. */
  leaveLeader: LeaderStateCallback
  /** This node became a follower (or observer). */
  enterFollower: StateCallback
  /** This node stopped being a follower. */
  leaveFollower: StateCallback
  /** This node became a candidate (it campaigns, or waits in a store's line). */
  enterCandidate: StateCallback
  /** This node stopped being a candidate. */
  leaveCandidate: StateCallback
  /** Every observed change of role, leading or leader. */
  change: (change: LeadershipChange) => void
  /** Errors that do not stop the election (a peer refused, a callback threw, a bad message). */
  error: (error: Error) => void
}

/** What `whileLeader()` returns: dispose it (or leave a `using` block) to stop running the work. */
export interface Disposable {
  /** Same as `dispose()`, for `using`. */
  [Symbol.dispose](): void
  /** Stops running the work: the running call's signal aborts, and it is not started again. */
  dispose(): void
}

/** Options of `stop()`. */
export interface StopOptions {
  /** A leader hands leadership to an up-to-date voter before leaving (default true). */
  handover?: boolean | undefined
}

/** Options of `resign()`. */
export interface ResignOptions {
  /**
   * The longest `resign()` waits to learn of the next leadership before it resolves with `undefined`
   * (ms). Default: how long the driver's elections normally take (raft: twice `electionTimeoutMaxMs`;
   * bully: twice `leaderTimeoutMs`; lease: the TTL).
   */
  timeoutMs?: number | undefined
}

/** Options of `waitForLeader()`. */
export interface WaitForLeaderOptions {
  /** Gives up: the promise rejects with the signal's reason (use `AbortSignal.timeout(ms)` for a deadline). */
  signal?: AbortSignal | undefined
  /** Wait until this node itself leads (`isLeader()`), not just until some leader is known. */
  self?: boolean | undefined
}

/** Counters a driver keeps for status pages and metrics (a snapshot: reading it twice may differ). */
export interface ElectionCounters {
  /** Elections this node started (raft and bully campaigns; lease: times it reached the head of the line). */
  readonly electionsStarted: number
  /** Elections this node won. */
  readonly electionsWon: number
  /** Leaderships this node saw begin (its own and others'). */
  readonly leaderChanges: number
}

/**
 * One node's membership in one election, whatever the driver: `RaftElection`, `BullyElection` and
 * `LeaseElection` implement it (`LeaseFollower` too, as an observer that never leads).
 */
export interface Election {
  /** This node's id. */
  readonly id: string
  /**
   * Where this node listens for cluster traffic (host:port once started; the interface IP for bully
   * over multicast; the published address for a lease candidate); '' when there is none yet.
   */
  readonly address: string
  /**
   * Joins the group; resolves once the node is listening and running. Rejects with a BallotError: a
   * TransportError naming the address when it cannot listen (start() may then be called again), a
   * ClosedError when stop() came first.
   */
  start(): Promise<void>
  /** Leaves the group; a leader hands over first unless `handover: false`. Safe to call twice. */
  stop(opts?: StopOptions): Promise<void>
  /**
   * Gives leadership up and hands it over: raft sends a TimeoutNow to the best up-to-date voter and
   * becomes a follower; bully leaves leadership to the next node for `resignHoldMs`; a lease candidate
   * leaves the line and joins again at the back. This node stays in the election and may lead again
   * later. Resolves with the next leadership once this node knows of it (another node, or this one
   * again on a new token when nobody else could take over), or with `undefined` when
   * `options.timeoutMs` passed first. Rejects with a `NotLeaderError` when this node is not the leader,
   * a `ClosedError` once stopped.
   */
  resign(options?: ResignOptions): Promise<LeaderInfo | undefined>
  /**
   * Resolves with the leader as soon as one is known (at once if one is): another node that leads, or
   * this node once `isLeader()` holds; with `self: true`, only once this node leads. Rejects with the
   * signal's reason when it aborts, and with a `ClosedError` when the election stops first.
   */
  waitForLeader(options?: WaitForLeaderOptions): Promise<LeaderInfo>
  /** True only while leadership is provably held (a valid leader lease for raft). */
  isLeader(): boolean
  /**
   * How long this node's leadership has left unless renewed (ms): the raft leader lease, the lease
   * candidate's session validity; undefined while not leading, and always for bully (no lease).
   */
  leaseRemainingMs(): number | undefined
  /** Who leads, as far as this node knows. */
  leader(): LeaderInfo | undefined
  /** This node's role now ('stopped' before start() and after stop()). */
  state(): Role
  /**
   * Every change of role or leader, in order, from the moment iteration begins (`for await`) until it
   * ends (break, the signal, or the election stopping: the last change yielded is then role 'stopped').
   * A reader that falls behind by more than `maxQueued` changes loses the oldest; see `skipped`.
   */
  changes(options?: AbortSignal | ChangesOptions): AsyncIterable<LeadershipChange>
  /**
   * Runs `work` each time this node becomes leader; its signal aborts the moment leadership is lost
   * (with a `LeadershipLostError` as its reason).
   * Each leadership is one fencing token: if the token changes while this node stays leader (bully
   * claiming again with a larger epoch), the running work is aborted and started again with the new
   * `lead`. Dispose to stop running it.
   */
  whileLeader(work: (signal: AbortSignal, lead: LeaderInfo) => Promise<void>): Disposable
  /** Every member as this node sees it (see `MemberState` for how fresh a follower's view is). */
  clusterState(): ClusterState
  /** Adds a handler for an event (see `ElectionEvents`). */
  on<E extends keyof ElectionEvents>(event: E, handler: ElectionEvents[E]): this
  /** Removes a handler added with `on()`. */
  off<E extends keyof ElectionEvents>(event: E, handler: ElectionEvents[E]): this
  /** Stops the election (`stop()`, with a hand-over): what `await using` calls. */
  [Symbol.asyncDispose](): Promise<void>
}
