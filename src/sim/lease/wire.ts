/**
 * What lease candidates and the simulated store say to each other: one message per store request, one
 * per reply, and the store's watch notifications. Every reply carries the store's revision when it was
 * applied (as every etcd response's header does), so a candidate that missed a notification learns that
 * its line is stale from its next reply.
 */

/** One entry of the store's line: a candidate's key, created under its session at revision `rev`. */
export interface WireEntry {
  id: string
  key: string
  /** Create revision: the entry's place in the line (lowest leads) and its fencing token. */
  rev: number
}

export type StoreRequest =
  | { t: 'open'; seq: number; ttlMs: number }
  | { t: 'keepAlive'; seq: number; session: number }
  /** Create `key` under the session if absent (compare-and-set on "does not exist"); idempotent. */
  | { t: 'join'; seq: number; session: number; id: string; key: string }
  /**
   * Delete `key`: only while it holds the entry created at revision `rev` (a compare-and-set delete),
   * or whatever it holds when `rev` is absent (the unguarded variant).
   */
  | { t: 'leave'; seq: number; key: string; rev?: number }
  | { t: 'close'; seq: number; session: number }
  /** Register a watch on the line (for this connection) and read it. */
  | { t: 'watch'; seq: number }

export type StoreReply =
  | { t: 'opened'; seq: number; rev: number; session: number; ttlMs: number }
  | { t: 'done'; seq: number; rev: number }
  /** A join's answer: the entry, and the line read in the same transaction. */
  | { t: 'joined'; seq: number; rev: number; entry: WireEntry; entries: WireEntry[] }
  | { t: 'sessionLost'; seq: number; rev: number }
  /** A watch's answer (with `seq`) or a notification (without): the whole line at `rev`. */
  | { t: 'line'; seq?: number; rev: number; entries: WireEntry[] }

export type LeaseWire = StoreRequest | StoreReply

const REQUESTS = new Set(['open', 'keepAlive', 'join', 'leave', 'close', 'watch'])

export function isRequest(msg: LeaseWire): msg is StoreRequest {
  return REQUESTS.has(msg.t)
}

function entries(list: WireEntry[]): string {
  return `[${list.map((e) => `${e.id}@${e.rev}`).join(' ')}]`
}

/** One message in a trace line. */
export function describeWire(msg: LeaseWire): string {
  switch (msg.t) {
    case 'open':
      return `#${msg.seq} open ttl=${msg.ttlMs}`
    case 'keepAlive':
      return `#${msg.seq} keepAlive s${msg.session}`
    case 'join':
      return `#${msg.seq} join ${msg.key} s${msg.session}`
    case 'leave':
      return `#${msg.seq} leave ${msg.key}${msg.rev === undefined ? '' : `@${msg.rev}`}`
    case 'close':
      return `#${msg.seq} close s${msg.session}`
    case 'watch':
      return `#${msg.seq} watch`
    case 'opened':
      return `#${msg.seq} opened s${msg.session} ttl=${msg.ttlMs} r${msg.rev}`
    case 'done':
      return `#${msg.seq} done r${msg.rev}`
    case 'joined':
      return `#${msg.seq} joined ${msg.entry.key}@${msg.entry.rev} r${msg.rev} ${entries(msg.entries)}`
    case 'sessionLost':
      return `#${msg.seq} session lost r${msg.rev}`
    case 'line':
      return `${msg.seq === undefined ? 'notify' : `#${msg.seq} line`} r${msg.rev} ${entries(msg.entries)}`
  }
}
