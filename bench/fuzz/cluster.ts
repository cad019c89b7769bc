/**
 * In-memory clusters of the real protocol machines, driven by the real MachineDriver, talking through
 * the real codec (envelopes, HMAC, replay window) and, for raft, the real frame decoder: the path a
 * runtime's transport takes from bytes to a machine, minus the socket. The fuzzer feeds its frames into
 * one node through exactly this path (`ingest`), then checks what changed.
 */
import type { z } from 'zod'
import { Codec, type DropReason } from '../../src/codec/envelope.js'
import { FrameDecoder } from '../../src/codec/frame.js'
import { BullyMachine } from '../../src/protocol/bully/machine.js'
import { type BullyMessage, bullyMessageSchema } from '../../src/protocol/bully/messages.js'
import { DEFAULT_BULLY_TIMING } from '../../src/protocol/bully/options.js'
import { BROADCAST, type MachineView, type ProtocolMachine } from '../../src/protocol/machine.js'
import { RaftMachine } from '../../src/protocol/raft/machine.js'
import { type RaftMessage, raftMessageSchema } from '../../src/protocol/raft/messages.js'
import { DEFAULT_TIMING } from '../../src/protocol/raft/options.js'
import { MachineDriver } from '../../src/runtime/driver.js'
import type { SimRandom } from '../../src/sim/rng.js'
import { type Transport, type TransportHandlers, TransportStats } from '../../src/transport/transport.js'
import { ManualClock } from './clock.js'

export type Algo = 'raft' | 'bully'

/** What one fuzzed input did to its target. */
export type Outcome =
  | { kind: 'dropped'; reason: DropReason | 'partial' }
  | { kind: 'refused'; reason: DropReason }
  | { kind: 'accepted' }

/** A transport that hands every message to the in-memory bus; it counts like a real one. */
class BusTransport<M> implements Transport<M> {
  readonly stats = new TransportStats()
  handlers: TransportHandlers<M> | undefined
  sent = 0
  constructor(
    readonly address: string,
    private readonly post: (to: string, msg: M) => void,
    private readonly peers: () => string[],
  ) {}
  async start(handlers: TransportHandlers<M>): Promise<void> {
    this.handlers = handlers
  }
  send(to: string, msg: M): void {
    this.sent++
    this.stats.messagesSent++
    this.post(to, msg)
  }
  async close(): Promise<void> {}
  connectedPeers(): string[] {
    return this.peers()
  }
}

export interface FuzzNode<M> {
  id: string
  codec: Codec<M>
  transport: BusTransport<M>
  driver: MachineDriver<M, unknown>
  /** Refusals the machine made during the last input (reset by ingest). */
  refusals: DropReason[]
  /** Peers heard over the datagram path (as MulticastTransport keeps them). */
  heard: Set<string>
  /** The fuzzer's long-lived garbage stream into this node (raft): a new one after an oversized length. */
  stream: FrameDecoder
  /** The incarnation this node's codec stamps (what a replay of its frames carries). */
  incarnation: number
  /** Messages that passed the codec and went on to the machine. */
  machineInputs: number
}

export interface ClusterOptions {
  algo: Algo
  /** Shared HMAC key; undefined runs the cluster open (no authentication, no replay window). */
  key: string | undefined
  cluster: string
  random: SimRandom
}

export const MEMBER_IDS = ['n1', 'n2', 'n3'] as const

/**
 * Three nodes of one algorithm on a bus with a manual clock. Raft messages travel as frames through a
 * FrameDecoder, bully messages as datagrams, each through the receiver's codec.
 */
export class FuzzCluster<M = unknown> {
  readonly clock = new ManualClock()
  readonly nodes = new Map<string, FuzzNode<M>>()
  /** Every encoded message the bus delivered, by recipient: the fuzzer replays these. */
  readonly captured = new Map<string, Buffer[]>()
  private readonly queue: Array<{ to: string; bytes: Buffer }> = []
  /**
   * Called when a message has passed the codec, just before the machine gets it: the fuzzer takes its
   * snapshot of the target here (a message the codec drops never reaches the machine, which only its
   * inputs can change).
   */
  beforeMachine: ((node: FuzzNode<M>) => void) | undefined
  private readonly schema: z.ZodType<M>

  constructor(readonly opts: ClusterOptions) {
    this.schema = (opts.algo === 'raft' ? raftMessageSchema : bullyMessageSchema) as unknown as z.ZodType<M>
    MEMBER_IDS.forEach((id, i) => {
      this.addNode(id, i)
    })
  }

  private addNode(id: string, index: number): void {
    const { algo, key, cluster, random } = this.opts
    const incarnation = 1_000_000 + index
    const codec = new Codec<M>({
      cluster,
      self: id,
      schema: this.schema,
      key,
      // raft knows its members; bully over multicast accepts anyone who speaks the protocol.
      isKnownPeer: algo === 'raft' ? (peer) => (MEMBER_IDS as readonly string[]).includes(peer) : undefined,
      wallClock: () => this.clock.wall(),
      incarnation,
    })
    const others = MEMBER_IDS.filter((m) => m !== id)
    const transport = new BusTransport<M>(
      `10.0.0.${index + 1}`,
      (to, msg) => this.post(node, to, msg),
      () => [...others],
    )
    const build = (hard: unknown) =>
      (algo === 'raft'
        ? new RaftMachine({
            id,
            members: MEMBER_IDS.map((m) => ({ id: m })),
            timing: DEFAULT_TIMING,
            random: () => random.next(),
            hardState: hard as never,
          })
        : new BullyMachine({
            id,
            pid: index + 1,
            address: `10.0.0.${index + 1}`,
            timing: DEFAULT_BULLY_TIMING,
            peers: [],
            hardState: hard as never,
          })) as unknown as ProtocolMachine<M, unknown>
    const node: FuzzNode<M> = {
      id,
      codec,
      transport,
      refusals: [],
      heard: new Set(),
      stream: new FrameDecoder(codec.maxMessageBytes),
      incarnation,
      machineInputs: 0,
      driver: new MachineDriver<M, unknown>(build, undefined, transport, this.clock, {
        persist: () => {},
        update: () => {},
        error: () => {},
        refused: (r) => {
          transport.stats.drop(r.reason, r.peer)
          node.refusals.push(r.reason)
        },
      }),
    }
    this.nodes.set(id, node)
  }

