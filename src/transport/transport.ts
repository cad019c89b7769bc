/**
 * What a runtime needs from a network: send a message to a peer (or all peers), and hear messages and
 * connection changes. Transports decode and check every message (see ../codec) before handing it up.
 */
import type { DropReason } from '../codec/envelope.js'

/**
 * Why a cluster connection was closed by this node (counted in `connectionsDropped`):
 * - `handshake-timeout`: an inbound connection sent no valid frame (and finished no TLS handshake)
 *   within the deadline;
 * - `idle`: an inbound connection that has not yet sent a valid frame went quiet;
 * - `preauth-oversized`: it announced a frame larger than a connection may send before its first valid one;
 * - `preauth-limit`: too many inbound connections were waiting for their first valid frame; the oldest went;
 * - `tls`: a TLS handshake failed or a certificate was refused (either side);
 * - `replaced`: a member dialled again, so its older inbound connection was closed;
 * - `silent`: an outbound connection on which this node sent and heard nothing back for too long was
 *   redialled (a link that stopped moving data).
 */
export type ConnectionDropReason =
  | 'handshake-timeout'
  | 'idle'
  | 'preauth-oversized'
  | 'preauth-limit'
  | 'tls'
  | 'replaced'
  | 'silent'

/** Every ConnectionDropReason. */
export const CONNECTION_DROP_REASONS: readonly ConnectionDropReason[] = [
  'handshake-timeout',
  'idle',
  'preauth-oversized',
  'preauth-limit',
  'tls',
  'replaced',
  'silent',
]

export interface TransportHandlers<M> {
  onMessage(from: string, msg: M): void
  /** A connection to the peer came up (stream transports). */
  onPeerConnected(peer: string): void
  /** The peer's connection closed and an immediate reconnect was refused: its process is gone. */
  onPeerUnreachable(peer: string): void
}

export interface Transport<M> {
  start(handlers: TransportHandlers<M>): Promise<void>
  /** Sends one message; `to` is a peer id or BROADCAST. Never throws; undeliverable messages are counted. */
  send(to: string, msg: M): void
  close(): Promise<void>
  /**
   * Peers with a connection open now (stream transports), or heard from (datagram transports): what a
   * rebuilt protocol machine is told about, as a restarted process would see them connect.
   */
  connectedPeers?(): string[]
  /** The address this node listens on (host:port), once started. */
  readonly address: string
  readonly stats: TransportStats
}

/**
 * What a transport counted, as an election shows it (`transportStats`): a frozen copy, so a reader
 * cannot change the live counters.
 */
export interface TransportStatsSnapshot {
  /** Messages sent. */
  readonly messagesSent: number
  /** Bytes sent. */
  readonly bytesSent: number
  /** Messages received and accepted. */
  readonly messagesReceived: number
  /** Bytes received. */
  readonly bytesReceived: number
  /** Messages that could not be sent (peer not connected, send buffer full). */
  readonly sendFailures: number
  /** Messages dropped on receipt, by reason (forged, replayed, too large, another cluster's, ...). */
  readonly dropped: ReadonlyMap<DropReason, number>
  /** Peers that tried to speak to us but are not members, by claimed id (bounded). */
  readonly refusedPeers: ReadonlyMap<string, number>
  /** Connections this node closed, by reason (see ConnectionDropReason). */
  readonly connectionsDropped: ReadonlyMap<ConnectionDropReason, number>
  /** Inbound connections open now that have not yet sent a valid frame. */
  readonly unauthenticatedConnections: number
  /** All messages dropped on receipt, whatever the reason. */
  droppedTotal(): number
}

/** Counters every transport keeps; the metrics endpoint reads them. */
export class TransportStats implements TransportStatsSnapshot {
  messagesSent = 0
  bytesSent = 0
  messagesReceived = 0
  bytesReceived = 0
  /** Messages that could not be sent (peer not connected, send buffer full). */
  sendFailures = 0
  readonly dropped = new Map<DropReason, number>()
  /** Peers that tried to speak to us but are not members, by claimed id (bounded). */
  readonly refusedPeers = new Map<string, number>()
  /** Connections closed by this node, by reason. */
  readonly connectionsDropped = new Map<ConnectionDropReason, number>()
  /** Inbound connections open now that have not yet sent a valid frame. */
  unauthenticatedConnections = 0

  /** Counts a connection this node closed. */
  dropConnection(reason: ConnectionDropReason): void {
    this.connectionsDropped.set(reason, (this.connectionsDropped.get(reason) ?? 0) + 1)
  }

  drop(reason: DropReason, from?: string): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1)
    if (
      reason === 'unknown-peer' &&
      from !== undefined &&
      (this.refusedPeers.size < 100 || this.refusedPeers.has(from))
    ) {
      this.refusedPeers.set(from, (this.refusedPeers.get(from) ?? 0) + 1)
    }
  }

  droppedTotal(): number {
    let n = 0
    for (const v of this.dropped.values()) n += v
    return n
  }

  /** A frozen copy of the counters now. */
  snapshot(): TransportStatsSnapshot {
    const dropped = new Map(this.dropped)
    const total = this.droppedTotal()
    return Object.freeze({
      messagesSent: this.messagesSent,
      bytesSent: this.bytesSent,
      messagesReceived: this.messagesReceived,
      bytesReceived: this.bytesReceived,
      sendFailures: this.sendFailures,
      dropped,
      refusedPeers: new Map(this.refusedPeers),
      connectionsDropped: new Map(this.connectionsDropped),
      unauthenticatedConnections: this.unauthenticatedConnections,
      droppedTotal: () => total,
    })
  }
}
