/**
 * The versioned, size-bounded, optionally authenticated envelope around every cluster message.
 *
 * Layout of one encoded message (the payload of a frame or one datagram):
 *   byte 0      format version (1)
 *   byte 1      flags: bit 0 set when a MAC follows
 *   bytes 2–33  HMAC-SHA256 over the version, the flags and the body (only with a shared key)
 *   rest        the body: JSON {c: cluster, f: from, t: to, n: incarnation, s: seq, w: wall ms, m: message}
 *               or, for the hello a stream transport sends first on each connection, {..., h: 1} and no m
 *
 * Several keys may be accepted at once (key rotation): the first signs, any of them verifies.
 *
 * Decoding never throws: every way a message can be wrong maps to a DropReason, which transports count.
 */
import { createHmac, randomInt, timingSafeEqual } from 'node:crypto'
import { z } from 'zod'
import { InvalidOptionsError } from '../errors.js'
import { ReplayGuard } from './replay.js'

export const FORMAT_VERSION = 1
const FLAG_MAC = 1
const MAC_BYTES = 32
const HEADER_BYTES = 2

/** Default bound on one encoded message: far above any election message, far below harm. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
/**
 * Default bound on how far an authenticated message's wall-clock stamp may be from the receiver's clock,
 * in the past or the future, before it is refused as stale (wall clocks must agree within this).
 */
export const DEFAULT_MAX_MESSAGE_AGE_MS = 60_000

/** Why a received message was dropped (counted by reason in `transportStats` and the metrics). */
export type DropReason =
  | 'oversized'
  | 'malformed'
  | 'version'
  | 'cluster'
  | 'auth'
  | 'replay'
  | 'stale'
  | 'schema'
  | 'unknown-peer'
  | 'misdirected'
  /** Passed the codec, refused by the protocol: a term far above any this node knows. */
  | 'term-jump'
  /** Passed the codec, refused by the protocol: the sender counts another set of voters. */
  | 'member-list'

export const DROP_REASONS: readonly DropReason[] = [
  'oversized',
  'malformed',
  'version',
  'cluster',
  'auth',
  'replay',
  'stale',
  'schema',
  'unknown-peer',
  'misdirected',
  'term-jump',
  'member-list',
]

const idSchema = z.string().min(1).max(128)
const envelopeSchema = z.object({
  c: z.string().max(128),
  f: idSchema,
  t: z.string().max(128),
  n: z.number().int().nonnegative(),
  s: z.number().int().positive(),
  w: z.number().finite(),
  m: z.unknown().optional(),
  h: z.literal(1).optional(),
  /** In a hello: acknowledge what arrives on this connection at least this often (ms). */
  a: z.number().int().min(1).max(600_000).optional(),
})

/**
 * Shared keys as the codec takes them: one, or a list in which the first signs and every one verifies
 * (key rotation: every node first accepts the new key, then signs with it, then drops the old one).
 */
export type CodecKey = string | Buffer | ReadonlyArray<string | Buffer>

function keyList(key: CodecKey | undefined): Buffer[] {
  if (key === undefined) return []
  const list = typeof key === 'string' || Buffer.isBuffer(key) ? [key] : key
  return list.map((k) => Buffer.from(k))
}

export interface CodecOptions<M> {
  /** Cluster name: messages naming another cluster are dropped. */
  cluster: string
  /** This node's id. */
  self: string
  /** Schema of the protocol's messages. */
  schema: z.ZodType<M>
  /**
   * Shared secret, or several (the first signs, any verifies); when set, every message carries an HMAC
   * and unauthenticated ones are dropped. An empty list means no key.
   */
  key?: CodecKey
  /** Ids allowed to send to us; undefined accepts any id (bully over multicast learns peers). */
  isKnownPeer?: (id: string) => boolean
  maxMessageBytes?: number
  maxMessageAgeMs?: number
  /** Wall clock in milliseconds (Date.now by default). */
  wallClock?: () => number
  /**
   * This process's incarnation: must be larger than that of any earlier start of the same node, or
   * peers drop its messages as replays. Default: {@link timeBasedIncarnation} of the wall clock, which
   * holds only while the wall clock never steps back between two starts; drivers with a data directory
   * pass a persisted boot counter instead (see runtime/incarnation.ts).
   */
  incarnation?: number
}

/** An incarnation from the boot time: milliseconds times 1000 plus a random tail (two starts in one ms). */
export function timeBasedIncarnation(wallMs: number): number {
  return Math.floor(wallMs) * 1000 + randomInt(1000)
}

export type Decoded<M> =
  | { ok: true; from: string; to: string; msg: M }
  | { ok: false; reason: DropReason; from?: string }

/** What a stream transport decodes: a message, or the hello that opens a connection. */
export type DecodedFrame<M> =
  | Decoded<M>
  | {
      ok: true
      from: string
      to: string
      hello: true
      /** The sender asks for link acknowledgements at least this often (ms); undefined: none. */
      ackMs?: number
    }

export class Codec<M> {
  readonly maxMessageBytes: number
  private readonly cluster: string
  private readonly self: string
  private readonly schema: z.ZodType<M>
  /** Verifying keys; the first signs. Empty: no authentication. */
  private keys: Buffer[]
  private readonly isKnownPeer: (id: string) => boolean
  private readonly wallClock: () => number
  private readonly replay: ReplayGuard
  /** Grows with each start of the process, so receivers can refuse an older incarnation's messages. */
  private readonly incarnation: number
  private seq = 0

