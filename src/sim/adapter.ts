/**
 * How a protocol plugs into the simulator. The simulator is generic over `ProtocolMachine<M, P>`; an
 * adapter (one small file per protocol under ./protocols/) tells it the rest:
 *
 *   - `create`: build one node's machine from its id, the member list, a seeded `random` that draws from
 *     the run's single source, and the state it last persisted (undefined on first start). A restarted
 *     node is built from that persisted state only: whatever the protocol does not persist is lost.
 *   - `timing`: the protocol's election timings, which scenarios scale their faults by, and
 *     `maxClockDrift`, the rate bound within which its safety promises hold.
 *   - `livenessBoundMs`: how long after the network heals (and stays quiet) every live voter must name
 *     the same leader, derived from the configured timeouts.
 *   - `invariants`: which of the common checks the protocol promises. Raft promises them all; bully does
 *     not promise one leader per term under partitions, nor a lease, and says so by leaving them off.
 *   - `checkMessage`: protocol-specific checks on every message sent (raft: an observer never grants a
 *     vote). Return the invariant's name and what broke it, or undefined.
 *   - `isElectionMessage` (for "messages per election") and `describe` (one message in a trace line).
 *   - `service` (optional): a participant that is not a member, such as the coordination store of the
 *     lease driver. The nodes address it by its id; see `SimService`.
 *   - `scenarios` (optional): the named scenarios that mean something for the protocol (default: those
 *     of peer-to-peer protocols); `random` and `mix` draw from them.
 *
 * To add a protocol: write ./protocols/<name>.ts exporting a factory `(opts: AdapterOptions) => adapter`
 * and add it to the `ADAPTERS` table in ./protocols/index.ts; `ballot sim --algo <name>` then works.
 */
import type { Input, MachineView, Outgoing, ProtocolMachine, Random } from '../protocol/machine.js'
import type { ScenarioSet } from './scenario.js'

export interface SimMember {
  id: string
  kind: 'voter' | 'observer'
}

export interface SimTiming {
  heartbeatIntervalMs: number
  electionTimeoutMinMs: number
  electionTimeoutMaxMs: number
  /** Bound on clock rate drift (a fraction: 0.05 = 5 %) within which the protocol promises safety. */
  maxClockDrift: number
}

export type CommonInvariant =
  /** At most one node becomes leader in any one term (epoch). */
  | 'one-leader-per-term'
  /** Each leadership that starts (isLeader turns true) carries a larger token than every earlier one. */
  | 'fencing'
  /** No two nodes' isLeader() are true at the same instant of real time (while drift is in bound). */
  | 'lease'
  /** After the last fault heals, every live voter names the same live leader within the bound. */
  | 'liveness'
  /** No election after the first leader in a run where nothing fails. */
  | 'stability'
  /** Observers never become candidate or leader, and isLeader() is never true on one. */
  | 'observer'
  /** A node returning from isolation does not depose the leader (the leader's term stays the same). */
  | 'pre-vote'

export interface CreateNode<P> {
  id: string
  members: SimMember[]
  random: Random
  persisted: P | undefined
}

export interface ProtocolAdapter<M, P> {
  /** The `--algo` name. */
  readonly name: string
  readonly timing: SimTiming
  readonly livenessBoundMs: number
  readonly invariants: ReadonlySet<CommonInvariant>
  /** Agreement (for liveness) needs a live majority of voters (default) or any live voter (bully). */
  readonly agreement?: 'majority' | 'any'
  /** The leader promised once the network is quiet, given the live voters' ids (bully: the highest). */
  expectedLeader?(live: string[]): string | undefined
  /** What the 'fencing' check means for this protocol (see CheckerOptions.fencing). Default 'monotonic'. */
  readonly fencing?: 'monotonic' | 'unique'
  create(node: CreateNode<P>): ProtocolMachine<M, P>
  checkMessage?(from: SimMember, to: SimMember, msg: M): { invariant: string; message: string } | undefined
  /**
   * A message a faulty or hostile host sends (`forge` faults), given what the target's view shows (its
   * term, say). Return undefined when the protocol's codec would refuse it (its schema), so it never
   * reaches the machine.
   */
  forge?(what: string, target: MachineView): M | undefined
  isElectionMessage(msg: M): boolean
  describe(msg: M): string
  /** A participant that is not a member (the lease's store); see SimService. */
  readonly service?: SimService<M>
  /** The named scenarios that mean something for this protocol. Default: DEFAULT_SCENARIOS. */
  readonly scenarios?: ScenarioSet
}

/**
 * A participant that is not a member: the coordination store the lease driver's candidates talk to.
 * The simulator gives it a clock of its own (drifting like the nodes', within `timing.maxClockDrift`),
 * links to every node with the same delays, losses, duplicates and cuts as any link, connections that
 * open and close with the nodes' processes, and wake-ups at its deadlines. It never crashes, is never a
 * fault's slot and is not judged by the checker; the `outage` and `service-slow` faults act on it, and
 * partitions and one-way faults may include it (see Fault).
 */
export interface SimService<M> {
  /** Its address: what the nodes' messages to it are sent `to`, and what their `from` says. */
  readonly id: string
  /** Builds it at boot; `random` draws from the run's single source. */
  create(random: Random): ServiceMachine<M>
}

/** What a service takes: time passing, a message from a node, a node's connection opening or closing. */
export type ServiceInput<M> = Extract<
  Input<M>,
  { kind: 'tick' | 'receive' | 'peerConnected' | 'peerUnreachable' }
>

/** A service is a pure machine too: stepped with its own clock's time, drained after each step. */
export interface ServiceMachine<M> {
  step(now: number, input: ServiceInput<M>): void
  ready(): {
    messages: Outgoing<M>[]
    /** Absolute time (its clock) of the next tick it needs (Infinity: none). */
    deadline: number
    /** What happened inside it that no message shows (a session expired), for the trace. */
    notes: string[]
  }
}

/** What the CLI and tests can vary for any protocol. */
export interface AdapterOptions {
  /** A named timing profile of the protocol ('default', 'fast'). */
  timing?: string
  /** Test-only: the deliberately broken variant the checker must catch (raft: skip vote checks). */
  unsafe?: boolean
}

// biome-ignore lint/suspicious/noExplicitAny: the registry holds adapters for any message type
export type AnyAdapter = ProtocolAdapter<any, any>
