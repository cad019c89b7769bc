// The envelope codec and framing: every way a message can be wrong is dropped with its reason, never thrown.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { Codec, type DropReason } from '../src/codec/envelope.js'
import { encodeFrame, FrameDecoder } from '../src/codec/frame.js'
import { decodeNotice, encodeNotice } from '../src/codec/notice.js'
import { ReplayGuard } from '../src/codec/replay.js'
import { type RaftMessage, raftMessageSchema } from '../src/protocol/raft/messages.js'

const hb: RaftMessage = { t: 'hb', term: 3, seq: 12 }

type Key = string | string[]

function pair(opts: { key?: Key; peerKey?: Key; cluster?: string; wall?: () => number } = {}) {
  const members = new Set(['a', 'b'])
  const a = new Codec<RaftMessage>({
    cluster: opts.cluster ?? 'c1',
    self: 'a',
    schema: raftMessageSchema,
    key: opts.key,
    wallClock: opts.wall,
  })
  const b = new Codec<RaftMessage>({
    cluster: 'c1',
    self: 'b',
    schema: raftMessageSchema,
    key: opts.peerKey ?? opts.key,
    isKnownPeer: (id) => members.has(id),
    wallClock: opts.wall,
  })
  return { a, b }
}

function reason(r: ReturnType<Codec<RaftMessage>['decode']>): DropReason | 'ok' {
  return r.ok ? 'ok' : r.reason
}

describe('codec', () => {
  test('round-trips a message with and without a key', () => {
    for (const key of [undefined, 'k']) {
      const { a, b } = pair({ key })
      assert.deepEqual(b.decode(a.encode('b', hb)), { ok: true, from: 'a', to: 'b', msg: hb })
    }
  })

  test('drops forged, tampered and wrong-key messages', () => {
    const { a, b } = pair({ key: 'right' })
    const bytes = a.encode('b', hb)
    const tampered = Buffer.from(bytes)
    tampered.writeUInt8(tampered.readUInt8(tampered.length - 3) ^ 1, tampered.length - 3)
    assert.equal(reason(b.decode(tampered)), 'auth')
    assert.equal(
      reason(pair({ key: 'wrong', peerKey: 'right' }).b.decode(pair({ key: 'wrong' }).a.encode('b', hb))),
      'auth',
    )
    assert.equal(
      reason(b.decode(pair().a.encode('b', hb))),
      'auth',
      'an unauthenticated message is refused when a key is set',
    )
  })

  test('drops replays, even after reordering, and stale captures', () => {
    let wall = 1_000_000
    const { a, b } = pair({ key: 'k', wall: () => wall })
    const m1 = a.encode('b', hb)
    const m2 = a.encode('b', hb)
    assert.equal(reason(b.decode(m2)), 'ok')
    assert.equal(reason(b.decode(m1)), 'ok', 'reordered datagrams are fine')
    assert.equal(reason(b.decode(m1)), 'replay')
    assert.equal(reason(b.decode(m2)), 'replay')
    const m3 = a.encode('b', hb)
    wall += 120_000
    assert.equal(reason(b.decode(m3)), 'stale')
  })

  test('drops captures stamped further in the future than the age bound, as stale', () => {
    let senderWall = 1_000_000 + 120_000 // a sender whose clock ran two minutes ahead, or a forged stamp
    const a = new Codec<RaftMessage>({
      cluster: 'c1',
      self: 'a',
      schema: raftMessageSchema,
      key: 'k',
      wallClock: () => senderWall,
    })
    const freshReceiver = () =>
      new Codec<RaftMessage>({
        cluster: 'c1',
        self: 'b',
        schema: raftMessageSchema,
        key: 'k',
        wallClock: () => 1_000_000,
      })
    const future = a.encode('b', hb)
    assert.equal(
      reason(freshReceiver().decode(future)),
      'stale',
      'not replayable into a receiver that just started',
    )
    senderWall = 1_000_000 + 30_000
    assert.equal(reason(freshReceiver().decode(a.encode('b', hb))), 'ok', 'clocks within the bound are fine')
  })

  test('drops wrong-cluster, misdirected, unknown-sender, schema-breaking, oversized and unknown-version messages', () => {
    const { b } = pair()
    assert.equal(reason(b.decode(pair({ cluster: 'other' }).a.encode('b', hb))), 'cluster')
    assert.equal(reason(b.decode(pair().a.encode('c', hb))), 'misdirected')
    const stranger = new Codec<RaftMessage>({ cluster: 'c1', self: 'zed', schema: raftMessageSchema })
    assert.equal(reason(b.decode(stranger.encode('b', hb))), 'unknown-peer')
    const bad = Buffer.concat([
      Buffer.from([1, 0]),
      Buffer.from(JSON.stringify({ c: 'c1', f: 'a', t: 'b', n: 1, s: 1, w: 0, m: { t: 'hb', term: 'x' } })),
    ])
    assert.equal(reason(b.decode(bad)), 'schema')
    assert.equal(reason(b.decode(Buffer.alloc(70_000, 1))), 'oversized')
    assert.equal(reason(b.decode(Buffer.from([2, 0, 0]))), 'version')
    assert.equal(reason(b.decode(Buffer.from([1]))), 'malformed')
  })

  test('key rotation: the first key signs, every key is accepted', () => {
    // Step 1, [old, new] everywhere: both still sign with old. Step 2, [new, old]: a node that moved
    // signs with new, and one that has not yet moved accepts it. Step 3, [new]: old is refused.
    const at = (a: Key, b: Key) =>
      reason(pair({ key: a, peerKey: b }).b.decode(pair({ key: a }).a.encode('b', hb)))
    assert.equal(at(['old-key', 'new-key'], 'old-key'), 'ok', 'step 1 is invisible to nodes not yet moved')
    assert.equal(
      at(['new-key', 'old-key'], ['old-key', 'new-key']),
      'ok',
      'step 2 is heard by nodes at step 1',
    )
    assert.equal(at('new-key', ['new-key', 'old-key']), 'ok', 'step 3 is heard by nodes at step 2')
    assert.equal(at(['new-key', 'old-key'], 'old-key'), 'auth', 'skipping step 1 drops messages')
    assert.equal(at('old-key', 'new-key'), 'auth')
    // Rotating a live codec.
    const { a, b } = pair({ key: 'old-key' })
    b.setKeys(['old-key', 'new-key'])
    assert.equal(reason(b.decode(a.encode('b', hb))), 'ok')
    a.setKeys(['new-key', 'old-key'])
    b.setKeys('new-key')
    assert.equal(reason(b.decode(a.encode('b', hb))), 'ok')
    assert.throws(() => b.setKeys([]), { code: 'INVALID_OPTIONS', field: 'key' })
    assert.throws(() => pair().a.setKeys('late-key'), { code: 'INVALID_OPTIONS', field: 'key' })
  })

  test('a hello names its sender, is authenticated, and is never taken for a message', () => {
    const { a, b } = pair({ key: 'k' })
    assert.deepEqual(b.decodeFrame(a.encodeHello('b')), { ok: true, from: 'a', to: 'b', hello: true })
    assert.equal(reason(b.decode(a.encodeHello('b'))), 'schema', 'decode() takes messages only')
    const forged = pair({ key: 'wrong' }).a.encodeHello('b')
    assert.deepEqual(b.decodeFrame(forged), { ok: false, reason: 'auth' })
    // A message without `m`, or a hello with one, is malformed.
    const { b: open } = pair()
    const body = (o: object) => Buffer.concat([Buffer.from([1, 0]), Buffer.from(JSON.stringify(o))])
    const env = { c: 'c1', f: 'a', t: 'b', n: 1, s: 1, w: Date.now() }
    assert.equal(reason(open.decode(body(env))), 'malformed')
    assert.deepEqual(open.decodeFrame(body({ ...env, h: 1, m: hb })), { ok: false, reason: 'malformed' })
  })

  test('notices carry one stable word and nothing else', () => {
    assert.equal(decodeNotice(encodeNotice('CERT_HAS_EXPIRED')), 'CERT_HAS_EXPIRED')
    assert.equal(decodeNotice(encodeNotice('not a word\n')), 'REFUSED')
    assert.equal(decodeNotice(Buffer.from('\x00bad word')), undefined)
    assert.equal(decodeNotice(Buffer.from([1, 65])), undefined, 'an envelope is not a notice')
    assert.equal(decodeNotice(Buffer.alloc(200)), undefined)
  })

  test('never throws on arbitrary bytes', () => {
    const { b } = pair({ key: 'k' })
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const r = b.decode(Buffer.from(bytes))
        assert.equal(r.ok, false)
      }),
    )
  })
})

