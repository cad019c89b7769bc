/**
 * TCP transport: a full mesh of length-prefixed frame streams, optionally over mutual TLS.
 *
 * Each node dials every peer and sends only on its own outbound connection; it reads only from inbound
 * connections. Two one-way connections per pair avoid any tie-breaking over who dials whom. A peer that
 * is down costs only its reconnect timer (exponential backoff with jitter). The first frame on every
 * outbound connection is a hello (an authenticated frame naming this node), so the receiver can accept
 * the connection at once, before any protocol message is due.
 *
 * Fast failure detection: when an established outbound connection closes, the transport dials again at
 * once. A live process accepts; a dead one's port refuses straight away (ECONNREFUSED), and only then
 * does the transport report the peer unreachable. A flaky link or a paused process never looks dead.
 *
 * Every dial has a timeout (a blackholed peer is retried promptly, not left to the kernel's minute of
 * SYN retransmissions), and every socket has TCP keepalive and Nagle off.
 *
 * Links that stop moving data: a connection whose packets vanish during a network cut is neither timed
 * out nor redialled for many seconds, and after the heal the kernel's retransmission backoff decides when
 * the peers hear each other again. Node has no TCP_USER_TIMEOUT, so with `silenceTimeoutMs` the
 * transport does it itself: its hello asks the receiver to acknowledge what arrives at least every third
 * of that timeout (a one-byte frame back on the same connection), and a connection on which data sent
 * was not acknowledged for `silenceTimeoutMs` is destroyed and dialled again (counted as `silent`). Only
 * a connection whose receiver has acknowledged once is judged, so a peer that does not acknowledge (an
 * older version) is never redialled for it.
 *
 * Inbound connections are untrusted until their first valid frame: until then a connection may hold at
 * most `preAuthMaxBytes` of a frame, must send that frame (and finish its TLS handshake) within
 * `preAuthTimeoutMs`, may not go quiet for `preAuthIdleMs`, and at most `maxPreAuthConnections` such
 * connections are kept (the oldest goes first). Every connection closed for these reasons is counted.
 */
import net from 'node:net'
import tls from 'node:tls'
import type { Codec } from '../codec/envelope.js'
import { encodeFrame, FrameDecoder } from '../codec/frame.js'
import { ACK_FRAME, decodeNotice, encodeNotice, isAck } from '../codec/notice.js'
import { type BallotError, TlsError, TransportError } from '../errors.js'
import { BROADCAST } from '../protocol/machine.js'
import { formatHostPort, type HostPort, parseHostPort } from './address.js'
import { explainTlsReason, ownCertificateProblem, type TlsMaterial } from './tls.js'
import {
  type ConnectionDropReason,
  type Transport,
  type TransportHandlers,
  TransportStats,
} from './transport.js'

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
   * How long a dial (with TLS, the handshake too) may wait for the peer before it is abandoned (ms). A
   * dial that timed out, or failed for a network reason (no route), is tried again so that attempts
   * start at most once per this interval: without it, a dial begun while the peer is blackholed (SYNs
   * silently dropped) waits for the kernel's SYN retransmissions, which back off to a minute and more,
   * long after the network healed. Default 1000; the election drivers pass a few heartbeat intervals.
   */
  connectTimeoutMs?: number
  /**
   * Idle time before TCP keepalive probes start (ms), on every connection: a peer that vanished (a
   * powered-off host) from a connection with nothing to send is noticed. Default 1000.
   */
  keepAliveMs?: number
  /**
   * Redial a peer when data sent to it was not acknowledged for this long (ms): the receiving transport
   * acknowledges what arrives at least every third of this (asked for in the hello). Raft passes its
   * minimum election timeout. Default: off (no acknowledgements asked for, none judged).
   */
  silenceTimeoutMs?: number
  /** An inbound connection must send its first valid frame within this (ms). Default 5000. */
  preAuthTimeoutMs?: number
  /** An inbound connection that has not yet sent a valid frame may be quiet this long (ms). Default 2000. */
  preAuthIdleMs?: number
  /** The largest frame accepted before a connection's first valid frame (bytes). Default 4096. */
  preAuthMaxBytes?: number
  /** Inbound connections kept at once before their first valid frame; the oldest goes. Default 64. */
  maxPreAuthConnections?: number
  /** Mutual TLS on every connection, inbound and outbound (see ./tls.ts). Default: plain TCP. */
  tls?: TlsMaterial
  /** Messages are dropped (and counted) while a peer's send buffer holds more than this. Default 1 MiB. */
  maxBufferedBytes?: number
  /** Called when a message is dropped, with the reason and the id it claimed (if any). */
  onDrop?: (reason: string, from?: string) => void
  /**
   * Called once per peer and error code when dialling it fails for a reason that retrying will not cure
   * by itself (a host name that does not resolve): the transport keeps retrying, and the user is told.
   */
  onDialError?: (peer: string, address: string, err: NodeJS.ErrnoException) => void
  /**
   * Called with problems the user must fix and the transport cannot (a refused TLS certificate, on
   * either side): at most once a minute per peer (or remote host) and reason.
   */
  onError?: (err: BallotError) => void
  random?: () => number
  /** A monotonic clock in ms, for silence detection. Default `performance.now`. */
  now?: () => number
}

