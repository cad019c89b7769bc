/**
 * The raft driver: a RaftMachine run over TCP with a real clock, persisted term and vote, and the
 * shared Election interface on top.
 * @module
 */

import { Codec } from '../codec/envelope.js'
import type { ClusterState, MemberState } from '../election.js'
import { InvalidOptionsError, PeerRefusedError, TransportError } from '../errors.js'
import type { MachineView, Random } from '../protocol/machine.js'
import { RaftMachine } from '../protocol/raft/machine.js'
import {
  type RaftHardState,
  type RaftMessage,
  raftHardStateSchema,
  raftMessageSchema,
} from '../protocol/raft/messages.js'
import {
  DEFAULT_TIMING,
  FAST_TIMING,
  type RaftTiming,
  TIMING_PROFILES,
  type TimingProfile,
  validateTiming,
} from '../protocol/raft/options.js'
import { parseHostPort } from '../transport/address.js'
import { TcpTransport } from '../transport/tcp.js'
import { loadTls, type TlsOptions } from '../transport/tls.js'
import { checkKey, checkOneOf, checkOptions, describeValue, type KnownKeys } from './check-options.js'
import { type Clock, realClock } from './clock.js'
import { openDataDir } from './data-dir.js'
import { DrivenElection } from './driven-election.js'
import type { HardStateStore, RaftHardState as RaftDurableState } from './hard-state-store.js'
import { nextIncarnation } from './incarnation.js'
import { StateFile } from './state-file.js'
import { connectTimeoutFor, resolveTimingOption, type TimingOverrides } from './timing.js'

/** A member of a raft group, as `members` lists it: the same list on every node. */
export interface RaftPeer {
  /** The member's id: unique in the group, 1 to 128 characters. */
  readonly id: string
  /** host:port where the member listens for cluster traffic; unique in the group. */
  readonly address: string
  /** 'observer': follows and knows the leader, never votes or leads. Default 'voter'. */
  readonly kind?: 'voter' | 'observer' | undefined
  /** Among healthy voters the highest priority ends up leading (through a hand-over). Default 0. */
  readonly priority?: number | undefined
}

/** A raft timing profile: 'default' (a LAN) or 'fast' (loopback, one rack). */
export type RaftTimingProfile = 'default' | 'fast'

/** Raft timings for a LAN, the default profile: a silent leader is replaced within 0.5–1 s. */
export const DEFAULT_RAFT_TIMING: Readonly<RaftTiming> = DEFAULT_TIMING

/** Raft timings for loopback and one rack, the 'fast' profile: a silent leader is replaced within 100–200 ms. */
export const FAST_RAFT_TIMING: Readonly<RaftTiming> = FAST_TIMING

/** The raft timing profiles by name, as `timing: 'fast'` picks them. */
export const RAFT_TIMING_PROFILES: Readonly<Record<RaftTimingProfile, Readonly<RaftTiming>>> =
  TIMING_PROFILES satisfies Record<TimingProfile, Readonly<RaftTiming>>

/** Explicit raft timings: any field left out (or undefined) is taken from the default profile. */
export type RaftTimingOptions = TimingOverrides<RaftTiming>