describe('frames', () => {
  test('reassembles frames split anywhere and refuses oversized lengths', () => {
    const payloads = [Buffer.from('one'), Buffer.alloc(0), Buffer.from('three!')]
    const stream = Buffer.concat(payloads.map(encodeFrame))
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: stream.length }), { maxLength: 6 }), (cuts) => {
        const d = new FrameDecoder(100)
        const got: Buffer[] = []
        let at = 0
        for (const cut of [...cuts.sort((x, y) => x - y), stream.length]) {
          const r = d.push(stream.subarray(at, Math.max(at, cut)))
          assert.equal(r.ok, true)
          got.push(...r.frames)
          at = Math.max(at, cut)
        }
        assert.deepEqual(got.map(String), payloads.map(String))
      }),
    )
    const d = new FrameDecoder(10)
    assert.deepEqual(d.push(encodeFrame(Buffer.alloc(11))), { ok: false, frames: [], reason: 'oversized' })
  })

  test('the bound may be raised between two frames of one read', () => {
    // A connection starts with a small bound (before its first valid frame) and gets the full one after.
    const d = new FrameDecoder(8)
    d.append(Buffer.concat([encodeFrame(Buffer.from('hello')), encodeFrame(Buffer.alloc(100, 7))]))
    assert.equal(String(d.next()), 'hello')
    assert.equal(d.bufferedBytes, 104)
    d.setMaxFrameBytes(1000)
    assert.equal((d.next() as Buffer).length, 100)
    assert.equal(d.next(), undefined)
    const small = new FrameDecoder(8)
    small.append(encodeFrame(Buffer.alloc(9)))
    assert.equal(small.next(), 'oversized')
    assert.equal(small.bufferedBytes, 0, 'nothing is held after a refusal')
  })
})

describe('replay window', () => {
  test('a newer incarnation supersedes, an older one is refused', () => {
    const g = new ReplayGuard(60_000)
    assert.equal(g.check('a', 2, 5, 0, 0), 'ok')
    assert.equal(g.check('a', 1, 9, 0, 0), 'replay')
    assert.equal(g.check('a', 3, 1, 0, 0), 'ok')
    assert.equal(g.check('a', 3, 1, 0, 0), 'replay')
    assert.equal(g.check('a', 3, 200, 0, 0), 'ok')
    assert.equal(g.check('a', 3, 100, 0, 0), 'replay', 'too far behind the window')
  })
})
