/**
 * Hostile inputs for the cluster port, drawn from one seeded generator: random bytes, valid lengths
 * around random payloads, envelopes with every field mutated (huge, negative, fractional, infinite and
 * unparsable numbers, wrong types, prototype keys), messages with hostile values, wrong versions and
 * clusters, oversized lengths, and replays of frames members really sent.
 */
import { createHmac } from 'node:crypto'
import { FORMAT_VERSION } from '../../src/codec/envelope.js'
import { encodeFrame } from '../../src/codec/frame.js'
import type { SimRandom } from '../../src/sim/rng.js'

/** Every kind of input the fuzzer makes; the report counts by kind. */
export const CATEGORIES = [
  'random-bytes',
  'random-payload',
  'stream-garbage',
  'bad-length',
  'bad-header',
  'envelope-mutated',
  'message-mutated',
  'prototype-keys',
  'wrong-cluster',
  'oversized',
  'replay',
] as const
export type Category = (typeof CATEGORIES)[number]

/** How the bytes reach the node: a fresh connection's whole output, more bytes on a long-lived one, a datagram. */
export type Delivery = 'connection' | 'stream' | 'datagram'

export interface FuzzInput {
  category: Category
  bytes: Buffer
  delivery: Delivery
  /** Signed with the cluster's key (an insider's forgery: it must still be refused by the checks after the MAC). */
  signed: boolean
}

export interface TargetInfo {
  algo: 'raft' | 'bully'
  cluster: string
  key: string | undefined
  /** The receiving node's id. */
  self: string
  /** Member ids (valid senders). */
  members: readonly string[]
  /** The claimed sender's real incarnation, by id (so a forgery can aim just below or at it). */
  incarnations: ReadonlyMap<string, number>
  /** The receiver's wall clock now. */
  wall: number
  /** The largest message the receiver accepts. */
  maxMessageBytes: number
  /** Encoded messages members really sent to this node (for replays). */
  captured: readonly Buffer[]
}

/** Raw JSON texts no well-behaved sender writes: every field is set to one of these in turn. */
const WEIRD_JSON: readonly string[] = [
  '0',
  '-1',
  '1',
  '1.5',
  '-0',
  '-1e-7',
  '1e308',
  '1e400',
  '-1e400',
  '9007199254740991',
  '9007199254740993',
  '-9007199254740993',
  '4294967296',
  '18446744073709551616',
  'NaN',
  'Infinity',
  '-Infinity',
  '0x10',
  'null',
  'true',
  'false',
  '""',
  '"0"',
  '"1e400"',
  '"n1"',
  '"n2"',
  '"n3"',
  '"*"',
  '"__proto__"',
  '"constructor"',
  '"prototype"',
  '"toString"',
  '"hasOwnProperty"',
  '"\\u0000"',
  '"\\ud800"',
  `"${'x'.repeat(129)}"`,
  `"${'é'.repeat(300)}"`,
  '[]',
  '{}',
  '[1,2,3]',
  '{"__proto__":{"polluted":true}}',
  '{"constructor":{"prototype":{"polluted":true}}}',
  '{"t":"hb"}',
  `${'['.repeat(3000)}${']'.repeat(3000)}`,
]

const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty']

/** Valid messages of each protocol, as raw field → JSON text maps, which the mutator then bends. */
function validMessage(
  algo: 'raft' | 'bully',
  rng: SimRandom,
  members: readonly string[],
): Record<string, string> {
  const term = String(rng.int(0, 50))
  const bool = () => (rng.chance(0.5) ? 'true' : 'false')
  if (algo === 'raft') {
    switch (rng.int(0, 8)) {
      case 0:
        return {
          t: '"hello"',
          term,
          kind: rng.chance(0.5) ? '"voter"' : '"observer"',
          tags: '{"zone":"a"}',
          voters: JSON.stringify(members),
        }
      case 1:
        return { t: '"prevote"', term }
      case 2:
        return { t: '"prevote-resp"', term, granted: bool() }
      case 3:
        return { t: '"vote"', term, transfer: bool() }
      case 4:
        return { t: '"vote-resp"', term, granted: bool(), promiseMs: String(rng.int(0, 2000)) }
      case 5:
        return { t: '"hb"', term, seq: String(rng.int(0, 1000)) }
      case 6:
        return { t: '"hb-resp"', term, seq: String(rng.int(0, 1000)), ack: bool() }
      case 7:
        return { t: '"timeout-now"', term, waitMs: String(rng.int(0, 1000)) }
      default:
        return { t: '"handover"', term, to: JSON.stringify(members[rng.int(0, members.length - 1)]) }
    }
  }
  const base = { pid: String(rng.int(-5, 5)), addr: '"10.0.0.9"', epoch: String(rng.int(0, 5000)) }
  switch (rng.int(0, 3)) {
    case 0:
      return { t: '"hello"', ...base }
    case 1: {
      // Now and then a full list of ids never seen: a forger trying to fill the peer table.
      const n = rng.chance(0.2) ? 256 : 1
      const list = Array.from({ length: n }, () => `{"id":"m${rng.int(0, 1e9)}","addr":"10.0.0.9:1"}`)
      return { t: '"claim"', ...base, members: `[${list.join(',')}]` }
    }
    case 2:
      return { t: '"hb"', ...base, max: String(rng.int(0, 6000)) }
    default:
      return { t: '"bye"', ...base, leaving: bool() }
  }
}