/** Options of `new RaftElection()`. Unknown keys are refused (INVALID_OPTIONS naming the key). */
export interface RaftElectionOptions {
  /** This node's id; must be one of `members`. */
  id: string
  /** Every member, this node included, with the same list on every node (a readonly array will do). */
  members: readonly RaftPeer[]
  /** Cluster name: keeps two clusters on one network apart. Default "ballot". */
  cluster?: string | undefined
  /** Where to listen (host:port). Default: this node's address in `members`. */
  listen?: string | undefined
  /** A timing profile name ("default", "fast") or explicit timings, filled in from the default profile. */
  timing?: RaftTimingProfile | RaftTimingOptions | undefined
  /**
   * Shared key: when set, every message is authenticated (HMAC-SHA256) and replay-checked. Undefined
   * (an unset environment variable, say) means no key; an empty string is refused. A list rotates keys:
   * the first signs, every one is accepted (see `setKey` to rotate without a restart).
   */
  key?: string | readonly string[] | undefined
  /**
   * Mutual TLS between members: this node's certificate and key, and the CA every member's certificate
   * must be signed by (file paths or PEM text). A member with a certificate from another CA, an expired
   * one or none cannot join; both ends report why ('error' events, code TLS). Default: plain TCP.
   */
  tls?: TlsOptions | undefined
  /**
   * Directory for the durable term and vote. Without it the node keeps them in memory only: a node that
   * crashes and restarts within one term may then vote twice in that term, and two leaders in one term
   * become possible. Use it in production. Created if missing; a path that is a file, or a directory
   * that cannot be written, is refused at once (INVALID_OPTIONS, field `dataDir`).
   */
  dataDir?: string | undefined
  /**
   * Where to keep the durable term and vote instead of a file in `dataDir` (another durable medium;
   * tests pass one that fails on demand). Its `save` must not return before the state is durable.
   */
  stateStore?: HardStateStore<RaftDurableState> | undefined
  /** This node's tags, announced to every member. */
  tags?: Readonly<Record<string, string>> | undefined
  /** Pre-vote (default true). */
  preVote?: boolean | undefined
  /** Max time a state callback runs before its signal aborts (ms). Default 10 000. */
  callbackTimeoutMs?: number | undefined
  /** Largest message accepted (bytes). Default 64 KiB. */
  maxMessageBytes?: number | undefined
  /**
   * How long a TCP dial to a peer may wait to be accepted before it is retried (ms). Default: five
   * heartbeat intervals, at least 250 ms.
   */
  connectTimeoutMs?: number | undefined
  /** The clock to run on (tests and simulations pass their own). Default: the real one. */
  clock?: Clock | undefined
  /** The random source for election timeouts, returning [0, 1). Default `Math.random`. */
  random?: Random | undefined
}

const RAFT_OPTION_KEYS: KnownKeys<RaftElectionOptions> = {
  id: true,
  members: true,
  cluster: true,
  listen: true,
  timing: true,
  key: true,
  tls: true,
  dataDir: true,
  stateStore: true,
  tags: true,
  preVote: true,
  callbackTimeoutMs: true,
  maxMessageBytes: true,
  connectTimeoutMs: true,
  clock: true,
  random: true,
}

const RAFT_PEER_KEYS: KnownKeys<RaftPeer> = { id: true, address: true, kind: true, priority: true }

/** Resolves the `timing` option to full timings; throws InvalidOptionsError naming the field at fault. */
export function resolveTiming(timing: RaftElectionOptions['timing']): RaftTiming {
  return resolveTimingOption<RaftTiming>(timing, TIMING_PROFILES, validateTiming)
}

/**
 * Checks what the constructor can: known keys, each member's fields, no id or address listed twice,
 * this node in the list. Throws InvalidOptionsError naming the field.
 */
function checkRaftOptions(opts: RaftElectionOptions): void {
  checkOptions(opts, RAFT_OPTION_KEYS, 'options')
  if (typeof opts.id !== 'string' || opts.id.length === 0)
    throw new InvalidOptionsError('id', `must be a non-empty string, got ${describeValue(opts.id)}`)
  if (!Array.isArray(opts.members) || opts.members.length === 0)
    throw new InvalidOptionsError(
      'members',
      `must be a non-empty array of { id, address }, got ${describeValue(opts.members)}`,
    )
  const byAddress = new Map<string, number>()
  opts.members.forEach((m, i) => {
    const field = `members[${i}]`
    checkOptions(m, RAFT_PEER_KEYS, field)
    if (typeof m.address !== 'string')
      throw new InvalidOptionsError(`${field}.address`, `must be host:port, got ${describeValue(m.address)}`)
    checkOneOf(m.kind, ['voter', 'observer'], `${field}.kind`)
    const hp = parseHostPort(m.address, `${field}.address`)
    if (hp.port === 0)
      throw new InvalidOptionsError(
        `${field}.address`,
        'must name a real port, got port 0 (peers dial this address; for tests, see localRaftCluster())',
      )
    const same = byAddress.get(m.address)
    if (same !== undefined)
      throw new InvalidOptionsError(
        `${field}.address`,
        `${m.address} is also the address of members[${same}] (${opts.members[same]?.id}): every member needs its own`,
      )
    byAddress.set(m.address, i)
  })
  checkKey(opts.key)
}

