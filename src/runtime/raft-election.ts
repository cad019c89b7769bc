/**
 * The raft driver: a RaftMachine run over TCP with a real clock, persisted term and vote, and the
 * shared Election interface on top.
 */

import { Codec } from '../codec/envelope.js'
import type { ClusterState, MemberState } from '../election.js'
import { InvalidOptionsError, PeerRefusedError } from '../errors.js'
import type { MachineView, Random } from '../protocol/machine.js'
import { RaftMachine } from '../protocol/raft/machine.js'
import {
  type RaftHardState,
  type RaftMessage,
  raftHardStateSchema,
  raftMessageSchema,
} from '../protocol/raft/messages.js'
import {
  type RaftMember,
  type RaftTiming,
  TIMING_PROFILES,
  type TimingProfile,
  validateTiming,
} from '../protocol/raft/options.js'
import { parseHostPort } from '../transport/address.js'
import { TcpTransport } from '../transport/tcp.js'
import { type Clock, realClock } from './clock.js'
import { DrivenElection } from './driven-election.js'
import type { HardStateStore } from './hard-state-store.js'
import { nextIncarnation } from './incarnation.js'
import { StateFile } from './state-file.js'
import { connectTimeoutFor, resolveTimingOption } from './timing.js'

export interface RaftPeer extends RaftMember {
  /** host:port where the member listens for cluster traffic. */
  address: string
}

export interface RaftElectionOptions {
  /** This node's id; must be one of `members`. */
  id: string
  /** Every member, this node included, with the same list on every node. */
  members: RaftPeer[]
  /** Cluster name: keeps two clusters on one network apart. Default "ballot". */
  cluster?: string
  /** Where to listen (host:port). Default: this node's address in `members`. */
  listen?: string
  /** A timing profile name ("default", "fast") or explicit timings, filled in from the default profile. */
  timing?: TimingProfile | Partial<RaftTiming>
  /** Shared key: when set, every message is authenticated (HMAC-SHA256) and replay-checked. */
  key?: string
  /**
   * Directory for the durable term and vote. Without it the node keeps them in memory only: a node that
   * crashes and restarts within one term may then vote twice in that term, and two leaders in one term
   * become possible. Use it in production.
   */
  dataDir?: string
  /**
   * Where to keep the durable term and vote instead of a file in `dataDir` (another durable medium;
   * tests pass one that fails on demand). Its `save` must not return before the state is durable.
   */
  stateStore?: HardStateStore<RaftHardState>
  /** This node's tags, announced to every member. */
  tags?: Record<string, string>
  /** Pre-vote (default true). */
  preVote?: boolean
  /** Max time a state callback runs before its signal aborts (ms). Default 10 000. */
  callbackTimeoutMs?: number
  /** Largest message accepted (bytes). Default 64 KiB. */
  maxMessageBytes?: number
  /**
   * How long a TCP dial to a peer may wait to be accepted before it is retried (ms). Default: five
   * heartbeat intervals, at least 250 ms.
   */
  connectTimeoutMs?: number
  clock?: Clock
  random?: Random
}

export function resolveTiming(timing: RaftElectionOptions['timing']): RaftTiming {
  return resolveTimingOption<RaftTiming>(timing, TIMING_PROFILES, validateTiming)
}

export class RaftElection extends DrivenElection<RaftMessage, RaftHardState> {
  private readonly opts: RaftElectionOptions
  private readonly addresses: Map<string, string>
  private readonly resolvedTiming: RaftTiming

