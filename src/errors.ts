/**
 * A small error hierarchy with stable `code` strings, so callers can branch on `err.code` rather than
 * on messages or classes from a particular copy of the package.
 * @module
 */

/**
 * The stable code every ballot error carries: branch on `err.code`, not on the message. NOT_LEADER:
 * needs leadership this node does not hold. LEADERSHIP_LOST: leadership ended under running work.
 * CLOSED: the election is stopped. INVALID_OPTIONS: an option or flag that cannot work (`field` names
 * it). PEER_REFUSED: a message refused from a peer. CALLBACK_FAILED: a callback or whileLeader work
 * threw. TRANSPORT: the network failed (`address`). PERSISTENCE: durable state could not be read or
 * saved. TLS: a TLS connection between members was refused (`reason`, `address`). STORE_UNAVAILABLE, STORE_REFUSED, SESSION_LOST, TOKEN_NOT_NEWER: a coordination store's
 * troubles (see the lease driver). PROTOCOL: the protocol cannot keep a promise as configured.
 */
export type ErrorCode =
  | 'NOT_LEADER'
  | 'LEADERSHIP_LOST'
  | 'CLOSED'
  | 'INVALID_OPTIONS'
  | 'PEER_REFUSED'
  | 'CALLBACK_FAILED'
  | 'TRANSPORT'
  | 'PERSISTENCE'
  | 'STORE_UNAVAILABLE'
  | 'STORE_REFUSED'
  | 'SESSION_LOST'
  | 'PROTOCOL'
  | 'TOKEN_NOT_NEWER'
  | 'TLS'