/** Dial errors worth telling the user about: a refusal or a timeout is ordinary, these are a typo. */
const CONFIG_DIAL_ERRORS = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EADDRNOTAVAIL', 'EINVAL'])
/** Dial failures that say the network, not the peer's process, is in the way: retry soon. */
const NETWORK_DIAL_ERRORS = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EHOSTDOWN', 'ENETDOWN'])
/** TLS record type of a handshake: the first byte a TLS client sends. */
const TLS_HANDSHAKE_RECORD = 0x16
/** Repeated problems of one kind from one place are said at most this often. */
const REPORT_EVERY_MS = 60_000
/** How long a refused connection is given to carry our notice out before it is destroyed. */
const NOTICE_LINGER_MS = 1000

interface Outbound {
  id: string
  target: HostPort
  socket: net.Socket | undefined
  connected: boolean
  backoffMs: number
  timer: NodeJS.Timeout | undefined
  /** Set after a drop of an established connection, until the next successful connect. */
  probing: boolean
  /** When the current dial began (monotonic ms). */
  dialStartedAt: number
  /** How the last dial ended when it never connected: 'network' (timeout, no route) or 'refused'. */
  failure: 'network' | 'refused' | undefined
  /** Whether the peer acknowledges data on the current connection (it asked for it in our hello). */
  acked: boolean
  /** The first send since the peer last acknowledged data (monotonic ms); undefined: all acknowledged. */
  unackedSince: number | undefined
}

interface Inbound {
  raw: net.Socket
  /** What frames are read from: the raw socket, or the TLS socket over it. */
  stream: net.Socket
  remote: string
  decoder: FrameDecoder
  /** The member this connection proved to come from, once it sent a valid frame. */
  peer: string | undefined
  deadline: NodeJS.Timeout | undefined
  /** Closed (or being closed) by this node: no more frames are read. */
  done: boolean
  /** Acknowledge what arrives at least this often (ms), as the dialler's hello asked; undefined: never. */
  ackMs: number | undefined
  /** When the last acknowledgement was written (monotonic ms). */
  lastAckAt: number
  /** A pending acknowledgement, written once `ackMs` has passed since the last. */
  ackTimer: NodeJS.Timeout | undefined
}

export class TcpTransport<M> implements Transport<M> {
  readonly stats = new TransportStats()
  private readonly opts: TcpTransportOptions<M>
  private readonly server = net.createServer((socket) => this.accept(socket))
  private readonly outbound = new Map<string, Outbound>()
  private readonly inbound = new Set<Inbound>()
  /** Inbound connections without a valid frame yet, oldest first (a Set keeps insertion order). */
  private readonly unproven = new Set<Inbound>()
  /** The accepted inbound connection of each member. */
  private readonly inboundOf = new Map<string, Inbound>()
  private handlers: TransportHandlers<M> | undefined
  private closed = false
  private boundAddress = ''
  private readonly initialMs: number
  private readonly maxMs: number
  private readonly maxBuffered: number
  private readonly connectTimeoutMs: number
  private readonly keepAliveMs: number
  private readonly preAuthTimeoutMs: number
  private readonly preAuthIdleMs: number
  private readonly preAuthMaxBytes: number
  private readonly maxPreAuth: number
  private readonly random: () => number
  private readonly now: () => number
  private readonly tlsContext: tls.SecureContext | undefined
  /** How often peers are asked to acknowledge what arrives (ms): a third of the silence timeout. */
  private readonly ackMs: number | undefined
  /** Takes sniffed TLS connections through their handshake (TLS only). */
  private readonly tlsServer: tls.Server | undefined
  /** Inbound connections in their TLS handshake, by remote host:port. */
  private readonly handshaking = new Map<string, Inbound>()
  /** "peer code" pairs already reported through onDialError. */
  private readonly dialErrorsSaid = new Set<string>()
  /** When each (place, reason) problem was last reported. */
  private readonly problemsSaid = new Map<string, number>()

