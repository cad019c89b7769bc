// The envelope codec and framing: every way a message can be wrong is dropped with its reason, never thrown.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { Codec, type DropReason } from '../src/codec/envelope.js'
import { encodeFrame, FrameDecoder } from '../src/codec/frame.js'
import { ReplayGuard } from '../src/codec/replay.js'
import { type RaftMessage, raftMessageSchema } from '../src/protocol/raft/messages.js'

const hb: RaftMessage = { t: 'hb', term: 3, seq: 12 }

function pair(opts: { key?: string; peerKey?: string; cluster?: string; wall?: () => number } = {}) {
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
