/**
 * The bully driver: a BullyMachine run with a real clock over one of two transports, with the shared
 * Election interface on top.
 *
 *   - TCP (the Go bully daemon's model): listen on host:port, start from a list of other nodes' addresses;
 *     a node that shows up with a longer list is added by the others when it first speaks (its messages
 *     carry its address), without a restart. Peers that are down are retried with backoff.
 *   - UDP multicast (MultiBully's model): every node joins one group on one interface; nobody needs a
 *     list, and every message carries the sender's interface address.
 * @module
 */
import { Codec } from '../codec/envelope.js'
import type { ClusterState, MemberState } from '../election.js'
import { InvalidOptionsError } from '../errors.js'
import { BullyMachine, MAX_BULLY_PEERS } from '../protocol/bully/machine.js'
import {
  type BullyHardState,
  type BullyMessage,
  bullyHardStateSchema,
  bullyMessageSchema,
} from '../protocol/bully/messages.js'
import {
  BULLY_TIMING_PROFILES,
  type BullyTiming,
  type BullyTimingProfile,
  validateBullyTiming,
} from '../protocol/bully/options.js'
import { parseHostPort } from '../transport/address.js'
import {
  DEFAULT_MULTICAST_GROUP,
  MulticastTransport,
  resolveInterfaceAddress,
} from '../transport/multicast.js'
import { TcpTransport } from '../transport/tcp.js'
import { loadTls, type TlsOptions } from '../transport/tls.js'
import type { Transport, TransportHandlers, TransportStats } from '../transport/transport.js'
import { checkKey, checkOptions, describeValue, type KnownKeys } from './check-options.js'
import { type Clock, realClock } from './clock.js'
import { openDataDir } from './data-dir.js'
import { DrivenElection } from './driven-election.js'
import type { BullyHardState as BullyDurableState, HardStateStore } from './hard-state-store.js'
import { nextIncarnation } from './incarnation.js'
import { StateFile } from './state-file.js'
import { connectTimeoutFor, resolveTimingOption, type TimingOverrides } from './timing.js'

/**
 * Another bully node, for `members`: its address, and its id when that is not the address (the default
 * id over TCP is the advertised host:port).
 */
export interface BullyPeer {
  /** The node's id. Default: its address. */
  readonly id?: string | undefined
  /** host:port where the node listens. */
  readonly address: string
}

/** Explicit bully timings: any field left out (or undefined) is taken from the default profile. */
export type BullyTimingOptions = TimingOverrides<BullyTiming>

/** Where bully over UDP multicast meets: the group and the interface. */
export interface BullyMulticastOptions {
  /** The group, host:port. Default 239.255.41.17:9999 (administratively scoped). */
  group?: string | undefined
  /** The interface, by name ('eth0') or IPv4 address. Default 127.0.0.1. */
  iface?: string | undefined
}