  constructor(opts: TcpTransportOptions<M>) {
    this.opts = opts
    this.initialMs = opts.reconnectInitialMs ?? 50
    this.maxMs = opts.reconnectMaxMs ?? 2000
    this.maxBuffered = opts.maxBufferedBytes ?? 1024 * 1024
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 1000
    this.keepAliveMs = opts.keepAliveMs ?? 1000
    this.preAuthTimeoutMs = opts.preAuthTimeoutMs ?? 5000
    this.preAuthIdleMs = opts.preAuthIdleMs ?? 2000
    this.preAuthMaxBytes = opts.preAuthMaxBytes ?? 4096
    this.maxPreAuth = opts.maxPreAuthConnections ?? 64
    this.random = opts.random ?? Math.random
    this.now = opts.now ?? (() => performance.now())
    this.ackMs =
      opts.silenceTimeoutMs === undefined ? undefined : Math.max(5, Math.floor(opts.silenceTimeoutMs / 3))
    this.tlsContext = opts.tls
      ? tls.createSecureContext({ cert: opts.tls.cert, key: opts.tls.key, ca: opts.tls.ca })
      : undefined
    if (opts.tls) {
      this.tlsServer = tls.createServer({
        cert: opts.tls.cert,
        key: opts.tls.key,
        ca: opts.tls.ca,
        requestCert: true,
        // Checked by hand (onSecure), so that the refusal can be said to the peer and logged.
        rejectUnauthorized: false,
        // Our own deadline (preAuthTimeoutMs) bounds the handshake; this one must never come first.
        handshakeTimeout: this.preAuthTimeoutMs + 60_000,
      })
      this.tlsServer.on('secureConnection', (s) => this.onSecure(s))
      this.tlsServer.on('tlsClientError', (err, s) => this.onTlsClientError(err, s))
    }
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
      dialStartedAt: 0,
      failure: undefined,
      acked: false,
      unackedSince: undefined,
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
    const own = this.opts.tls && ownCertificateProblem(this.opts.tls, Date.now())
    if (own && this.opts.tls)
      this.problem(
        'self',
        own,
        `this node's TLS certificate (valid ${this.opts.tls.certificate.validFrom} to ${this.opts.tls.certificate.validTo}): ${explainTlsReason(own)}`,
        {},
      )
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
    if (this.opts.silenceTimeoutMs !== undefined && out.acked) {
      const now = this.now()
      if (out.unackedSince === undefined) out.unackedSince = now
      else if (now - out.unackedSince > this.opts.silenceTimeoutMs) {
        // Sent and heard nothing back for longer than an election timeout: the connection stopped
        // moving data (a cut). Redial ('close' below dials again at once); this message is lost, as it
        // would have been on the dead connection.
        this.stats.dropConnection('silent')
        this.stats.sendFailures++
        out.socket.destroy()
        return
      }
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
    for (const conn of this.inbound) this.shut(conn)
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  // ---------------------------------------------------------------- outbound

  private dial(out: Outbound): void {
    if (this.closed) return
    const address = formatHostPort(out.target)
    const socket = this.tlsContext
      ? tls.connect({
          host: out.target.host,
          port: out.target.port,
          secureContext: this.tlsContext,
          // Checked by hand on 'secureConnect', so that the refusal can be said to the peer and logged.
          rejectUnauthorized: false,
          // The cluster's CA is the boundary of trust; names and addresses in certificates are not checked.
          checkServerIdentity: () => undefined,
        })
      : net.connect({ host: out.target.host, port: out.target.port })
    out.socket = socket
    out.dialStartedAt = this.now()
    out.failure = undefined
    socket.setNoDelay(true)
    socket.setKeepAlive(true, this.keepAliveMs)
    let tcpUp = false
    // Abandoned without an error: a dial that timed out says nothing about the peer's process, so it
    // never counts as "unreachable" below (only a refusal does); it is tried again soon.
    // Checked again after the poll phase (setImmediate): when the event loop was blocked past the
    // deadline (start-up, a slow fsync), a connection that completed meanwhile is reported there, after
    // this timer, and must not be torn down.
    const connectTimer = setTimeout(
      () =>
        setImmediate(() => {
          if (out.socket !== socket || out.connected || socket.destroyed) return
          out.failure = 'network'
          if (tcpUp && this.tlsContext)
            this.problem(out.id, 'HANDSHAKE', `TLS handshake with member ${out.id} at ${address} timed out`, {
              peer: out.id,
              address,
            })
          socket.destroy()
        }),
      this.connectTimeoutMs,
    )
    connectTimer.unref()
    const established = () => {
      clearTimeout(connectTimer)
      if (out.socket !== socket || this.closed) return
      if (this.tlsContext) {
        const tlsSocket = socket as tls.TLSSocket
        if (!tlsSocket.authorized) {
          const reason = certificateReason(tlsSocket)
          this.stats.dropConnection('tls')
          this.problem(
            out.id,
            reason,
            `refused member ${out.id} at ${address}${subjectOf(tlsSocket)}: ${explainTlsReason(reason)}`,
            { peer: out.id, address },
          )
          out.failure = 'refused'
          refuseWithNotice(socket, reason)
          return
        }
      }
      out.connected = true
      out.probing = false
      out.backoffMs = this.initialMs
      out.acked = false
      out.unackedSince = undefined
      socket.write(encodeFrame(this.opts.codec.encodeHello(out.id, this.ackMs)))
      this.handlers?.onPeerConnected(out.id)
    }
    if (this.tlsContext) {
      socket.on('connect', () => {
        tcpUp = true
      })
      socket.on('secureConnect', established)
    } else socket.on('connect', established)
    // The peer writes on our outbound connection only to acknowledge what arrives (when our hello asked
    // for it), or to say why it refuses the connection (a notice).
    const notices = new FrameDecoder(64)
    socket.on('data', (chunk: Buffer) => {
      notices.append(chunk)
      for (;;) {
        const frame = notices.next()
        if (frame === undefined || out.socket !== socket) return
        if (frame === 'oversized') {
          socket.destroy()
          return
        }
        if (isAck(frame)) {
          out.acked = true
          out.unackedSince = undefined
          continue
        }
        this.onNotice(out, socket, address, frame)
      }
    })
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // 'close' follows and carries the decision; a name that does not resolve is also said, once.
      if (NETWORK_DIAL_ERRORS.has(err.code ?? '')) out.failure ??= 'network'
      if (this.tlsContext && tcpUp && !out.connected && out.failure === undefined) {
        // The TCP connection came up but the TLS handshake did not: a peer without TLS, most often.
        out.failure = 'refused'
        this.stats.dropConnection('tls')
        const plain = err.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || err.code === 'ECONNRESET'
        this.problem(
          out.id,
          plain ? 'TLS_NOT_CONFIGURED' : 'HANDSHAKE',
          `TLS handshake with member ${out.id} at ${address} failed: ${err.code ?? err.message}${plain ? ' (does it have TLS set up?)' : ''}`,
          { peer: out.id, address },
        )
      }
      const said = `${out.id} ${err.code}`
      if (!CONFIG_DIAL_ERRORS.has(err.code ?? '') || this.dialErrorsSaid.has(said)) return
      this.dialErrorsSaid.add(said)
      this.opts.onDialError?.(out.id, address, err)
    })
    socket.on('close', (hadError) => {
      clearTimeout(connectTimer)
      if (out.socket !== socket || this.closed) return
      const wasConnected = out.connected
      out.connected = false
      out.socket = undefined
      out.acked = false
      out.unackedSince = undefined
      if (out.failure === 'refused') {
        // Refused for its certificate or ours: a fault to fix, retried with backoff.
        this.scheduleDial(out)
        return
      }
      if (wasConnected) {
        // Probe at once: a live peer accepts, a dead process's port refuses.
        out.probing = true
        this.dial(out)
        return
      }
      if (out.probing && hadError && out.failure === undefined) {
        out.probing = false
        this.handlers?.onPeerUnreachable(out.id)
      }
      this.scheduleDial(out)
    })
  }

