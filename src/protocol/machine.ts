/**
 * The contract between a pure election protocol and whatever drives it (the runtime with a real clock
 * and sockets, or the simulator with a virtual clock and a simulated network).
 *
 * A protocol never reads a clock, sets a timer, draws randomness of its own or opens a socket. The
 * driver feeds it inputs stamped with `now` (milliseconds on a monotonic clock) and then drains a
 * `Ready` batch: durable state to write, messages to send, the next deadline, and what changed. This is
 * the shape of etcd-io/raft's Step/Ready, and it is what lets one code path run in production and in a
 * simulator that replays any run from its seed.
 */
import type { Role } from '../election.js'

/** Address of a message: one node id, or every peer at once (a multicast group, say). */
export const BROADCAST = '*'

export type Input<M> =
  /** Time passed; the driver calls this at (or after) the deadline the last Ready asked for. */
  | { kind: 'tick' }
  /** A message arrived from an authenticated, schema-checked peer. */
  | { kind: 'receive'; from: string; msg: M }
  /** A connection to the peer came up (TCP transports only). */
  | { kind: 'peerConnected'; peer: string }
  /**
   * The peer's process is gone: its connection closed and an immediate reconnect was refused. Only a
   * hint for faster failover; protocols must stay safe if it is wrong or never comes.
   */
  | { kind: 'peerUnreachable'; peer: string }
  /** Step down as leader, handing over to a ready peer where there is one; stay a candidate. */
  | { kind: 'resign' }
  /** Leave the group; a leader hands over first when `handover` is set. */
  | { kind: 'stop'; handover: boolean }

export interface Outgoing<M> {
  /** A node id, or BROADCAST. */
  to: string
  msg: M
}

/** A change the driver turns into events: a new role and/or a new leader. */
export interface Transition {
  role: Role
  /** The leader after the transition (undefined when none is known). */
  leader: LeaderView | undefined
}

/** One refused message: from whom, why (a stable reason for counters) and a sentence for the log. */
export interface Refusal {
  peer: string
  reason: 'term-jump' | 'member-list' | 'unknown-peer'
  detail: string
}

export interface LeaderView {
  id: string
  /** Term (raft) or epoch (bully): the fencing token. */
  term: number
}

export interface Ready<M, P> {
  /** Durable state to write (and sync) before any of `messages` is sent; undefined when unchanged. */
  persist: P | undefined
  messages: Outgoing<M>[]
  /** Role or leader changes since the last Ready, in order. */
  transitions: Transition[]
  /**
   * Messages the machine refused though they passed the codec (a term jump no real cluster makes, a
   * peer with another member list): the driver counts them by reason and reports them.
   */
  refused?: Refusal[]
  /** Absolute time of the next tick the machine needs (Infinity: none). */
  deadline: number
}

export interface PeerView {
  id: string
  kind: 'voter' | 'observer'
  role: Role | 'unknown'
  term: number
  tags: Record<string, string>
  /** Time (on the driver's clock) of the last message from this peer; undefined if never. */
  lastContact: number | undefined
  reachable: boolean
}

export interface MachineView {
  id: string
  role: Role
  term: number
  leader: LeaderView | undefined
  /** Whether this node may act as leader at `now` (raft: a valid lease; bully: it is the leader). */
  isLeader: boolean
  /** When `isLeader` turns false unless renewed first (raft's lease); undefined when not leading. */
  leaseExpiresAt?: number
  /**
   * When `isLeader` will turn true with no further input (raft: a new leader waiting out an older
   * lease); undefined when it will not. Lets a driver, and the simulator's lease check, see the start
   * at the instant it happens rather than at the next step.
   */
  leaseStartsAt?: number
  peers: PeerView[]
  /**
   * Conditions under which the protocol cannot keep a promise, in words for an operator (terms
   * exhausted, two bully nodes in one epoch slot). The runtime reports each one once, as an error event.
   */
  problems?: readonly string[]
}

export interface ProtocolMachine<M, P> {
  readonly id: string
  step(now: number, input: Input<M>): void
  /** Drains everything the machine produced since the last call. */
  ready(): Ready<M, P>
  view(now: number): MachineView
}

/** A source of uniform numbers in [0, 1); Math.random in production, seeded in the simulator. */
export type Random = () => number