/** Options of `new BullyElection()`. Unknown keys are refused (INVALID_OPTIONS naming the key). */
export interface BullyElectionOptions {
  /**
   * This node's id. Default: over TCP its advertised host:port, over multicast `pid@ip`; both stay the
   * same across restarts, so the same node wins again (the Go daemon drew random ids).
   */
  id?: string | undefined
  /**
   * Rank: the live node with the highest pid leads; ties go to the larger id. Default 0. Its value
   * modulo 1000 is also the slot this node's epochs (fencing tokens) are taken in: give every node its
   * own pid from 0 to 999 and no two leaderships can share a token (nodes sharing a slot are reported).
   */
  pid?: number | undefined
  /** TCP: where to listen (host:port). */
  listen?: string | undefined
  /** TCP: the address others reach this node at. Default: `listen`. */
  advertise?: string | undefined
  /**
   * TCP: the other nodes, as `{ id?, address }` (the same list may be given to every node: this node's
   * own entry is skipped). It grows as new nodes speak.
   */
  members?: readonly BullyPeer[] | undefined
  /**
   * TCP: the other nodes as strings, host:port (the id is then the address) or id=host:port.
   * @deprecated Use `members` (objects, as for RaftElection); `nodes` stays for the strings the CLI takes.
   */
  nodes?: readonly string[] | undefined
  /** Multicast instead of TCP: the group (default 239.255.41.17:9999) and the interface (name or IPv4). */
  multicast?: BullyMulticastOptions | undefined
  /** Cluster name: keeps two clusters on one network apart. Default "ballot". */
  cluster?: string | undefined
  /**
   * Shared key: every message is authenticated (HMAC-SHA256) and replay-checked. A list rotates keys:
   * the first signs, every one is accepted (see `setKey` to rotate without a restart). Over multicast
   * this key is the only protection there is: multicast cannot use TLS.
   */
  key?: string | readonly string[] | undefined
  /**
   * TCP only: mutual TLS between nodes, with this node's certificate and key and the CA every node's
   * certificate must be signed by (file paths or PEM text). A node with a certificate from another CA,
   * an expired one or none cannot join; both ends report why ('error' events, code TLS). Multicast
   * cannot use TLS (datagrams to a group): there, use `key`. Default: plain TCP.
   */
  tls?: TlsOptions | undefined
  /** A profile name ("default", "fast") or explicit timings, filled in from the default profile. */
  timing?: BullyTimingProfile | BullyTimingOptions | undefined
  /**
   * Directory where the highest epoch seen is kept, so a restarted node never reuses a fencing token.
   * Created if missing; a path that is a file, or cannot be written, is refused at once.
   */
  dataDir?: string | undefined
  /**
   * Where to keep the highest epoch instead of a file in `dataDir` (another durable medium; tests pass
   * one that fails on demand). Its `save` must not return before the state is durable.
   */
  stateStore?: HardStateStore<BullyDurableState> | undefined
  /** Max time a state callback runs before its signal aborts (ms). Default 10 000. */
  callbackTimeoutMs?: number | undefined
  /** Largest message accepted (bytes). Default 64 KiB. */
  maxMessageBytes?: number | undefined
  /**
   * TCP: how long a dial to a peer may wait to be accepted before it is retried (ms). Default: five
   * heartbeat intervals, at least 250 ms.
   */
  connectTimeoutMs?: number | undefined
  /** The clock to run on (tests and simulations pass their own). Default: the real one. */
  clock?: Clock | undefined
}

const BULLY_OPTION_KEYS: KnownKeys<BullyElectionOptions> = {
  id: true,
  pid: true,
  listen: true,
  advertise: true,
  members: true,
  nodes: true,
  multicast: true,
  cluster: true,
  key: true,
  tls: true,
  timing: true,
  dataDir: true,
  stateStore: true,
  callbackTimeoutMs: true,
  maxMessageBytes: true,
  connectTimeoutMs: true,
  clock: true,
}

/** Resolves the `timing` option to full timings; throws InvalidOptionsError naming the field at fault. */
export function resolveBullyTiming(timing: BullyElectionOptions['timing']): BullyTiming {
  return resolveTimingOption<BullyTiming>(timing, BULLY_TIMING_PROFILES, validateBullyTiming)
}

/** "id=host:port" or "host:port" (the id is then the address). */
function parseNode(entry: string): { id: string; address: string } {
  const eq = entry.indexOf('=')
  const id = eq > 0 ? entry.slice(0, eq) : entry
  const address = eq > 0 ? entry.slice(eq + 1) : entry
  parseHostPort(address, 'nodes')
  return { id, address }
}

/** `members` and `nodes` as one list of { id, address }, each checked; throws naming the entry at fault. */
function peerList(opts: BullyElectionOptions): Array<{ id: string; address: string }> {
  const out: Array<{ id: string; address: string }> = []
  for (const [field, list] of [
    ['members', opts.members],
    ['nodes', opts.nodes],
  ] as const) {
    if (list === undefined) continue
    if (!Array.isArray(list))
      throw new InvalidOptionsError(field, `must be an array, got ${describeValue(list)}`)
    list.forEach((entry: unknown, i: number) => {
      if (field === 'nodes') {
        if (typeof entry !== 'string')
          throw new InvalidOptionsError(
            `nodes[${i}]`,
            `must be host:port or id=host:port, got ${describeValue(entry)}`,
          )
        out.push(parseNode(entry))
        return
      }
      checkOptions(entry, { id: true, address: true }, `members[${i}]`)
      const peer = entry as BullyPeer
      if (typeof peer.address !== 'string')
        throw new InvalidOptionsError(
          `members[${i}].address`,
          `must be host:port, got ${describeValue(peer.address)}`,
        )
      parseHostPort(peer.address, `members[${i}].address`)
      out.push({ id: peer.id ?? peer.address, address: peer.address })
    })
  }
  const seen = new Map<string, string>()
  for (const p of out) {
    const other = seen.get(p.address)
    if (other !== undefined && other !== p.id)
      throw new InvalidOptionsError(
        'members',
        `${p.address} is listed for both ${other} and ${p.id}: every node needs its own address`,
      )
    seen.set(p.address, p.id)
  }
  return out
}