  /** A notice on our outbound connection: the peer refuses it, and says why. */
  private onNotice(out: Outbound, socket: net.Socket, address: string, frame: Buffer): void {
    const reason = decodeNotice(frame)
    if (reason === undefined) return
    this.stats.dropConnection('tls')
    this.problem(
      out.id,
      reason,
      reason === 'TLS_REQUIRED'
        ? `member ${out.id} at ${address} refused our connection: ${explainTlsReason(reason)}`
        : `member ${out.id} at ${address} refused our TLS certificate: ${explainTlsReason(reason)}`,
      { peer: out.id, address },
    )
    out.failure = 'refused'
    out.connected = false
    socket.destroy()
  }

  /**
   * A dial that failed for the network (a timeout, no route) is tried again so that dials start at most
   * once per connect timeout: the wait itself was the backoff, and the network may heal any moment. A
   * refusal (a dead process, a refused certificate) backs off exponentially with jitter.
   */
  private scheduleDial(out: Outbound): void {
    if (this.closed) return
    let delay: number
    if (out.failure === 'network') {
      const elapsed = this.now() - out.dialStartedAt
      delay = Math.max(0, this.connectTimeoutMs - elapsed) + this.initialMs * this.random()
    } else {
      delay = out.backoffMs * (0.5 + this.random())
      out.backoffMs = Math.min(out.backoffMs * 2, this.maxMs)
    }
    out.timer = setTimeout(() => {
      out.timer = undefined
      this.dial(out)
    }, delay)
    out.timer.unref()
  }