/**
 * A node of a raft group: peer-to-peer leader election over TCP with pre-vote, check-quorum, a leader
 * lease (`isLeader()` is true only while a majority acknowledged this leader recently) and a durable
 * vote (`dataDir`). Every member runs one, with the same `members` list. The fencing token is the term.
 *
 * @example
 * ```ts
 * const election = new RaftElection({ id: 'a', members, dataDir: '/var/lib/ballot' })
 * election.whileLeader(async (signal, lead) => work({ signal, token: lead.token }))
 * await election.start()
 * ```
 */
export class RaftElection extends DrivenElection<RaftMessage, RaftHardState> {
  private readonly opts: RaftElectionOptions
  private readonly addresses: Map<string, string>
  private readonly resolvedTiming: RaftTiming
  private readonly codec: Codec<RaftMessage>

  /** Checks the options (throws InvalidOptionsError naming the field) and builds the node; start() joins. */
  constructor(opts: RaftElectionOptions) {
    checkRaftOptions(opts)
    const clock = opts.clock ?? realClock
    super({ clock, callbackTimeoutMs: opts.callbackTimeoutMs })
    this.opts = { ...opts, members: opts.members.map((m) => ({ ...m })) }
    this.addresses = new Map(opts.members.map((m) => [m.id, m.address]))
    const self = opts.members.find((m) => m.id === opts.id)
    if (!self) throw new InvalidOptionsError('id', `this node (${opts.id}) is not in the member list`)
    const listen = parseHostPort(opts.listen ?? self.address, 'listen')
    this.resolvedTiming = resolveTiming(opts.timing)
    const tls = opts.tls === undefined ? undefined : loadTls(opts.tls)
    const dataDir = opts.dataDir === undefined ? undefined : openDataDir(opts.dataDir)
    const stateStore =
      opts.stateStore ??
      (dataDir ? new StateFile(dataDir, raftHardStateSchema, 'raft-state.json') : undefined)
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
      incarnation: dataDir ? nextIncarnation(dataDir, clock.wall()) : undefined,
    })
    this.codec = codec
    const transport = new TcpTransport({
      self: opts.id,
      listen,
      peers: new Map(opts.members.filter((m) => m.id !== opts.id).map((m) => [m.id, m.address])),
      codec,
      connectTimeoutMs: opts.connectTimeoutMs ?? connectTimeoutFor(this.resolvedTiming.heartbeatIntervalMs),
      // A link on which what was sent is not acknowledged for an election timeout is dead, whatever TCP
      // thinks: redial it, so that a healed network carries the next heartbeat at once.
      // At least 250 ms: the fast profile's 100 ms would redial (and lose a message) on a mere stall.
      silenceTimeoutMs: Math.max(250, this.resolvedTiming.electionTimeoutMaxMs),
      tls,
      onError: (err) => this.reportError(err),
      onDialError: (peer, address, err) =>
        this.reportError(
          new TransportError(
            `cannot dial member ${peer} at ${address}: ${err.code === 'ENOTFOUND' ? 'the host name does not resolve' : err.message} (${err.code}); retrying`,
            { cause: err, address },
          ),
        ),
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

  /** This node's id. */
  get id(): string {
    return this.opts.id
  }

  /**
   * Replaces the shared key(s) without a restart: the first signs from now on, every one is accepted.
   * Rotate a cluster with no election: on every node `setKey([next, current])`, then on every node
   * `setKey(next)`. Throws INVALID_OPTIONS for an empty key, or to add a key to a node started without
   * one (or remove it): peers would drop every message in between.
   */
  setKey(key: string | readonly string[]): void {
    checkKey(key)
    this.codec.setKeys(key)
  }

  /**
   * How long this node's leader lease has left unless renewed (ms); undefined when it is not leading.
   * Work that must never overlap with another leader's (`ballot exec`) stops before this reaches 0.
   */
  override leaseRemainingMs(): number | undefined {
    if (!this.isLeader()) return undefined
    const expires = this.driver.view().leaseExpiresAt
    return expires === undefined ? undefined : Math.max(0, expires - this.clock.now())
  }

  /** The timings in force (after profiles and defaults are applied). */
  get timing(): RaftTiming {
    return { ...this.resolvedTiming }
  }

  /** resign() waits this long by default: a hand-over takes milliseconds, an election at most this. */
  protected defaultResignTimeoutMs(): number {
    return 2 * this.resolvedTiming.electionTimeoutMaxMs
  }

  /** Every member as this node sees it; a follower's figures for other followers are old (see MemberState). */
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