/**
 * A node of a bully group: the live node with the highest `pid` leads, over UDP multicast on a LAN (no
 * list needed) or over TCP to a list of `members`. No quorum and no lease: under a partition each side
 * elects its own leader (see the README). The fencing token is the epoch of the leader's claim.
 */
export class BullyElection extends DrivenElection<BullyMessage, BullyHardState> {
  /** This node's id. */
  readonly id: string
  /** The unicast address carried in this node's messages (TCP host:port, or the interface IP). */
  readonly advertisedAddress: string
  /** The machine being driven (a failed save replaces it with one rebuilt from the saved epoch). */
  private machine: BullyMachine | undefined
  private readonly resolvedTiming: BullyTiming
  private readonly codec: Codec<BullyMessage>

  /** Checks the options (throws InvalidOptionsError naming the field) and builds the node; start() joins. */
  constructor(opts: BullyElectionOptions) {
    checkOptions(opts, BULLY_OPTION_KEYS, 'options')
    if (opts.multicast !== undefined) checkOptions(opts.multicast, { group: true, iface: true }, 'multicast')
    checkKey(opts.key)
    if (opts.multicast !== undefined && opts.tls !== undefined)
      throw new InvalidOptionsError(
        'tls',
        'multicast cannot use TLS (datagrams to a group); authenticate with `key` instead, or use TCP',
      )
    const tls = opts.tls === undefined ? undefined : loadTls(opts.tls)
    const clock = opts.clock ?? realClock
    super({ clock, callbackTimeoutMs: opts.callbackTimeoutMs })
    const pid = opts.pid ?? 0
    if (!Number.isSafeInteger(pid))
      throw new InvalidOptionsError('pid', `must be an integer, got ${describeValue(opts.pid)}`)
    const timing = resolveBullyTiming(opts.timing)
    this.resolvedTiming = timing
    const listed = peerList(opts)
    if (opts.multicast && (opts.listen || listed.length > 0))
      throw new InvalidOptionsError('multicast', 'choose multicast or TCP (listen, members), not both')
    if (!opts.multicast && !opts.listen)
      throw new InvalidOptionsError('listen', 'give a host:port to listen on (TCP), or multicast')

    let peers: Array<{ id: string; address: string }> = []
    if (opts.multicast) {
      const iface = resolveInterfaceAddress(opts.multicast.iface ?? '127.0.0.1')
      this.advertisedAddress = iface
      this.id = opts.id ?? `${pid}@${iface}`
    } else {
      const listen = parseHostPort(opts.listen as string, 'listen')
      const advertise = opts.advertise ?? (opts.listen as string)
      const adv = parseHostPort(advertise, 'advertise')
      if (adv.port === 0 && opts.id === undefined)
        throw new InvalidOptionsError('id', 'give an id, or a fixed port (the default id is host:port)')
      if (adv.host === '0.0.0.0' || adv.host === '::')
        throw new InvalidOptionsError('advertise', `give an address others can reach, not ${adv.host}`)
      void listen
      this.advertisedAddress = advertise
      this.id = opts.id ?? advertise
      peers = listed.filter((p) => p.id !== this.id && p.address !== advertise)
    }

    const dataDir = opts.dataDir === undefined ? undefined : openDataDir(opts.dataDir)
    const stateStore =
      opts.stateStore ??
      (dataDir ? new StateFile(dataDir, bullyHardStateSchema, 'bully-state.json') : undefined)
    const build = (hardState: BullyHardState | undefined) => {
      this.machine = new BullyMachine({
        id: this.id,
        pid,
        address: this.advertisedAddress,
        timing,
        peers: peers.map((p) => ({ id: p.id, address: p.address })),
        hardState,
      })
      return this.machine
    }
    const codec = new Codec<BullyMessage>({
      cluster: opts.cluster ?? 'ballot',
      self: this.id,
      schema: bullyMessageSchema,
      key: opts.key,
      // Anyone who speaks the protocol (with the key, when one is set) may join: the list grows.
      maxMessageBytes: opts.maxMessageBytes,
      wallClock: () => clock.wall(),
      incarnation: dataDir ? nextIncarnation(dataDir, clock.wall()) : undefined,
    })
    this.codec = codec
    let transport: Transport<BullyMessage>
    if (opts.multicast) {
      transport = new MulticastTransport({
        self: this.id,
        group: parseHostPort(opts.multicast.group ?? DEFAULT_MULTICAST_GROUP, 'multicast'),
        interfaceAddress: this.advertisedAddress,
        codec,
      })
    } else {
      transport = new GrowingTcpTransport(
        new TcpTransport({
          self: this.id,
          listen: parseHostPort(opts.listen as string, 'listen'),
          peers: new Map(peers.map((p) => [p.id, p.address])),
          codec,
          connectTimeoutMs: opts.connectTimeoutMs ?? connectTimeoutFor(timing.heartbeatIntervalMs),
          // A link whose data goes unacknowledged for as long as a leader may stay silent is dead: redial.
          silenceTimeoutMs: Math.max(250, timing.leaderTimeoutMs),
          tls,
          onError: (err) => this.reportError(err),
        }),
      )
    }
    this.drive(build, transport, stateStore)
  }