  /** Starts every node and runs the cluster until it has a leader with a lease everyone follows. */
  async settle(): Promise<string> {
    for (const n of this.nodes.values()) await n.driver.start()
    if (this.opts.algo === 'raft')
      for (const n of this.nodes.values())
        for (const peer of MEMBER_IDS) if (peer !== n.id) n.driver.input({ kind: 'peerConnected', peer })
    for (let i = 0; i < 2000; i++) {
      this.run(10)
      const leader = this.leader()
      if (leader) return leader
    }
    throw new Error(`${this.opts.algo} cluster found no leader`)
  }

  /** The leader every node names, with its lease held, or undefined. */
  leader(): string | undefined {
    const views = [...this.nodes.values()].map((n) => n.driver.view())
    const leaders = views.filter((v) => v.isLeader)
    if (leaders.length !== 1) return undefined
    const id = leaders[0]?.id
    return views.every((v) => v.leader?.id === id) ? id : undefined
  }

  /** Moves time on by `ms`, delivering the bus's messages (1 ms apart) on the way. */
  run(ms: number): void {
    for (let t = 0; t < ms; t++) {
      this.clock.advance(1, () => this.drain())
      this.drain()
    }
  }

  private drain(): void {
    while (this.queue.length > 0) {
      const item = this.queue.shift() as { to: string; bytes: Buffer }
      const node = this.nodes.get(item.to)
      if (node) this.deliverValid(node, item.bytes)
    }
  }

  private post(from: FuzzNode<M>, to: string, msg: M): void {
    const targets = to === BROADCAST ? MEMBER_IDS.filter((m) => m !== from.id) : [to]
    for (const target of targets) {
      // Multicast sends one datagram addressed to '*' or the peer; TCP one frame per peer.
      const bytes = from.codec.encode(this.opts.algo === 'bully' ? to : target, msg)
      this.queue.push({ to: target, bytes })
    }
  }

  /** Real traffic between members: through the codec, never through the fuzzer's stream. */
  private deliverValid(node: FuzzNode<M>, bytes: Buffer): void {
    this.ingestMessage(node, bytes)
    // Kept for replays once delivered: a frame still in flight sent by the fuzzer first is no replay.
    const list = this.captured.get(node.id) ?? []
    this.captured.set(node.id, list)
    if (list.length < 4096) list.push(bytes)
    else list[Math.floor(this.opts.random.next() * list.length)] = bytes
  }

  /**
   * One message through the receiving transport's checks and into the machine: TcpTransport.deliver for
   * raft, MulticastTransport.deliver for bully (where a message for another node is silently skipped).
   */
  ingestMessage(node: FuzzNode<M>, bytes: Buffer): Outcome {
    node.refusals = []
    const decoded = node.codec.decode(bytes)
    if (!decoded.ok) {
      if (this.opts.algo === 'bully' && decoded.reason === 'misdirected')
        return { kind: 'dropped', reason: 'misdirected' }
      node.transport.stats.drop(decoded.reason, decoded.from)
      return { kind: 'dropped', reason: decoded.reason }
    }
    node.transport.stats.messagesReceived++
    this.beforeMachine?.(node)
    node.machineInputs++
    node.transport.handlers?.onMessage(decoded.from, decoded.msg)
    if (this.opts.algo === 'bully' && !node.heard.has(decoded.from) && node.heard.size < 10_000) {
      node.heard.add(decoded.from)
      node.transport.handlers?.onPeerConnected(decoded.from)
    }
    const refused = node.refusals[0]
    return refused ? { kind: 'refused', reason: refused } : { kind: 'accepted' }
  }

  /**
   * Bytes from the fuzzer's connection into a raft node: through the node's FrameDecoder (an oversized
   * length resets the connection, as TcpTransport does), then each complete frame as above. Bully gets
   * each input as one datagram.
   */
  ingest(node: FuzzNode<M>, bytes: Buffer, mode: 'datagram' | 'connection' | 'stream'): Outcome[] {
    if (mode === 'datagram') return [this.ingestMessage(node, bytes)]
    // 'connection': the input is all a fresh connection sends; 'stream': more bytes on a long-lived one.
    const decoder = mode === 'stream' ? node.stream : new FrameDecoder(node.codec.maxMessageBytes)
    const result = decoder.push(bytes)
    const outcomes: Outcome[] = []
    for (const frame of result.frames) outcomes.push(this.ingestMessage(node, frame))
    if (!result.ok) {
      node.transport.stats.drop(result.reason)
      outcomes.push({ kind: 'dropped', reason: result.reason })
      if (mode === 'stream') node.stream = new FrameDecoder(node.codec.maxMessageBytes)
    } else if (result.frames.length === 0) {
      outcomes.push({ kind: 'dropped', reason: 'partial' })
    }
    return outcomes
  }

  /** Everything of a node an input could change: its view (role, term, leader, lease, peers) and sends. */
  snapshot(node: FuzzNode<M>): { sent: number; view: MachineView } {
    return { sent: node.transport.sent, view: node.driver.view() }
  }
}

export type { BullyMessage, RaftMessage }
