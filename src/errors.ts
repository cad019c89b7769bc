/**
 * A small error hierarchy with stable `code` strings, so callers can branch on `err.code` rather than
 * on messages or classes from a particular copy of the package.
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
  | 'PROTOCOL'

export class BallotError extends Error {
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
  readonly field: string
  constructor(field: string, message: string, options?: ErrorOptions) {
    super('INVALID_OPTIONS', `${field}: ${message}`, options)
    this.field = field
  }
}

/** A peer spoke to us that we refuse (not in the member list, wrong cluster, failed authentication). */
export class PeerRefusedError extends BallotError {
  readonly reason: string
  constructor(reason: string, message: string, options?: ErrorOptions) {
    super('PEER_REFUSED', message, options)
    this.reason = reason
  }
}

export class CallbackError extends BallotError {
  constructor(message: string, options?: ErrorOptions) {
    super('CALLBACK_FAILED', message, options)
  }
}

export class TransportError extends BallotError {
  constructor(message: string, options?: ErrorOptions) {
    super('TRANSPORT', message, options)
  }
}

export class PersistenceError extends BallotError {
  constructor(message: string, options?: ErrorOptions) {
    super('PERSISTENCE', message, options)
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
