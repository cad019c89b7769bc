/**
 * TCP transport: a full mesh of length-prefixed frame streams.
 *
 * Each node dials every peer and sends only on its own outbound connection; it reads only from inbound
 * connections. Two one-way connections per pair avoid any tie-breaking over who dials whom. A peer that
 * is down costs only its reconnect timer (exponential backoff with jitter).
 *
 * Fast failure detection: when an established outbound connection closes, the transport dials again at
 * once. A live process accepts; a dead one's port refuses straight away (ECONNREFUSED), and only then
 * does the transport report the peer unreachable. A flaky link or a paused process never looks dead.
 *
 * Every dial has a timeout (a blackholed peer is retried with backoff, not left to the kernel's minute
 * of SYN retransmissions), and every socket has TCP keepalive and Nagle off.
 */
import net from 'node:net'
import type { Codec } from '../codec/envelope.js'
import { encodeFrame, FrameDecoder } from '../codec/frame.js'
import { TransportError } from '../errors.js'
import { BROADCAST } from '../protocol/machine.js'
import { formatHostPort, type HostPort, parseHostPort } from './address.js'
import { type Transport, type TransportHandlers, TransportStats } from './transport.js'

export interface TcpTransportOptions<M> {
  self: string
  /** Where to listen; port 0 picks a free port. */
  listen: HostPort
  /** Every peer's id and host:port (this node excluded). */
  peers: Map<string, string>
  codec: Codec<M>
  /** First reconnect delay (ms), doubled up to `reconnectMaxMs`. Default 50. */
  reconnectInitialMs?: number
  /** Default 2000. */
  reconnectMaxMs?: number
  /**
   * How long a dial may wait for the peer to accept (ms) before it is abandoned and tried again with
   * backoff. Without it, a dial begun while the peer is blackholed (SYNs silently dropped) waits for the
   * kernel's SYN retransmissions, which back off to a minute and more, long after the network healed.
   * Default 1000; the election drivers pass a few heartbeat intervals.
   */
  connectTimeoutMs?: number
  /**
   * Idle time before TCP keepalive probes start (ms), on every connection: a peer that vanished (a
   * powered-off host) from a connection with nothing to send is noticed. Default 1000.
   */
  keepAliveMs?: number
  /** Messages are dropped (and counted) while a peer's send buffer holds more than this. Default 1 MiB. */
  maxBufferedBytes?: number
  /** Called when a message is dropped, with the reason and the id it claimed (if any). */
  onDrop?: (reason: string, from?: string) => void
  /**
   * Called once per peer and error code when dialling it fails for a reason that retrying will not cure
   * by itself (a host name that does not resolve): the transport keeps retrying, and the user is told.
   */
  onDialError?: (peer: string, address: string, err: NodeJS.ErrnoException) => void
  random?: () => number
}

/** Dial errors worth telling the user about: a refusal or a timeout is ordinary, these are a typo. */
const CONFIG_DIAL_ERRORS = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EADDRNOTAVAIL', 'EINVAL'])

interface Outbound {
  id: string
  target: HostPort
  socket: net.Socket | undefined
  connected: boolean
  backoffMs: number
  timer: NodeJS.Timeout | undefined
  /** Set after a drop of an established connection, until the next successful connect. */
  probing: boolean
}

export class TcpTransport<M> implements Transport<M> {
  readonly stats = new TransportStats()
  private readonly opts: TcpTransportOptions<M>
  private readonly server = net.createServer((socket) => this.accept(socket))
  private readonly outbound = new Map<string, Outbound>()
  private readonly inbound = new Set<net.Socket>()
  private handlers: TransportHandlers<M> | undefined
  private closed = false
  private boundAddress = ''
  private readonly initialMs: number
  private readonly maxMs: number
  private readonly maxBuffered: number
  private readonly connectTimeoutMs: number
  private readonly keepAliveMs: number
  private readonly random: () => number
  /** "peer code" pairs already reported through onDialError. */
  private readonly dialErrorsSaid = new Set<string>()