  // ---------------------------------------------------------------- inbound

  private accept(raw: net.Socket): void {
    if (this.closed || !this.handlers) {
      raw.destroy()
      return
    }
    const conn: Inbound = {
      raw,
      stream: raw,
      remote: remoteOf(raw),
      decoder: new FrameDecoder(this.preAuthMaxBytes),
      peer: undefined,
      deadline: undefined,
      done: false,
      ackMs: undefined,
      lastAckAt: Number.NEGATIVE_INFINITY,
      ackTimer: undefined,
    }
    this.inbound.add(conn)
    this.unproven.add(conn)
    if (this.unproven.size > this.maxPreAuth) {
      const oldest = this.unproven.values().next().value as Inbound
      this.refuse(oldest, 'preauth-limit')
    }
    this.stats.unauthenticatedConnections = this.unproven.size
    raw.setNoDelay(true)
    raw.setKeepAlive(true, this.keepAliveMs)
    conn.deadline = setTimeout(() => this.refuse(conn, 'handshake-timeout'), this.preAuthTimeoutMs)
    conn.deadline.unref()
    raw.setTimeout(this.preAuthIdleMs, () => this.refuse(conn, 'idle'))
    raw.on('error', () => {})
    raw.on('close', () => this.forget(conn))
    if (this.tlsContext) this.startTls(conn)
    else this.readFrames(conn)
  }

  /**
   * Looks at the first bytes: a TLS client hello goes to the TLS server; anything else is told TLS is
   * required. The TLS server hands the secured socket back by its remote address and port (unique among
   * open connections), and the certificate is checked by hand so that a refusal can be said and logged.
   */
  private startTls(conn: Inbound): void {
    const raw = conn.raw
    raw.once('data', (first: Buffer) => {
      if (conn.done) return
      if (first[0] !== TLS_HANDSHAKE_RECORD) {
        this.problem(
          hostOf(conn.remote),
          'NOT_TLS',
          `refused a connection from ${conn.remote}: ${explainTlsReason('NOT_TLS')}`,
          { address: conn.remote },
        )
        this.refuse(conn, 'tls', 'TLS_REQUIRED')
        return
      }
      raw.pause()
      raw.unshift(first)
      this.handshaking.set(conn.remote, conn)
      this.tlsServer?.emit('connection', raw)
    })
  }

  private onSecure(secure: tls.TLSSocket): void {
    const conn = this.handshaking.get(remoteOf(secure))
    if (!conn || conn.done) {
      secure.destroy()
      return
    }
    this.handshaking.delete(conn.remote)
    conn.stream = secure
    secure.on('error', () => {})
    if (!secure.authorized) {
      const reason = certificateReason(secure)
      this.problem(
        hostOf(conn.remote),
        reason,
        `refused a TLS connection from ${conn.remote}${subjectOf(secure)}: ${explainTlsReason(reason)}`,
        { address: conn.remote },
      )
      this.refuse(conn, 'tls', reason)
      return
    }
    // The raw socket's idle timer sees no reads once TLS owns the socket: the TLS socket's takes over.
    conn.raw.setTimeout(0)
    secure.setTimeout(this.preAuthIdleMs, () => this.refuse(conn, 'idle'))
    this.readFrames(conn)
  }