  constructor(opts: CodecOptions<M>) {
    this.cluster = opts.cluster
    this.self = opts.self
    this.schema = opts.schema
    this.keys = keyList(opts.key)
    this.isKnownPeer = opts.isKnownPeer ?? (() => true)
    this.maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES
    this.wallClock = opts.wallClock ?? Date.now
    this.replay = new ReplayGuard(opts.maxMessageAgeMs ?? DEFAULT_MAX_MESSAGE_AGE_MS)
    this.incarnation = opts.incarnation ?? timeBasedIncarnation(this.wallClock())
  }

  get authenticated(): boolean {
    return this.keys.length > 0
  }

  /**
   * Replaces the keys at run time (key rotation without a restart): the first signs from now on, any
   * verifies. Going from no key to a key, or back, is refused (INVALID_OPTIONS): peers would drop
   * every message in between.
   */
  setKeys(key: CodecKey): void {
    const keys = keyList(key)
    if (keys.length > 0 !== this.authenticated)
      throw new InvalidOptionsError(
        'key',
        this.authenticated
          ? 'cannot remove the key of a running node (peers would drop its messages)'
          : 'cannot add a key to a node started without one (peers would drop its messages)',
      )
    this.keys = keys
  }

  encode(to: string, msg: M): Buffer {
    return this.seal({ t: to, m: msg })
  }

  /**
   * The hello a stream transport sends first on every connection it opens: an authenticated frame that
   * names this node, so the receiver can accept the connection before any protocol message is due.
   */
  encodeHello(to: string, ackMs?: number): Buffer {
    return this.seal({ t: to, h: 1, a: ackMs })
  }

  private seal(fields: { t: string; m?: M; h?: 1; a?: number | undefined }): Buffer {
    this.seq++
    const body = Buffer.from(
      JSON.stringify({
        c: this.cluster,
        f: this.self,
        t: fields.t,
        n: this.incarnation,
        s: this.seq,
        w: this.wallClock(),
        ...(fields.h ? { h: 1, ...(fields.a === undefined ? {} : { a: fields.a }) } : { m: fields.m }),
      }),
    )
    const signer = this.keys[0]
    const header = Buffer.from([FORMAT_VERSION, signer ? FLAG_MAC : 0])
    if (!signer) return Buffer.concat([header, body])
    const mac = createHmac('sha256', signer).update(header).update(body).digest()
    return Buffer.concat([header, mac, body])
  }

  private verifies(mac: Buffer, signed: Buffer, body: Buffer): boolean {
    for (const key of this.keys) {
      const expected = createHmac('sha256', key).update(signed).update(body).digest()
      if (timingSafeEqual(mac, expected)) return true
    }
    return false
  }

  /** Decodes a message; a hello (see decodeFrame) is refused here as 'schema'. */
  decode(bytes: Buffer): Decoded<M> {
    const decoded = this.decodeFrame(bytes)
    if (decoded.ok && 'hello' in decoded) return { ok: false, reason: 'schema', from: decoded.from }
    return decoded
  }

  /** Decodes a message or a hello (stream transports). Never throws. */
  decodeFrame(bytes: Buffer): DecodedFrame<M> {
    if (bytes.length > this.maxMessageBytes) return { ok: false, reason: 'oversized' }
    if (bytes.length < HEADER_BYTES) return { ok: false, reason: 'malformed' }
    if (bytes[0] !== FORMAT_VERSION) return { ok: false, reason: 'version' }
    const hasMac = ((bytes[1] ?? 0) & FLAG_MAC) !== 0
    let body: Buffer
    if (this.authenticated) {
      if (!hasMac || bytes.length < HEADER_BYTES + MAC_BYTES) return { ok: false, reason: 'auth' }
      const mac = bytes.subarray(HEADER_BYTES, HEADER_BYTES + MAC_BYTES)
      body = bytes.subarray(HEADER_BYTES + MAC_BYTES)
      if (!this.verifies(mac, bytes.subarray(0, HEADER_BYTES), body)) return { ok: false, reason: 'auth' }
    } else {
      body = hasMac ? bytes.subarray(HEADER_BYTES + MAC_BYTES) : bytes.subarray(HEADER_BYTES)
    }
    let raw: unknown
    try {
      raw = JSON.parse(body.toString('utf8'))
    } catch {
      return { ok: false, reason: 'malformed' }
    }
    const env = envelopeSchema.safeParse(raw)
    if (!env.success) return { ok: false, reason: 'malformed' }
    // A message carries `m`; a hello carries `h` and no `m`.
    if ((env.data.h === 1) === Object.hasOwn(raw as object, 'm')) return { ok: false, reason: 'malformed' }
    const { c, f, t, n, s, w, m, h, a } = env.data
    if (c !== this.cluster) return { ok: false, reason: 'cluster', from: f }
    if (t !== this.self && t !== '*') return { ok: false, reason: 'misdirected', from: f }
    if (!this.isKnownPeer(f) || f === this.self) return { ok: false, reason: 'unknown-peer', from: f }
    const msg = h === 1 ? undefined : this.schema.safeParse(m)
    if (msg && !msg.success) return { ok: false, reason: 'schema', from: f }
    // Replay checks only mean something when a forger cannot simply mint fresh sequence numbers.
    if (this.authenticated) {
      const verdict = this.replay.check(f, n, s, w, this.wallClock())
      if (verdict !== 'ok') return { ok: false, reason: verdict, from: f }
    }
    if (!msg)
      return a === undefined
        ? { ok: true, from: f, to: t, hello: true }
        : { ok: true, from: f, to: t, hello: true, ackMs: a }
    return { ok: true, from: f, to: t, msg: msg.data as M }
  }
}