/** The base class of every error ballot throws or reports; `code` says which. */
export class BallotError extends Error {
  /** The stable code: branch on this. */
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** An operation needs leadership and this node does not hold it. */
export class NotLeaderError extends BallotError {
  constructor(message = 'this node is not the leader', options?: ErrorOptions) {
    super('NOT_LEADER', message, options)
  }
}

/** Leadership was lost while work that needed it was running. */
export class LeadershipLostError extends BallotError {
  constructor(message = 'leadership was lost', options?: ErrorOptions) {
    super('LEADERSHIP_LOST', message, options)
  }
}

/** The election was stopped. */
export class ClosedError extends BallotError {
  constructor(message = 'the election is stopped', options?: ErrorOptions) {
    super('CLOSED', message, options)
  }
}

/** Options or flags that cannot work; the message names the field. */
export class InvalidOptionsError extends BallotError {
  /** The option, flag, environment variable or file field at fault ("members[2].kind", "--port"). */
  readonly field: string
  constructor(field: string, message: string, options?: ErrorOptions) {
    super('INVALID_OPTIONS', `${field}: ${message}`, options)
    this.field = field
  }
}

/** A peer spoke to us that we refuse (not in the member list, wrong cluster, failed authentication). */
export class PeerRefusedError extends BallotError {
  /** Why, as a stable word (the drop reason counted in the metrics). */
  readonly reason: string
  constructor(reason: string, message: string, options?: ErrorOptions) {
    super('PEER_REFUSED', message, options)
    this.reason = reason
  }
}

/** A state callback or whileLeader work threw or rejected. */
export class CallbackError extends BallotError {
  constructor(message: string, options?: ErrorOptions) {
    super('CALLBACK_FAILED', message, options)
  }
}

/** The network failed us: a port that cannot be listened on, a socket that cannot be opened. */
export class TransportError extends BallotError {
  /** The address concerned (host:port, or a multicast group), when there is one. */
  readonly address: string | undefined
  constructor(message: string, options?: ErrorOptions & { address?: string }) {
    super('TRANSPORT', message, options)
    this.address = options?.address
  }
}

/**
 * A TLS connection between members failed or was refused, on either side: a certificate from another
 * CA, an expired one, none at all, or a peer that does not speak TLS. The election keeps retrying; each
 * distinct cause is reported on the 'error' stream (at most once a minute per address and reason).
 */
export class TlsError extends BallotError {
  /**
   * Why, as a stable word: an OpenSSL verification code (`CERT_HAS_EXPIRED`,
   * `UNABLE_TO_VERIFY_LEAF_SIGNATURE`, `SELF_SIGNED_CERT_IN_CHAIN`, ...), `NO_CERTIFICATE` (the peer
   * sent none), `NOT_TLS` (the peer spoke plain TCP to a TLS port), `TLS_REQUIRED` (a TLS port refused our
   * plain connection), `HANDSHAKE` (the handshake broke off), or `OWN_CERT_EXPIRED` / `OWN_CERT_NOT_YET_VALID`.
   */
  readonly reason: string
  /** The peer's address (host:port), when known. */
  readonly address: string | undefined
  /** The member's id, when this node dialled it (an inbound connection has none before it is accepted). */
  readonly peer: string | undefined
  constructor(
    reason: string,
    message: string,
    options?: ErrorOptions & { address?: string | undefined; peer?: string | undefined },
  ) {
    super('TLS', message, options)
    this.reason = reason
    this.address = options?.address
    this.peer = options?.peer
  }
}

/** Durable state could not be read or saved. */
export class PersistenceError extends BallotError {
  constructor(message: string, options?: ErrorOptions) {
    super('PERSISTENCE', message, options)
  }
}

/**
 * A coordination store (etcd, ZooKeeper, Consul, ...) failed a request. `STORE_UNAVAILABLE`: it could
 * not be reached or did not answer in time (worth retrying). `STORE_REFUSED`: it answered no (bad
 * configuration, foreign data where the election lives, a conflicting lock); retrying will not help
 * until someone fixes that. `store` names the store ('zookeeper', 'consul', ...).
 */
export class StoreError extends BallotError {
  /** The store's name: 'etcd', 'zookeeper', 'consul'. */
  readonly store: string
  constructor(
    code: 'STORE_UNAVAILABLE' | 'STORE_REFUSED',
    store: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(code, message.startsWith(store) ? message : `${store}: ${message}`, options)
    this.store = store
  }
}

/** The store cannot be reached, or did not answer in time: the driver retries with backoff. */
export class StoreUnavailableError extends StoreError {
  constructor(store: string, message: string, options?: ErrorOptions) {
    super('STORE_UNAVAILABLE', store, message, options)
  }
}

/**
 * The protocol cannot keep one of its promises as configured or as things stand (a node's terms are
 * exhausted; two bully nodes share an epoch slot). Reported once per condition on the 'error' stream;
 * the election keeps running.
 */
export class ProtocolError extends BallotError {
  constructor(message: string, options?: ErrorOptions) {
    super('PROTOCOL', message, options)
  }
}

/**
 * The store answered but refused (bad credentials, no permission, an election prefix holding data that
 * is not an election entry). Retrying may help once an operator fixes the cause.
 */
export class StoreRefusedError extends StoreError {
  constructor(store: string, message: string, options?: ErrorOptions) {
    super('STORE_REFUSED', store, message, options)
  }
}

/** The store's session is gone for good (expired, revoked, destroyed): a new one is needed. */
export class SessionLostError extends BallotError {
  /** The store's name: 'etcd', 'zookeeper', 'consul'. */
  readonly store: string
  constructor(store: string, message = 'the session is gone', options?: ErrorOptions) {
    super('SESSION_LOST', message.startsWith(store) ? message : `${store}: ${message}`, options)
    this.store = store
  }
}

/**
 * The store showed a leadership whose fencing token is not above one already reported: the driver
 * refuses to report (or act on) it, since tokens must only grow.
 */
export class TokenNotNewerError extends BallotError {
  constructor(message: string, options?: ErrorOptions) {
    super('TOKEN_NOT_NEWER', message, options)
  }
}