function objectText(fields: Record<string, string>): string {
  return `{${Object.entries(fields)
    .map(([k, v]) => `${JSON.stringify(k)}:${v}`)
    .join(',')}}`
}

function pick<T>(rng: SimRandom, list: readonly T[]): T {
  return list[rng.int(0, list.length - 1)] as T
}

function randomBytes(rng: SimRandom, n: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = rng.int(0, 255)
  return b
}

/** Bends 1–3 fields of a field map: a weird value, a deleted field, or an extra (prototype) key. */
function mutate(rng: SimRandom, fields: Record<string, string>): Record<string, string> {
  const out = { ...fields }
  const keys = Object.keys(out)
  for (let i = rng.int(1, 3); i > 0; i--) {
    const roll = rng.next()
    const key = pick(rng, keys)
    if (roll < 0.75) out[key] = pick(rng, WEIRD_JSON)
    else if (roll < 0.88) delete out[key]
    else out[pick(rng, PROTO_KEYS)] = pick(rng, WEIRD_JSON)
  }
  return out
}

/** A codec message around `body`: version, flags, and an HMAC when `key` is given. */
function envelopeBytes(body: string, key: string | undefined, version = FORMAT_VERSION): Buffer {
  const header = Buffer.from([version, key ? 1 : 0])
  const bodyBytes = Buffer.from(body)
  if (!key) return Buffer.concat([header, bodyBytes])
  const mac = createHmac('sha256', key).update(header).update(bodyBytes).digest()
  return Buffer.concat([header, mac, bodyBytes])
}

let bigBody: Buffer | undefined

/** An envelope-looking body larger than any bound (made once: the fuzzer sends slices of it). */
function oversizedBody(max: number): Buffer {
  if (!bigBody || bigBody.length < max + 64) {
    bigBody = Buffer.alloc(max + 64, 0x61)
    bigBody[0] = FORMAT_VERSION
    bigBody[1] = 0
    bigBody[2] = 0x7b // '{'
  }
  return bigBody
}