  constructor(opts: RaftElectionOptions) {
    const clock = opts.clock ?? realClock
    super({ clock, callbackTimeoutMs: opts.callbackTimeoutMs })
    this.opts = opts
    this.addresses = new Map(opts.members.map((m) => [m.id, m.address]))
    const self = opts.members.find((m) => m.id === opts.id)
    if (!self) throw new InvalidOptionsError('id', `this node (${opts.id}) is not in the member list`)
    for (const m of opts.members) parseHostPort(m.address, `members.${m.id}.address`)
    const listen = parseHostPort(opts.listen ?? self.address, 'listen')
    const stateStore =
      opts.stateStore ??
      (opts.dataDir ? new StateFile(opts.dataDir, raftHardStateSchema, 'raft-state.json') : undefined)
    this.resolvedTiming = resolveTiming(opts.timing)
    const build = (hardState: RaftHardState | undefined) =>
      new RaftMachine({
        id: opts.id,
        members: opts.members.map(({ id, kind, priority }) => ({ id, kind, priority })),
        timing: this.resolvedTiming,
        random: opts.random ?? Math.random,
        tags: opts.tags,
        hardState,
        preVote: opts.preVote,
      })
    const codec = new Codec<RaftMessage>({
      cluster: opts.cluster ?? 'ballot',
      self: opts.id,
      schema: raftMessageSchema,
      key: opts.key,
      isKnownPeer: (id) => this.addresses.has(id),
      maxMessageBytes: opts.maxMessageBytes,
      wallClock: () => clock.wall(),
      incarnation: opts.dataDir ? nextIncarnation(opts.dataDir, clock.wall()) : undefined,
    })
    const transport = new TcpTransport({
      self: opts.id,
      listen,
      peers: new Map(opts.members.filter((m) => m.id !== opts.id).map((m) => [m.id, m.address])),
      codec,
      connectTimeoutMs: opts.connectTimeoutMs ?? connectTimeoutFor(this.resolvedTiming.heartbeatIntervalMs),
      onDrop: (reason, from) => {
        if (reason === 'unknown-peer') {
          this.reportError(
            new PeerRefusedError(
              reason,
              `refused a message from ${from ?? 'an unnamed sender'}: not a member`,
            ),
          )
        }
      },
    })
    this.drive(build, transport, stateStore)
  }

  get id(): string {
    return this.opts.id
  }

  /**
   * How long this node's leader lease has left unless renewed (ms); undefined when it is not leading.
   * Work that must never overlap with another leader's (`ballot exec`) stops before this reaches 0.
   */
  leaseRemainingMs(): number | undefined {
    if (!this.isLeader()) return undefined
    const expires = this.driver.view().leaseExpiresAt
    return expires === undefined ? undefined : Math.max(0, expires - this.clock.now())
  }

  /** The timings in force (after profiles and defaults are applied). */
  get timing(): RaftTiming {
    return { ...this.resolvedTiming }
  }

  clusterState(): ClusterState {
    const now = this.clock.now()
    const view = this.driver.view()
    const leader = this.leader()
    const members: MemberState[] = [
      {
        id: this.opts.id,
        address: this.addresses.get(this.opts.id),
        kind: this.selfKind(),
        role: view.role,
        term: BigInt(view.term),
        tags: { ...(this.opts.tags ?? {}) },
        lastContactMs: 0,
        reachable: true,
        self: true,
      },
      ...view.peers.map((p) => ({
        id: p.id,
        address: this.addresses.get(p.id),
        kind: p.kind,
        role: p.role,
        term: BigInt(p.term),
        tags: p.tags,
        lastContactMs: p.lastContact === undefined ? undefined : Math.max(0, Math.round(now - p.lastContact)),
        reachable: p.reachable,
        self: false,
      })),
    ]
    return { self: this.opts.id, role: view.role, term: BigInt(view.term), leader, members }
  }

  private selfKind(): 'voter' | 'observer' {
    return this.opts.members.find((m) => m.id === this.opts.id)?.kind ?? 'voter'
  }

  protected describe(id: string, view: MachineView): { address?: string; tags: Record<string, string> } {
    const tags =
      id === this.opts.id ? { ...(this.opts.tags ?? {}) } : (view.peers.find((p) => p.id === id)?.tags ?? {})
    return { address: this.addresses.get(id), tags }
  }
}