  private onTlsClientError(err: NodeJS.ErrnoException, secure: tls.TLSSocket): void {
    const conn = this.handshaking.get(remoteOf(secure))
    if (!conn || conn.done) return
    this.handshaking.delete(conn.remote)
    this.problem(
      hostOf(conn.remote),
      'HANDSHAKE',
      `TLS handshake with ${conn.remote} failed: ${err.code ?? err.message}`,
      { address: conn.remote },
    )
    this.refuse(conn, 'tls')
  }

  private readFrames(conn: Inbound): void {
    let first = true
    conn.stream.on('data', (chunk: Buffer) => {
      if (conn.done) return
      if (first && !this.tlsContext && chunk[0] === TLS_HANDSHAKE_RECORD) {
        // A frame this large is refused anyway; a TLS client hello deserves a word to both ends.
        this.problem(
          hostOf(conn.remote),
          'TLS_NOT_CONFIGURED',
          `refused a TLS connection from ${conn.remote}: this node has no TLS set up (--tls-cert, --tls-key, --tls-ca)`,
          { address: conn.remote },
        )
        this.refuse(conn, 'tls', 'TLS_NOT_CONFIGURED')
        return
      }
      first = false
      conn.decoder.append(chunk)
      for (;;) {
        const frame = conn.decoder.next()
        if (frame === undefined) {
          // Every read is acknowledged (a partial frame too: bytes are moving) when the dialler asked.
          this.acknowledge(conn)
          return
        }
        if (frame === 'oversized') {
          this.drop('oversized')
          if (conn.peer === undefined) this.refuse(conn, 'preauth-oversized')
          else this.shut(conn)
          return
        }
        this.onFrame(conn, frame)
        if (conn.done) return
      }
    })
  }

  /**
   * Acknowledges data that arrived on an inbound connection, so that every byte is acknowledged within
   * `ackMs` and a steady stream costs one small write per `ackMs` or so. The write rides on the wake-up
   * that brought the data whenever the last one is at least three quarters of `ackMs` old; only data
   * that arrives sooner arms a timer, which the next arrival usually makes moot. A steady stream (a
   * heartbeat every `ackMs` / 3) so never wakes the process for an acknowledgement: on an idle node the
   * wake-ups are most of the CPU it uses.
   */
  private acknowledge(conn: Inbound): void {
    if (conn.ackMs === undefined || conn.done) return
    const since = this.now() - conn.lastAckAt
    if (since >= (conn.ackMs * 3) / 4) {
      this.writeAck(conn)
      return
    }
    if (conn.ackTimer !== undefined) return
    conn.ackTimer = setTimeout(() => this.writeAck(conn), conn.ackMs - since)
    conn.ackTimer.unref()
  }

  private writeAck(conn: Inbound): void {
    clearTimeout(conn.ackTimer)
    conn.ackTimer = undefined
    if (conn.done) return
    conn.lastAckAt = this.now()
    conn.stream.write(ACK_FRAME)
  }

  private onFrame(conn: Inbound, frame: Buffer): void {
    this.stats.bytesReceived += frame.length + 4
    if (conn.peer === undefined) {
      const notice = decodeNotice(frame)
      if (notice !== undefined) {
        // The dialler refused our certificate and says why before it hangs up.
        this.stats.dropConnection('tls')
        this.problem(
          hostOf(conn.remote),
          notice,
          `${conn.remote} refused our TLS certificate: ${explainTlsReason(notice)}`,
          { address: conn.remote },
        )
        this.shut(conn)
        return
      }
    }
    const decoded = this.opts.codec.decodeFrame(frame)
    if (!decoded.ok) {
      this.drop(decoded.reason, decoded.from)
      if (decoded.reason === 'unknown-peer' || decoded.reason === 'cluster') this.shut(conn)
      return
    }
    if (conn.peer === undefined) this.proven(conn, decoded.from)
    else if (decoded.from !== conn.peer) {
      // One connection, one member: a frame in another member's name is not taken from it.
      this.drop('unknown-peer', decoded.from)
      this.shut(conn)
      return
    }
    this.redialIfWaiting(decoded.from)
    if ('hello' in decoded) {
      // At most every 5 ms, however often the dialler asks: acknowledgements must stay cheap.
      if (decoded.ackMs !== undefined) conn.ackMs = Math.max(5, decoded.ackMs)
      return
    }
    this.stats.messagesReceived++
    this.handlers?.onMessage(decoded.from, decoded.msg)
  }