/** Draws one hostile input for the node described by `target`. */
export function nextInput(rng: SimRandom, target: TargetInfo): FuzzInput {
  const datagram = target.algo === 'bully'
  const wrap = (payload: Buffer): Buffer => (datagram ? payload : encodeFrame(payload))
  const delivery: Delivery = datagram ? 'datagram' : 'connection'
  // An insider's forgeries (signed with the key) test the checks behind the MAC; the rest a stranger's.
  const signed = target.key !== undefined && rng.chance(0.5)
  const signKey = signed ? target.key : undefined
  const from = rng.chance(0.8)
    ? pick(
        rng,
        target.members.filter((m) => m !== target.self),
      )
    : pick(rng, [target.self, 'stranger', `stranger-${rng.int(0, 1e9)}`, '__proto__', 'constructor', ''])
  const incarnation = target.incarnations.get(from) ?? 1
  const envelope = (overrides: Record<string, string> = {}, msg?: Record<string, string>) =>
    objectText({
      c: JSON.stringify(target.cluster),
      f: JSON.stringify(from),
      t: JSON.stringify(rng.chance(0.9) ? target.self : '*'),
      // Below the sender's incarnation the forgery is a replay; a stranger's may also claim the current one
      // (its MAC fails first). An insider's stays below, so the cluster it fuzzes keeps its leader.
      n: String(signed || rng.chance(0.7) ? incarnation - 1 : incarnation),
      s: String(rng.int(1, 1_000_000)),
      w: String(target.wall + rng.int(-1000, 1000)),
      m: objectText(msg ?? validMessage(target.algo, rng, target.members)),
      ...overrides,
    })

  const roll = rng.next()
  const category: Category =
    target.captured.length > 0 && roll < 0.08
      ? 'replay'
      : (CATEGORIES[rng.int(0, CATEGORIES.length - 2)] as Category)
  switch (category) {
    case 'random-bytes':
      return { category, bytes: randomBytes(rng, rng.int(0, 300)), delivery, signed: false }
    case 'random-payload': {
      // A valid length (or datagram) around bytes that start like an envelope and then go wrong.
      const payload = randomBytes(rng, rng.int(0, 400))
      if (payload.length > 0 && rng.chance(0.7)) payload[0] = FORMAT_VERSION
      return { category, bytes: wrap(payload), delivery, signed: false }
    }
    case 'stream-garbage':
      // More bytes on one long-lived connection: lengths and frames split anywhere.
      return {
        category,
        bytes: randomBytes(rng, rng.int(1, 64)),
        delivery: datagram ? 'datagram' : 'stream',
        signed: false,
      }
    case 'bad-length': {
      const body = envelopeBytes(envelope(), signKey)
      if (datagram) return { category, bytes: body.subarray(0, rng.int(0, body.length)), delivery, signed }
      const frame = encodeFrame(body)
      // A length that lies: shorter (the rest is read as the next frame), or longer than what is sent.
      frame.writeUInt32BE(rng.chance(0.5) ? rng.int(0, body.length - 1) : body.length + rng.int(1, 64), 0)
      return { category, bytes: frame, delivery, signed }
    }
    case 'bad-header': {
      const bytes = envelopeBytes(envelope(), signKey)
      const roll2 = rng.int(0, 3)
      if (roll2 === 0) bytes[0] = rng.int(0, 255) === FORMAT_VERSION ? 0 : rng.int(2, 255)
      else if (roll2 === 1) bytes[1] = rng.int(0, 255)
      else if (roll2 === 2 && bytes.length > 10) {
        const at = rng.int(2, Math.min(33, bytes.length - 1))
        bytes[at] = (bytes[at] ?? 0) ^ 0xff
      } else return { category, bytes: wrap(bytes.subarray(0, rng.int(0, 33))), delivery, signed }
      return { category, bytes: wrap(bytes), delivery, signed }
    }
    case 'envelope-mutated': {
      const fields = {
        c: JSON.stringify(target.cluster),
        f: JSON.stringify(from),
        t: JSON.stringify(target.self),
        n: String(incarnation - 1),
        s: String(rng.int(1, 1_000_000)),
        w: String(target.wall),
        m: objectText(validMessage(target.algo, rng, target.members)),
      }
      return {
        category,
        bytes: wrap(envelopeBytes(objectText(mutate(rng, fields)), signKey)),
        delivery,
        signed,
      }
    }
    case 'message-mutated': {
      const msg = mutate(rng, validMessage(target.algo, rng, target.members))
      return { category, bytes: wrap(envelopeBytes(envelope({}, msg), signKey)), delivery, signed }
    }
    case 'prototype-keys': {
      const msg = validMessage(target.algo, rng, target.members)
      for (let i = rng.int(1, 3); i > 0; i--) msg[pick(rng, PROTO_KEYS)] = pick(rng, WEIRD_JSON)
      const env = rng.chance(0.5) ? { [pick(rng, PROTO_KEYS)]: '{"c":"ballot","polluted":true}' } : {}
      return { category, bytes: wrap(envelopeBytes(envelope(env, msg), signKey)), delivery, signed }
    }
    case 'wrong-cluster': {
      const c = JSON.stringify(pick(rng, ['other', '', target.cluster.toUpperCase(), `${target.cluster} `]))
      return { category, bytes: wrap(envelopeBytes(envelope({ c }), signKey)), delivery, signed }
    }
    case 'oversized': {
      if (!datagram && rng.chance(0.5)) {
        // A length far over the bound: the connection is dropped before anything is buffered.
        const header = Buffer.allocUnsafe(4)
        header.writeUInt32BE(rng.chance(0.5) ? 0xffffffff : target.maxMessageBytes + rng.int(1, 1 << 20), 0)
        return { category, bytes: header, delivery, signed: false }
      }
      // One byte over the bound or more, sent whole: refused on its size before anything is parsed.
      const big = oversizedBody(target.maxMessageBytes).subarray(0, target.maxMessageBytes + rng.int(1, 64))
      return { category, bytes: wrap(big), delivery, signed: false }
    }
    default: {
      // A frame a member really sent this node, sent again.
      const bytes = pick(rng, target.captured)
      return { category: 'replay', bytes: wrap(bytes), delivery, signed: target.key !== undefined }
    }
  }
}
