// Step-by-step tests of the pure bully state machine: no clock, no sockets, every input by hand.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { BullyMachine } from '../src/protocol/bully/machine.js'
import {
  type BullyMessage,
  bullyHardStateSchema,
  bullyMessageSchema,
} from '../src/protocol/bully/messages.js'
import { FAST_BULLY_TIMING, startListenMs } from '../src/protocol/bully/options.js'
import { BROADCAST, type Outgoing } from '../src/protocol/machine.js'

const T = FAST_BULLY_TIMING // heartbeat 20, leader timeout 100, claim step 10, resign hold 1000
// Node nK has pid K, so its epochs end in K: a claim takes the smallest epoch above every one its node has
// seen that is K modulo 1000 (n5's first is 5; n3 after n4's 4 takes 1003).

function node(id: string, pid: number, epoch?: number) {
  return new BullyMachine({
    id,
    pid,
    address: `10.0.0.${pid}`,
    timing: T,
    hardState: epoch === undefined ? undefined : { epoch },
  })
}

type Sent = { from: string } & Outgoing<BullyMessage>

/** A tiny multicast LAN: every broadcast reaches every other node at once; `cut` nodes hear nothing. */
class Lan {
  readonly nodes = new Map<string, BullyMachine>()
  readonly cut = new Set<string>()
  log: Sent[] = []
  now = 0
  constructor(machines: BullyMachine[]) {
    for (const m of machines) this.nodes.set(m.id, m)
  }
  add(m: BullyMachine) {
    this.nodes.set(m.id, m)
    m.step(this.now, { kind: 'tick' })
    this.settle()
  }
  remove(id: string) {
    this.nodes.delete(id)
  }
  /** Messages drained from a node by the test, delivered first at the next settle(). */
  pending: Sent[] = []
  settle() {
    for (let i = 0; i < 1000; i++) {
      const queue: Sent[] = this.pending
      this.pending = []
      for (const n of this.nodes.values())
        for (const m of n.ready().messages) queue.push({ from: n.id, ...m })
      if (queue.length === 0) return
      this.log.push(...queue)
      for (const m of queue) {
        if (this.cut.has(m.from)) continue
        for (const to of this.nodes.values()) {
          if (to.id === m.from || this.cut.has(to.id) || (m.to !== BROADCAST && m.to !== to.id)) continue
          to.step(this.now, { kind: 'receive', from: m.from, msg: m.msg })
        }
      }
    }
    throw new Error('network did not settle')
  }
  /** Advances time to `until`, ticking every node each millisecond. */
  run(until: number) {
    for (; this.now <= until; this.now++) {
      for (const n of this.nodes.values()) n.step(this.now, { kind: 'tick' })
      this.settle()
    }
    this.now = until
  }
  leaders() {
    return [...this.nodes.values()].filter((n) => n.view(this.now).isLeader).map((n) => n.id)
  }
  /** The leader every node names (with its epoch), if they agree. */
  agreed() {
    const views = [...this.nodes.values()].map((n) => n.view(this.now).leader)
    const first = views[0]
    if (!first || views.some((v) => v?.id !== first.id || v.term !== first.term)) return undefined
    return first
  }
  claims(since = 0) {
    return this.log.slice(since).filter((m) => m.msg.t === 'claim')
  }
}

function cluster(n: number) {
  const lan = new Lan(Array.from({ length: n }, (_, i) => node(`n${i + 1}`, i + 1)))
  lan.run(0)
  return lan
}

