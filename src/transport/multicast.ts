/**
 * UDP multicast transport: every node on a LAN joins one group and every message is one datagram to it.
 *
 * Built to avoid what went wrong in MultiBully: a datagram is decoded on its own (never appended to a
 * stream buffer, so a short or malformed one cannot misalign the next), every bad datagram is dropped and
 * counted instead of thrown, loopback interfaces are allowed, the default group is an administratively
 * scoped address (239.255/16) rather than the reserved 224.0.0.0, and close() simply closes the sockets.
 *
 * Two sockets: one bound to the group port (shared with other nodes on the host through SO_REUSEADDR)
 * receives; one bound to an ephemeral port on the interface sends. The sender's own datagrams come back
 * through multicast loopback, and are told apart by that ephemeral source address, not by the claimed id.
 */
import dgram from 'node:dgram'
import { isIPv4 } from 'node:net'
import { networkInterfaces } from 'node:os'
import type { Codec } from '../codec/envelope.js'
import { InvalidOptionsError, TransportError } from '../errors.js'
import type { HostPort } from './address.js'
import { type Transport, type TransportHandlers, TransportStats } from './transport.js'

/** An administratively scoped (site-local) group: not the reserved 224.0.0.0 that MultiBully used. */
export const DEFAULT_MULTICAST_GROUP = '239.255.41.17:9999'

export interface MulticastTransportOptions<M> {
  /** This node's id: the envelope's sender. */
  self: string
  /** Group address and port every node joins. */
  group: HostPort
  /** IPv4 address of the interface to join and send on (127.0.0.1, 10.200.0.2, ...). */
  interfaceAddress: string
  codec: Codec<M>
  /** Multicast TTL: 1 keeps datagrams on the local link. Default 1. */
  ttl?: number
  /** Called when a datagram is dropped, with the reason and the id it claimed (if any). */
  onDrop?: (reason: string, from?: string) => void
}

export class MulticastTransport<M> implements Transport<M> {
  readonly stats = new TransportStats()
  private readonly opts: MulticastTransportOptions<M>
  /** Made by start(), so a start that failed (an address in use) can be tried again on fresh sockets. */
  private receiver: dgram.Socket | undefined
  private sender: dgram.Socket | undefined
  private handlers: TransportHandlers<M> | undefined
  private readonly heard = new Set<string>()
  private senderPort = -1
  private closed = false

  constructor(opts: MulticastTransportOptions<M>) {
    if (!isIPv4(opts.group.host) || !isMulticast(opts.group.host))
      throw new InvalidOptionsError('multicast', `"${opts.group.host}" is not an IPv4 multicast address`)
    if (!isIPv4(opts.interfaceAddress))
      throw new InvalidOptionsError('iface', `"${opts.interfaceAddress}" is not an IPv4 address`)
    this.opts = opts
  }

  /** The unicast address of the interface this node speaks on: what it announces to others. */
  get address(): string {
    return this.opts.interfaceAddress
  }

  connectedPeers(): string[] {
    return [...this.heard]
  }

  /**
   * Binds both sockets and joins the group. A failure rejects with a TransportError naming the group,
   * closes whatever was opened, and leaves the transport ready to be started again.
   */
  async start(handlers: TransportHandlers<M>): Promise<void> {
    const { group, interfaceAddress } = this.opts
    const groupAddress = `${group.host}:${group.port}`
    if (this.closed)
      throw new TransportError(`transport for ${groupAddress} is closed`, { address: groupAddress })
    const receiver = dgram.createSocket({ type: 'udp4', reuseAddr: true })
    const sender = dgram.createSocket({ type: 'udp4' })
    try {
      await bind(sender, 0, interfaceAddress)
      sender.setMulticastInterface(interfaceAddress)
      sender.setMulticastTTL(this.opts.ttl ?? 1)
      sender.setMulticastLoopback(true) // other nodes on this host must hear us
      // Bound to the group address (not 0.0.0.0), the socket receives only this group's traffic.
      await bind(receiver, group.port, group.host)
      receiver.addMembership(group.host, interfaceAddress)
    } catch (err) {
      await Promise.all([closeSocket(receiver), closeSocket(sender)])
      throw new TransportError(
        `cannot join multicast group ${groupAddress} on ${interfaceAddress}: ${(err as Error).message}`,
        { cause: err, address: groupAddress },
      )
    }
    // Errors after start (an interface going away) must not crash the node; sends are counted instead.
    receiver.on('error', () => {})
    sender.on('error', () => {})
    receiver.on('message', (bytes, rinfo) => this.deliver(bytes, rinfo))
    this.handlers = handlers
    this.receiver = receiver
    this.sender = sender
    this.senderPort = sender.address().port
  }

  send(to: string, msg: M): void {
    const sender = this.sender
    if (this.closed || !sender) {
      this.stats.sendFailures++
      return
    }
    // One datagram to the group whoever it is for; the envelope's `to` lets others ignore it.
    const bytes = this.opts.codec.encode(to, msg)
    sender.send(bytes, this.opts.group.port, this.opts.group.host, (err) => {
      if (err) this.stats.sendFailures++
    })
    this.stats.messagesSent++
    this.stats.bytesSent += bytes.length
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.all([this.receiver, this.sender].map((socket) => socket && closeSocket(socket)))
  }

  private deliver(bytes: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed) return
    if (rinfo.port === this.senderPort && rinfo.address === this.opts.interfaceAddress) return // our own
    this.stats.bytesReceived += bytes.length
    const decoded = this.opts.codec.decode(bytes)
    if (!decoded.ok) {
      // Every node sees every datagram: one addressed to another node is normal traffic, not a fault.
      if (decoded.reason === 'misdirected') return
      this.stats.drop(decoded.reason, decoded.from)
      this.opts.onDrop?.(decoded.reason, decoded.from)
      return
    }
    this.stats.messagesReceived++
    // The message first, then the news of a new sender: the protocol judges the message (and learns
    // the sender only if it accepts it) before it decides whether to greet.
    this.handlers?.onMessage(decoded.from, decoded.msg)
    if (!this.heard.has(decoded.from) && this.heard.size < 10_000) {
      this.heard.add(decoded.from)
      this.handlers?.onPeerConnected(decoded.from)
    }
  }
}

/**
 * The IPv4 address of an interface given by name ("eth0", "lo") or by address. Throws
 * InvalidOptionsError naming `field` when there is no such interface or it has no IPv4 address.
 */
export function resolveInterfaceAddress(ifaceOrIp: string, field = 'iface'): string {
  const interfaces = networkInterfaces()
  if (isIPv4(ifaceOrIp)) {
    const owned = Object.values(interfaces).some((list) => list?.some((a) => a.address === ifaceOrIp))
    if (!owned) throw new InvalidOptionsError(field, `no interface on this host has address ${ifaceOrIp}`)
    return ifaceOrIp
  }
  const list = interfaces[ifaceOrIp]
  if (!list) {
    const names = Object.keys(interfaces).join(', ')
    throw new InvalidOptionsError(field, `no interface named "${ifaceOrIp}" (this host has: ${names})`)
  }
  const v4 = list.find((a) => a.family === 'IPv4')
  if (!v4) throw new InvalidOptionsError(field, `interface "${ifaceOrIp}" has no IPv4 address`)
  return v4.address
}

function isMulticast(ip: string): boolean {
  const first = Number(ip.split('.')[0])
  return first >= 224 && first <= 239
}

function bind(socket: dgram.Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(port, address, () => {
      socket.off('error', reject)
      resolve()
    })
  })
}

function closeSocket(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve())
    } catch {
      resolve() // never bound, or already closed
    }
  })
}