  /**
   * Replaces the shared key(s) without a restart: the first signs from now on, every one is accepted.
   * Rotate with `setKey([next, current])` on every node, then `setKey(next)` on every node. Throws
   * INVALID_OPTIONS for an empty key, or to add a key to a node started without one (or remove it).
   */
  setKey(key: string | readonly string[]): void {
    checkKey(key)
    this.codec.setKeys(key)
  }

  /** The timings in force (after profiles and defaults are applied). */
  get timing(): BullyTiming {
    return { ...this.resolvedTiming }
  }

  /** resign() waits this long by default: the next node claims at once, a silent one within this. */
  protected defaultResignTimeoutMs(): number {
    return 2 * this.resolvedTiming.leaderTimeoutMs
  }

  /** Every node this one knows of, as it sees them. */
  clusterState(): ClusterState {
    const now = this.clock.now()
    const view = this.driver.view()
    const members: MemberState[] = [
      {
        id: this.id,
        address: this.advertisedAddress,
        kind: 'voter',
        role: view.role,
        term: BigInt(view.term),
        tags: {},
        lastContactMs: 0,
        reachable: true,
        self: true,
      },
      ...view.peers.map((p) => ({
        id: p.id,
        address: this.machine?.addressOf(p.id),
        kind: p.kind,
        role: p.role,
        term: BigInt(p.term),
        tags: p.tags,
        lastContactMs: p.lastContact === undefined ? undefined : Math.max(0, Math.round(now - p.lastContact)),
        reachable: p.reachable,
        self: false,
      })),
    ]
    return { self: this.id, role: view.role, term: BigInt(view.term), leader: this.leader(), members }
  }

  protected describe(id: string): { address?: string; tags: Record<string, string> } {
    return { address: this.machine?.addressOf(id), tags: {} }
  }
}

/**
 * The TCP transport, plus what bully's growing list needs: a node we have never heard of that speaks
 * to us is dialled back at the address its message carries, so our replies reach it; and nodes the
 * leader lists are dialled too, so nodes started with different lists still all find each other.
 */
class GrowingTcpTransport implements Transport<BullyMessage> {
  /** Peers added at run time (from messages), at most MAX_BULLY_PEERS. */
  private learned = 0

  constructor(private readonly inner: TcpTransport<BullyMessage>) {}

  get address(): string {
    return this.inner.address
  }

  get stats(): TransportStats {
    return this.inner.stats
  }

  start(handlers: TransportHandlers<BullyMessage>): Promise<void> {
    return this.inner.start({
      ...handlers,
      onMessage: (from, msg) => {
        this.learn(from, msg.addr)
        if (msg.t === 'claim' || msg.t === 'hb') for (const m of msg.members ?? []) this.learn(m.id, m.addr)
        handlers.onMessage(from, msg)
      },
    })
  }

  private learn(id: string, address: string): void {
    // Bounded as the machine's table is: without a key, anyone may name addresses for us to dial.
    if (this.inner.hasPeer(id) || this.learned >= MAX_BULLY_PEERS) return
    try {
      this.inner.addPeer(id, address)
      this.learned++
    } catch {
      // An address that is not host:port: we can hear this node but not answer it.
    }
  }

  send(to: string, msg: BullyMessage): void {
    this.inner.send(to, msg)
  }

  connectedPeers(): string[] {
    return this.inner.connectedPeers()
  }

  close(): Promise<void> {
    return this.inner.close()
  }
}