  constructor(opts: TcpTransportOptions<M>) {
    this.opts = opts
    this.initialMs = opts.reconnectInitialMs ?? 50
    this.maxMs = opts.reconnectMaxMs ?? 2000
    this.maxBuffered = opts.maxBufferedBytes ?? 1024 * 1024
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 1000
    this.keepAliveMs = opts.keepAliveMs ?? 1000
    this.random = opts.random ?? Math.random
    for (const [id, addr] of opts.peers) this.outbound.set(id, this.newOutbound(id, addr))
  }

  private newOutbound(id: string, addr: string): Outbound {
    return {
      id,
      target: parseHostPort(addr, `peer ${id}`),
      socket: undefined,
      connected: false,
      backoffMs: this.initialMs,
      timer: undefined,
      probing: false,
    }
  }

  hasPeer(id: string): boolean {
    return this.outbound.has(id)
  }

  /**
   * Adds a peer at run time (bully learns newcomers from their messages) and dials it at once if the
   * transport is running. Throws InvalidOptionsError if the address is not host:port.
   */
  addPeer(id: string, address: string): void {
    if (this.outbound.has(id) || id === this.opts.self) return
    const out = this.newOutbound(id, address)
    this.outbound.set(id, out)
    if (this.handlers && !this.closed) this.dial(out)
  }

  get address(): string {
    return this.boundAddress
  }

  connectedPeers(): string[] {
    return [...this.outbound.values()].filter((o) => o.connected).map((o) => o.id)
  }

