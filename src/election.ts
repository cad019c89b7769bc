/**
 * The public face of ballot: one Election interface that every driver (raft, bully, lease) implements.
 * Drivers differ in how they agree; users see the same states, events and fencing tokens.
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

/** One step in the history of leadership seen by one node; `changes()` yields these in order. */
export interface LeadershipChange {
  /** This node's role after the change. */
  role: Role
  /** Who leads after the change (undefined while nobody is known to lead). */
  leader: LeaderInfo | undefined
  /** Who led before the change. */
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
  signal?: AbortSignal
  /**
   * Most changes held for an iterator whose reader falls behind. Default 1024. Past it the oldest
   * queued changes are dropped, and the next change yielded carries `skipped`, the number dropped.
   */
  maxQueued?: number
}

/** One node as seen from another, for `clusterState()` and the status page. */
export interface MemberState {
  id: string
  address?: string
  /** 'voter' takes part in elections; 'observer' follows and never votes or leads. */
  kind: 'voter' | 'observer'
  /** The role this node last knew the member to have ('unknown' before any contact). */
  role: Role | 'unknown'
  /** The highest term or epoch seen from the member. */
  term: bigint
  tags: Record<string, string>
  /** Milliseconds since this node last heard from the member (undefined: never). */
  lastContactMs?: number
  /** Whether the member can be reached right now (a live connection or recent message). */
  reachable: boolean
  /** Whether the member is this node. */
  self: boolean
}

export interface ClusterState {
  self: string
  role: Role
  term: bigint
  leader: LeaderInfo | undefined
  members: MemberState[]
}

/** Context handed to state callbacks: aborted when the state is left or the callback's time is up. */
export interface CallbackContext {
  signal: AbortSignal
  /** How long the callback may run before its signal aborts (milliseconds). */
  timeoutMs: number
}

export type StateCallback = (ctx: CallbackContext, leader: LeaderInfo | undefined) => void | Promise<void>

export interface ElectionEvents {
  enterLeader: StateCallback
  leaveLeader: StateCallback
  enterFollower: StateCallback
  leaveFollower: StateCallback
  enterCandidate: StateCallback
  leaveCandidate: StateCallback
  /** Every observed change of role or leader. */
  change: (change: LeadershipChange) => void
  /** Errors that do not stop the election (a peer refused, a callback threw, a bad message). */
  error: (error: Error) => void
}

export interface Disposable {
  [Symbol.dispose](): void
  dispose(): void
}

export interface StopOptions {
  /** A leader hands leadership to an up-to-date voter before leaving (default true). */
  handover?: boolean
}

export interface Election {
  /**
   * Joins the group; resolves once the node is listening and running. Rejects with a BallotError: a
   * TransportError naming the address when it cannot listen (start() may then be called again), a
   * ClosedError when stop() came first.
   */
  start(): Promise<void>
  /** Leaves the group; a leader hands over first unless `handover: false`. */
  stop(opts?: StopOptions): Promise<void>
  /** Steps down but stays a candidate: leadership passes to another node at once where one is ready. */
  resign(): Promise<void>
  /** True only while leadership is provably held (a valid leader lease for raft). */
  isLeader(): boolean
  /** Who leads, as far as this node knows. */
  leader(): LeaderInfo | undefined
  state(): Role
  /**
   * Every change of role or leader, in order, from the moment iteration begins (`for await`) until it
   * ends (break, the signal, or the election stopping: the last change yielded is then role 'stopped').
   * A reader that falls behind by more than `maxQueued` changes loses the oldest; see `skipped`.
   */
  changes(options?: AbortSignal | ChangesOptions): AsyncIterable<LeadershipChange>
  /**
   * Runs `work` each time this node becomes leader; its signal aborts the moment leadership is lost.
   * Each leadership is one fencing token: if the token changes while this node stays leader (bully
   * claiming again with a larger epoch), the running work is aborted and started again with the new
   * `lead`. Dispose to stop running it.
   */
  whileLeader(work: (signal: AbortSignal, lead: LeaderInfo) => Promise<void>): Disposable
  clusterState(): ClusterState
  on<E extends keyof ElectionEvents>(event: E, handler: ElectionEvents[E]): this
  off<E extends keyof ElectionEvents>(event: E, handler: ElectionEvents[E]): this
}