describe('bully machine', () => {
  test('all nodes starting at once: one claim, from the highest, after one listening period', () => {
    const lan = cluster(5)
    lan.run(startListenMs(T) - 1)
    assert.deepEqual(lan.leaders(), [], 'nobody claims while listening')
    lan.run(startListenMs(T) + 5 * T.claimStepMs)
    assert.deepEqual(lan.agreed(), { id: 'n5', term: 5 })
    assert.equal(lan.claims().length, 1, 'exactly one claim: one round, no deadlock')
    assert.equal(lan.claims()[0]?.from, 'n5')
    assert.equal(lan.nodes.get('n1')?.addressOf('n5'), '10.0.0.5', 'followers know the leader address')
  })

  test('heartbeats keep the leader: no claim in ten seconds when nothing fails', () => {
    const lan = cluster(3)
    lan.run(500)
    const before = lan.claims().length
    lan.run(10_000)
    assert.equal(lan.claims().length, before)
    assert.deepEqual(lan.agreed(), { id: 'n3', term: 3 })
  })

  test('a silent leader is replaced after the timeout by the next highest, in one claim', () => {
    const lan = cluster(4)
    lan.run(500)
    const mark = lan.log.length
    lan.cut.add('n4')
    lan.remove('n4')
    lan.run(500 + T.leaderTimeoutMs + T.heartbeatIntervalMs + 2)
    assert.deepEqual(lan.agreed(), { id: 'n3', term: 1003 })
    assert.deepEqual(
      lan.claims(mark).map((m) => m.from),
      ['n3'],
    )
  })

  test('a leader that says bye is replaced at once, without waiting for the timeout', () => {
    const lan = cluster(3)
    lan.run(500)
    lan.nodes.get('n3')?.step(lan.now, { kind: 'stop', handover: true })
    lan.settle()
    lan.remove('n3')
    assert.deepEqual(lan.agreed(), { id: 'n2', term: 1002 })
  })

  test("the transport's process-gone hint about the leader starts the election at once", () => {
    const lan = cluster(3)
    lan.run(500)
    lan.remove('n3')
    for (const n of lan.nodes.values()) n.step(lan.now, { kind: 'peerUnreachable', peer: 'n3' })
    lan.settle()
    lan.run(lan.now + 2 * T.claimStepMs)
    assert.deepEqual(lan.agreed(), { id: 'n2', term: 1002 })
  })

  test('a returning higher node takes over through one claim, with a newer epoch', () => {
    const lan = cluster(3)
    lan.run(500)
    lan.remove('n3')
    lan.run(800)
    assert.deepEqual(lan.agreed(), { id: 'n2', term: 1002 })
    const mark = lan.log.length
    lan.add(node('n3', 3)) // restarted without a data directory: it learns the epoch from others
    lan.run(lan.now + T.heartbeatIntervalMs + 1)
    assert.deepEqual(lan.agreed(), { id: 'n3', term: 1003 })
    assert.deepEqual(
      lan.claims(mark).map((m) => m.from),
      ['n3'],
    )
  })

  test('a claim from a lower node is answered by the higher leader with a newer epoch', () => {
    const lan = cluster(3)
    lan.run(500)
    const n1 = lan.nodes.get('n1') as BullyMachine
    // n1 is cut off long enough to elect itself, then comes back with epoch 2.
    lan.cut.add('n1')
    lan.run(500 + T.leaderTimeoutMs + 3 * T.claimStepMs + T.heartbeatIntervalMs)
    assert.deepEqual(n1.view(lan.now).leader, { id: 'n1', term: 1001 }, 'alone, it leads (a partition)')
    assert.equal(lan.leaders().length, 2, 'two leaders, one per side: bully does not promise better')
    lan.cut.delete('n1')
    lan.run(lan.now + 2 * T.heartbeatIntervalMs)
    assert.deepEqual(lan.agreed(), { id: 'n3', term: 1003 })
    assert.deepEqual(lan.leaders(), ['n3'])
  })

  test('resign hands over to the next node at once, and the highest takes back after the hold', () => {
    const lan = cluster(3)
    lan.run(500)
    lan.nodes.get('n3')?.step(lan.now, { kind: 'resign' })
    lan.settle()
    lan.run(lan.now + T.claimStepMs)
    assert.deepEqual(lan.agreed(), { id: 'n2', term: 1002 })
    assert.equal(lan.nodes.get('n3')?.view(lan.now).role, 'follower', 'stays in the group')
    lan.run(lan.now + T.resignHoldMs - 2 * T.claimStepMs)
    assert.equal(lan.agreed()?.id, 'n2', 'held for resignHoldMs')
    lan.run(lan.now + 2 * T.claimStepMs + T.heartbeatIntervalMs + 1)
    assert.deepEqual(lan.agreed(), { id: 'n3', term: 1003 })
  })

  test('the epoch is persisted on every claim, and a restarted node never reuses one (the next in its slot)', () => {
    const a = node('a', 1, 7)
    a.step(0, { kind: 'tick' })
    a.ready()
    a.step(startListenMs(T), { kind: 'tick' })
    const r = a.ready()
    assert.deepEqual(r.persist, { epoch: 1001 })
    assert.deepEqual(a.view(startListenMs(T)).leader, { id: 'a', term: 1001 })
    assert.equal(r.messages.filter((m) => m.msg.t === 'claim').length, 1)
  })

  test("nodes named in the leader's member list are learned, with their addresses", () => {
    const a = node('a', 1)
    a.step(0, { kind: 'tick' })
    a.step(1, {
      kind: 'receive',
      from: 'z',
      msg: {
        t: 'hb',
        pid: 9,
        addr: '10.0.0.9',
        epoch: 4,
        members: [
          { id: 'z', addr: '10.0.0.9' },
          { id: 'q', addr: '10.0.0.17' },
        ],
      },
    })
    assert.deepEqual(a.view(1).leader, { id: 'z', term: 4 })
    assert.equal(a.addressOf('q'), '10.0.0.17')
    assert.deepEqual(
      a
        .view(1)
        .peers.map((p) => p.id)
        .sort(),
      ['q', 'z'],
    )
  })

  test('a stale heartbeat (older epoch) from a higher node is refused, and the sender told the newer epoch', () => {
    const a = node('a', 1)
    a.step(0, { kind: 'tick' })
    a.step(1, { kind: 'receive', from: 'b', msg: { t: 'claim', pid: 2, addr: 'b', epoch: 5 } })
    a.ready()
    a.step(2, { kind: 'receive', from: 'c', msg: { t: 'hb', pid: 3, addr: 'c', epoch: 3 } })
    assert.deepEqual(a.view(2).leader, { id: 'b', term: 5 }, 'unchanged')
    const reply = a.ready().messages.find((m) => m.to === 'c')
    assert.equal(reply?.msg.t, 'hello')
    assert.equal(reply?.msg.epoch, 5)
  })
})