  /**
   * Listens, then dials every peer. A failure to listen (EADDRINUSE, EADDRNOTAVAIL, ...) rejects with a
   * TransportError naming the address, and leaves the transport as it was: start() may be tried again.
   */
  async start(handlers: TransportHandlers<M>): Promise<void> {
    const listen = formatHostPort(this.opts.listen)
    if (this.closed) throw new TransportError(`transport for ${listen} is closed`, { address: listen })
    try {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject)
        this.server.listen(this.opts.listen.port, this.opts.listen.host, () => {
          this.server.off('error', reject)
          resolve()
        })
      })
    } catch (err) {
      throw new TransportError(`cannot listen on ${listen}: ${(err as Error).message}`, {
        cause: err,
        address: listen,
      })
    }
    this.handlers = handlers
    const addr = this.server.address()
    if (addr && typeof addr === 'object')
      this.boundAddress = formatHostPort({ host: addr.address, port: addr.port })
    for (const out of this.outbound.values()) this.dial(out)
  }

  send(to: string, msg: M): void {
    if (to === BROADCAST) {
      for (const id of this.outbound.keys()) this.send(id, msg)
      return
    }
    const out = this.outbound.get(to)
    if (!out?.connected || !out.socket || out.socket.writableLength > this.maxBuffered) {
      this.stats.sendFailures++
      return
    }
    const frame = encodeFrame(this.opts.codec.encode(to, msg))
    out.socket.write(frame)
    this.stats.messagesSent++
    this.stats.bytesSent += frame.length
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    // End (not destroy) outbound streams so the last messages, a hand-over among them, go out first.
    const flushed: Promise<void>[] = []
    for (const out of this.outbound.values()) {
      clearTimeout(out.timer)
      const socket = out.socket
      if (!socket) continue
      flushed.push(
        new Promise<void>((resolve) => {
          const force = setTimeout(() => socket.destroy(), 250)
          socket.once('close', () => {
            clearTimeout(force)
            resolve()
          })
          socket.end()
        }),
      )
    }
    await Promise.all(flushed)
    for (const s of this.inbound) s.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  // ---------------------------------------------------------------- outbound

  private dial(out: Outbound): void {
    if (this.closed) return
    const socket = net.connect({ host: out.target.host, port: out.target.port })
    out.socket = socket
    socket.setNoDelay(true)
    socket.setKeepAlive(true, this.keepAliveMs)
    // Abandoned without an error: a dial that timed out says nothing about the peer's process, so it
    // never counts as "unreachable" below (only a refusal does); it is tried again with backoff.
    // Checked again after the poll phase (setImmediate): when the event loop was blocked past the
    // deadline (start-up, a slow fsync), a connection that completed meanwhile is reported there, after
    // this timer, and must not be torn down.
    const connectTimer = setTimeout(
      () => setImmediate(() => socket.connecting && socket.destroy()),
      this.connectTimeoutMs,
    )
    connectTimer.unref()
    socket.on('connect', () => {
      clearTimeout(connectTimer)
      out.connected = true
      out.probing = false
      out.backoffMs = this.initialMs
      this.handlers?.onPeerConnected(out.id)
    })
    // The peer never writes on our outbound connection; discard anything that arrives.
    socket.on('data', () => {})
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // 'close' follows and carries the decision; a name that does not resolve is also said, once.
      const said = `${out.id} ${err.code}`
      if (!CONFIG_DIAL_ERRORS.has(err.code ?? '') || this.dialErrorsSaid.has(said)) return
      this.dialErrorsSaid.add(said)
      this.opts.onDialError?.(out.id, formatHostPort(out.target), err)
    })
    socket.on('close', (hadError) => {
      clearTimeout(connectTimer)
      if (out.socket !== socket || this.closed) return
      const wasConnected = out.connected
      out.connected = false
      out.socket = undefined
      if (wasConnected) {
        // Probe at once: a live peer accepts, a dead process's port refuses.
        out.probing = true
        this.dial(out)
        return
      }
      if (out.probing && hadError) {
        out.probing = false
        this.handlers?.onPeerUnreachable(out.id)
      }
      this.scheduleDial(out)
    })
  }

  private scheduleDial(out: Outbound): void {
    if (this.closed) return
    const delay = out.backoffMs * (0.5 + this.random())
    out.backoffMs = Math.min(out.backoffMs * 2, this.maxMs)
    out.timer = setTimeout(() => {
      out.timer = undefined
      this.dial(out)
    }, delay)
    out.timer.unref()
  }

  // ---------------------------------------------------------------- inbound

  private accept(socket: net.Socket): void {
    if (this.closed || !this.handlers) {
      socket.destroy()
      return
    }
    this.inbound.add(socket)
    socket.setNoDelay(true)
    socket.setKeepAlive(true, this.keepAliveMs)
    const decoder = new FrameDecoder(this.opts.codec.maxMessageBytes)
    socket.on('data', (chunk: Buffer) => {
      const result = decoder.push(chunk)
      for (const frame of result.frames) {
        if (!this.deliver(frame)) {
          socket.destroy()
          return
        }
      }
      if (!result.ok) {
        this.drop(result.reason)
        socket.destroy()
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => this.inbound.delete(socket))
  }

  /** Decodes and hands up one frame; false when the connection should be closed (a refused peer). */
  private deliver(frame: Buffer): boolean {
    this.stats.bytesReceived += frame.length + 4
    const decoded = this.opts.codec.decode(frame)
    if (!decoded.ok) {
      this.drop(decoded.reason, decoded.from)
      return decoded.reason !== 'unknown-peer' && decoded.reason !== 'cluster'
    }
    this.stats.messagesReceived++
    this.redialIfWaiting(decoded.from)
    this.handlers?.onMessage(decoded.from, decoded.msg)
    return true
  }

  /**
   * A peer that speaks to us is up, even if our own connection to it is still waiting out a backoff
   * (it was down when we last tried, at start-up say). Dial it now: otherwise our replies to it, a vote
   * among them, are lost until the backoff timer fires.
   */
  private redialIfWaiting(id: string): void {
    const out = this.outbound.get(id)
    if (!out || out.socket || out.timer === undefined || this.closed) return
    clearTimeout(out.timer)
    out.timer = undefined
    out.backoffMs = this.initialMs
    this.dial(out)
  }

  private drop(reason: Parameters<TransportStats['drop']>[0], from?: string): void {
    this.stats.drop(reason, from)
    this.opts.onDrop?.(reason, from)
  }
}