  /** The connection sent its first valid frame: it is a member's, with the full frame bound and no deadline. */
  private proven(conn: Inbound, peer: string): void {
    clearTimeout(conn.deadline)
    conn.deadline = undefined
    conn.raw.setTimeout(0)
    conn.stream.setTimeout(0)
    this.unproven.delete(conn)
    this.stats.unauthenticatedConnections = this.unproven.size
    conn.peer = peer
    conn.decoder.setMaxFrameBytes(this.opts.codec.maxMessageBytes)
    // A member has one outbound connection to us; an older one is dead (it dialled again after a cut).
    const older = this.inboundOf.get(peer)
    this.inboundOf.set(peer, conn)
    if (older && older !== conn) {
      this.stats.dropConnection('replaced')
      this.shut(older)
    }
  }

  /** Closes an inbound connection for a counted reason; with `notice`, tells the peer why first. */
  private refuse(conn: Inbound, reason: ConnectionDropReason, notice?: string): void {
    if (conn.done) return
    this.stats.dropConnection(reason)
    if (notice === undefined) this.shut(conn)
    else {
      conn.done = true
      this.clearPending(conn)
      refuseWithNotice(conn.stream, notice)
    }
  }

  private shut(conn: Inbound): void {
    conn.done = true
    this.clearPending(conn)
    conn.stream.destroy()
    conn.raw.destroy()
  }

  private clearPending(conn: Inbound): void {
    if (conn.done) {
      clearTimeout(conn.ackTimer)
      conn.ackTimer = undefined
    }
    clearTimeout(conn.deadline)
    conn.deadline = undefined
    conn.raw.setTimeout(0)
    if (conn.stream !== conn.raw) conn.stream.setTimeout(0)
    this.unproven.delete(conn)
    this.stats.unauthenticatedConnections = this.unproven.size
  }

  private forget(conn: Inbound): void {
    if (this.handshaking.get(conn.remote) === conn) this.handshaking.delete(conn.remote)
    conn.done = true
    this.clearPending(conn)
    this.inbound.delete(conn)
    if (conn.peer !== undefined && this.inboundOf.get(conn.peer) === conn) this.inboundOf.delete(conn.peer)
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

  /** Reports a problem the user must fix, at most once a minute per place and reason. */
  private problem(
    place: string,
    reason: string,
    message: string,
    where: { peer?: string; address?: string },
  ): void {
    const key = `${place} ${reason}`
    const now = this.now()
    const last = this.problemsSaid.get(key)
    if (last !== undefined && now - last < REPORT_EVERY_MS) return
    if (this.problemsSaid.size >= 1000) this.problemsSaid.clear()
    this.problemsSaid.set(key, now)
    this.opts.onError?.(new TlsError(reason, message, where))
  }
}

/** Why a TLS peer's certificate was not accepted: NO_CERTIFICATE, or OpenSSL's verification code. */
function certificateReason(socket: tls.TLSSocket): string {
  const cert = socket.getPeerCertificate()
  if (!cert || Object.keys(cert).length === 0) return 'NO_CERTIFICATE'
  const code = socket.authorizationError as unknown
  return typeof code === 'string' ? code : code instanceof Error ? code.message : 'HANDSHAKE'
}

/** " (certificate CN=n3)", or nothing when the peer sent none. */
function subjectOf(socket: tls.TLSSocket): string {
  const cn = socket.getPeerCertificate()?.subject?.CN
  return typeof cn === 'string' && cn.length > 0 ? ` (certificate CN=${cn.slice(0, 64)})` : ''
}

/** A socket's remote "host:port", as accept() records it. */
function remoteOf(socket: net.Socket): string {
  return formatHostPort({ host: socket.remoteAddress ?? '?', port: socket.remotePort ?? 0 })
}

/** The host of "host:port": repeated problems are grouped by host (ports of dialled sockets vary). */
function hostOf(remote: string): string {
  return remote.slice(0, remote.lastIndexOf(':'))
}

/** Writes a notice saying why, ends the connection, and destroys it if the peer does not close soon. */
function refuseWithNotice(socket: net.Socket, reason: string): void {
  const force = setTimeout(() => socket.destroy(), NOTICE_LINGER_MS)
  force.unref()
  socket.once('close', () => clearTimeout(force))
  socket.end(encodeFrame(encodeNotice(reason)))
}