describe('bully machine: every leadership has its own token', () => {
  test('a resign racing the end of a resign hold: two claims in the same millisecond, two epochs', () => {
    const lan = cluster(3)
    lan.run(500)
    const n2 = lan.nodes.get('n2') as BullyMachine
    lan.nodes.get('n3')?.step(lan.now, { kind: 'resign' })
    lan.settle()
    lan.run(lan.now + T.claimStepMs)
    assert.equal(lan.agreed()?.id, 'n2')
    const holdEnd = 500 + T.resignHoldMs
    lan.run(holdEnd - 1)
    // Millisecond by millisecond: the first heartbeat n2 sends once n3's hold is over ends the hold
    // (n3 outranks n2 and takes over), and n2 resigns in that same millisecond, so n1, which still
    // thinks n3 resigned, claims too. Neither can have heard the other's claim.
    const mark = lan.log.length
    for (let t = holdEnd; t < holdEnd + 2 * T.heartbeatIntervalMs; t++) {
      lan.now = t
      for (const n of lan.nodes.values()) n.step(t, { kind: 'tick' })
      const out = n2.ready().messages
      const heartbeat = out.some((m) => m.msg.t === 'hb')
      lan.pending = out.map((m) => ({ from: 'n2', ...m }))
      if (heartbeat) n2.step(t, { kind: 'resign' })
      lan.settle()
      if (heartbeat) break
    }
    // The first claim of each (n3 then claims again on hearing n1's, as it outranks n1).
    const first = new Map<string, Sent>()
    for (const c of lan.claims(mark)) if (!first.has(c.from)) first.set(c.from, c)
    const claims = [...first.values()]
    assert.deepEqual([...first.keys()].sort(), ['n1', 'n3'], 'the race happened: two claims at once')
    const [a, b] = claims.map((c) => c.msg.epoch) as [number, number]
    assert.notEqual(a, b, `two leaderships, one token: ${claims.map((c) => `${c.from}@${c.msg.epoch}`)}`)
    for (const c of claims) assert.ok(c.msg.epoch > 0)
    lan.run(lan.now + 5 * T.heartbeatIntervalMs)
    const settled = lan.agreed()
    assert.equal(settled?.id, 'n3')
    assert.ok((settled?.term ?? 0) > Math.max(a, b), 'the survivor leads with a token above both')
  })

  test('a claim is above every epoch the claimer could know of, even one its leader only heard of', () => {
    // b leads with 1002 but has heard of 1005 (a higher node's hello from the other side of a lossy
    // link). a, which outranks b, bullies it at once: its epoch must be above 1005, not just 1002.
    const a = node('a', 3)
    a.step(0, { kind: 'tick' })
    a.ready()
    a.step(1, { kind: 'receive', from: 'b', msg: { t: 'hb', pid: 2, addr: 'b', epoch: 1002, max: 1005 } })
    const claim = a.ready().messages.find((m) => m.msg.t === 'claim')
    assert.equal(claim?.msg.epoch, 2003)
    // And a leader tells what it knows: its heartbeats carry the largest epoch it has heard of.
    a.step(2, { kind: 'receive', from: 'c', msg: { t: 'hello', pid: 9, addr: 'c', epoch: 5009 } })
    a.ready()
    a.step(2 + T.heartbeatIntervalMs, { kind: 'tick' })
    const hb = a.ready().messages.find((m) => m.msg.t === 'hb')
    assert.deepEqual([hb?.msg.epoch, hb?.msg.t === 'hb' && hb.msg.max], [2003, 5009])
  })

  test('a peer in the same epoch slot (pids equal modulo 1000) is named as a problem', () => {
    const a = node('a', 7)
    a.step(0, { kind: 'tick' })
    a.step(1, { kind: 'receive', from: 'b', msg: { t: 'hello', pid: 8, addr: 'b', epoch: 0 } })
    assert.deepEqual(a.view(1).problems, [])
    a.step(2, { kind: 'receive', from: 'c', msg: { t: 'hello', pid: 1007, addr: 'c', epoch: 0 } })
    const problems = a.view(2).problems ?? []
    assert.equal(problems.length, 1)
    assert.match(problems[0] as string, /^c has pid 1007, in this node's epoch slot/)
  })

  test('two nodes that cannot hear each other claim in the same millisecond from the same epoch: two tokens', () => {
    // A partition from the start, both with the same persisted epoch: each leads its side.
    const a = node('a', 1, 7)
    const b = node('b', 2, 7)
    for (const n of [a, b]) n.step(0, { kind: 'tick' })
    for (const n of [a, b]) n.ready()
    const now = startListenMs(T)
    for (const n of [a, b]) n.step(now, { kind: 'tick' })
    const [ta, tb] = [a, b].map((n) => n.view(now).leader?.term) as [number, number]
    assert.ok(a.view(now).isLeader && b.view(now).isLeader, 'each side leads')
    assert.notEqual(ta, tb, 'but with its own token')
    assert.ok(ta > 7 && tb > 7, 'each above every epoch it knew')
  })
})

describe('bully machine: epochs near 2^53 cannot brick the cluster', () => {
  const NEAR = Number.MAX_SAFE_INTEGER // 2^53 - 1: passes the schema; one more does not

  test('an epoch from the wire beyond belief is dropped whole, counted, and changes nothing', () => {
    const a = node('a', 1)
    a.step(0, { kind: 'tick' })
    a.ready()
    const forged: BullyMessage[] = [
      { t: 'claim', pid: 1e9, addr: '10.6.6.6', epoch: NEAR },
      { t: 'hello', pid: 0, addr: '10.6.6.6', epoch: NEAR },
      { t: 'hb', pid: 1e9, addr: '10.6.6.6', epoch: 2 ** 32 + 1 },
    ]
    for (const msg of forged) a.step(1, { kind: 'receive', from: 'mallory', msg })
    const r = a.ready()
    assert.equal(r.persist, undefined, 'nothing to persist: maxEpoch unchanged')
    assert.deepEqual(r.messages, [], 'no reply to the forger')
    assert.deepEqual(
      r.refused?.map((x) => [x.peer, x.reason]),
      [
        ['mallory', 'term-jump'],
        ['mallory', 'term-jump'],
        ['mallory', 'term-jump'],
      ],
    )
    const v = a.view(1)
    assert.equal(v.leader, undefined)
    assert.deepEqual(v.peers, [], 'the forger is not even learned as a peer')
    // Within MAX_TERM_JUMP of what it knows: believed (a real leader it had not heard of).
    a.step(2, { kind: 'receive', from: 'z', msg: { t: 'hb', pid: 9, addr: '10.0.0.9', epoch: 2 ** 32 } })
    assert.deepEqual(a.view(2).leader, { id: 'z', term: 2 ** 32 })
    assert.deepEqual(a.ready().persist, { epoch: 2 ** 32 })
  })

  test('no epoch above MAX_TERM is ever persisted or sent: a node whose next claim would pass it never claims', () => {
    // Slot 5: the next epoch above 2^53 - 2 in it is past 2^53.
    const a = node('a', 5, NEAR - 1)
    a.step(0, { kind: 'tick' })
    a.ready()
    a.step(startListenMs(T), { kind: 'tick' })
    const r = a.ready()
    assert.equal(r.persist, undefined)
    assert.ok(!r.messages.some((m) => m.msg.t === 'claim'), 'no claim')
    assert.ok(r.messages.every((m) => m.msg.epoch <= NEAR && bullyMessageSchema.safeParse(m.msg).success))
    const v = a.view(startListenMs(T))
    assert.equal(v.isLeader, false)
    assert.match((v.problems ?? []).join(), /epochs exhausted/)

    // Slot 991: 2^53 - 1 itself is its next epoch. It claims it, and what it writes every peer and its
    // own restart can read; after that it cannot claim again, and follows whoever leads.
    const b = node('b', 991, NEAR - 1)
    b.step(0, { kind: 'tick' })
    b.ready()
    b.step(startListenMs(T), { kind: 'tick' })
    const rb = b.ready()
    assert.deepEqual(rb.persist, { epoch: NEAR })
    assert.ok(bullyHardStateSchema.safeParse(rb.persist).success, 'its own state file will load')
    const claim = rb.messages.find((m) => m.msg.t === 'claim')
    assert.equal(claim?.msg.epoch, NEAR)
    assert.ok(bullyMessageSchema.safeParse(claim?.msg).success, 'every peer accepts its claim')
    // A lower node leading with the same epoch: b would claim again, but cannot; it steps down instead.
    const t = startListenMs(T) + 1
    b.step(t, { kind: 'receive', from: 'c', msg: { t: 'hb', pid: 1, addr: 'c', epoch: NEAR } })
    const after = b.ready()
    assert.equal(after.persist, undefined)
    assert.ok(!after.messages.some((m) => m.msg.epoch > NEAR))
    assert.deepEqual(b.view(t).leader, { id: 'c', term: NEAR })
  })
})
