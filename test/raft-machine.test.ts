// Step-by-step tests of the pure raft state machine: no clock, no sockets, every input by hand.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { Outgoing } from '../src/protocol/machine.js'
import { RaftMachine, type RaftMachineOptions } from '../src/protocol/raft/machine.js'
import type { RaftMessage } from '../src/protocol/raft/messages.js'
import { FAST_TIMING, type RaftMember } from '../src/protocol/raft/options.js'

const T = FAST_TIMING // heartbeat 20, election 100-200, lease 90

function node(id: string, members: RaftMember[], extra: Partial<RaftMachineOptions> = {}) {
  return new RaftMachine({ id, members, timing: T, random: () => 0, ...extra })
}

const three: RaftMember[] = [{ id: 'a' }, { id: 'b' }, { id: 'c' }]

/** A tiny synchronous network: deliver every queued message at `now` until nothing is left. */
class Net {
  readonly nodes = new Map<string, RaftMachine>()
  readonly cut = new Set<string>()
  log: Array<{ from: string } & Outgoing<RaftMessage>> = []
  constructor(machines: RaftMachine[]) {
    for (const m of machines) this.nodes.set(m.id, m)
  }
  connectAll(now: number) {
    for (const a of this.nodes.values())
      for (const b of this.nodes.values()) if (a !== b) a.step(now, { kind: 'peerConnected', peer: b.id })
  }
  settle(now: number) {
    for (let i = 0; i < 1000; i++) {
      const queue: Array<{ from: string } & Outgoing<RaftMessage>> = []
      for (const n of this.nodes.values())
        for (const m of n.ready().messages) queue.push({ from: n.id, ...m })
      if (queue.length === 0) return
      this.log.push(...queue)
      for (const m of queue) {
        if (this.cut.has(m.from) || this.cut.has(m.to)) continue
        this.nodes.get(m.to)?.step(now, { kind: 'receive', from: m.from, msg: m.msg })
      }
    }
    throw new Error('network did not settle')
  }
  tick(now: number) {
    for (const n of this.nodes.values()) n.step(now, { kind: 'tick' })
    this.settle(now)
  }
  leaders(now: number) {
    return [...this.nodes.values()].filter((n) => n.view(now).role === 'leader').map((n) => n.id)
  }
}

describe('raft machine', () => {
  test('a single voter elects itself at its first timeout', () => {
    const a = node('a', [{ id: 'a' }])
    a.step(0, { kind: 'tick' })
    assert.equal(a.view(0).role, 'follower')
    a.step(100, { kind: 'tick' })
    const v = a.view(100)
    assert.equal(v.role, 'leader')
    assert.equal(v.term, 1)
    assert.equal(v.isLeader, true)
    assert.deepEqual(a.ready().persist, { term: 1, votedFor: 'a' })
  })

  test('pre-vote then vote: the first node to time out wins term 1 and the others follow', () => {
    const a = node('a', three, { random: () => 0 })
    const b = node('b', three, { random: () => 0.9 })
    const c = node('c', three, { random: () => 0.9 })
    const net = new Net([a, b, c])
    net.connectAll(0)
    net.tick(0)
    net.tick(100)
    assert.deepEqual(net.leaders(100), ['a'])
    assert.equal(b.view(100).leader?.id, 'a')
    assert.equal(c.view(100).leader?.id, 'a')
    assert.equal(a.view(100).term, 1)
    const kinds = net.log.map((m) => m.msg.t)
    assert.ok(kinds.indexOf('prevote') < kinds.indexOf('vote'), 'pre-vote comes before the real vote')
    // No voter had promised anyone else anything, so the acks of the first heartbeat grant the lease.
    assert.equal(a.view(100).isLeader, true, 'acks of the first heartbeat grant the lease')
  })

  test('the lease runs out before any follower may vote for someone else', () => {
    const [a, b, c] = [
      node('a', three),
      node('b', three, { random: () => 0.5 }),
      node('c', three, { random: () => 0.5 }),
    ]
    const net = new Net([a, b, c])
    net.connectAll(0)
    net.tick(0)
    net.tick(100) // a leads
    for (let t = 120; t <= 200; t += 20) net.tick(t) // b and c acked the heartbeat of 200
    net.cut.add('a')
    // The lease is electionTimeoutMin × (1 − 2 × drift) = 90 ms from the acked heartbeat.
    assert.equal(a.view(289).isLeader, true)
    assert.equal(a.view(289).leaseExpiresAt, 290, 'the driver is told when to look again')
    assert.equal(a.view(290).isLeader, false)
    assert.equal(a.view(290).leaseExpiresAt, undefined)
    // b and c refuse to vote until the minimum election timeout has passed since they heard a.
    b.step(299, { kind: 'receive', from: 'c', msg: { t: 'vote', term: 2, transfer: false } })
    assert.equal(b.view(299).term, 1, 'a follower in lease ignores a vote request')
    assert.deepEqual(b.ready().messages, [])
  })

  test('check-quorum: a cut-off leader steps down within the minimum election timeout', () => {
    const [a, b, c] = [
      node('a', three),
      node('b', three, { random: () => 0.5 }),
      node('c', three, { random: () => 0.5 }),
    ]
    const net = new Net([a, b, c])
    net.connectAll(0)
    net.tick(0)
    net.tick(100)
    net.cut.add('a')
    for (let t = 120; t <= 200; t += 20) net.tick(t)
    assert.equal(a.view(200).role, 'follower')
  })

  test('pre-vote: a node returning from isolation does not raise its term or depose the leader', () => {
    const [a, b, c] = [
      node('a', three),
      node('b', three, { random: () => 0.5 }),
      node('c', three, { random: () => 0.99 }),
    ]
    const net = new Net([a, b, c])
    net.connectAll(0)
    net.tick(0)
    net.tick(100)
    net.cut.add('c')
    for (let t = 120; t <= 1000; t += 20) net.tick(t)
    assert.equal(c.view(1000).term, 1, 'isolated c never raised its term')
    assert.equal(c.view(1000).role, 'candidate')
    net.cut.delete('c')
    for (let t = 1020; t <= 1100; t += 20) net.tick(t)
    assert.deepEqual(net.leaders(1100), ['a'])
    assert.equal(a.view(1100).term, 1)
    assert.equal(c.view(1100).leader?.id, 'a')
  })

  test('a node never votes twice in one term, even after a restart from its hard state', () => {
    const b = node('b', three)
    b.step(0, { kind: 'receive', from: 'a', msg: { t: 'vote', term: 5, transfer: false } })
    const first = b.ready()
    assert.deepEqual(first.persist, { term: 5, votedFor: 'a' })
    // A node that just started cannot know whether it acked a leader a moment before: it says so.
    assert.deepEqual(first.messages, [
      { to: 'a', msg: { t: 'vote-resp', term: 5, granted: true, promiseMs: 100 } },
    ])
    const restarted = node('b', three, { hardState: first.persist })
    restarted.step(1, { kind: 'receive', from: 'c', msg: { t: 'vote', term: 5, transfer: false } })
    assert.deepEqual(restarted.ready().messages, [
      { to: 'c', msg: { t: 'vote-resp', term: 5, granted: false } },
    ])
  })

  test('observers follow the leader but never vote or campaign', () => {
    const members: RaftMember[] = [...three, { id: 'o', kind: 'observer' }]
    const o = node('o', members)
    assert.equal(o.view(0).role, 'observer')
    o.step(0, { kind: 'tick' })
    o.step(10_000, { kind: 'tick' })
    assert.equal(o.view(10_000).role, 'observer')
    assert.deepEqual(
      o.ready().messages.filter((m) => m.msg.t !== 'hello'),
      [],
    )
    o.step(10_001, { kind: 'receive', from: 'a', msg: { t: 'vote', term: 3, transfer: false } })
    assert.deepEqual(o.ready().messages, [])
    o.step(10_002, { kind: 'receive', from: 'a', msg: { t: 'hb', term: 3, seq: 7 } })
    assert.equal(o.view(10_002).leader?.id, 'a')
    assert.deepEqual(o.ready().messages, [{ to: 'a', msg: { t: 'hb-resp', term: 3, seq: 7, ack: true } }])
  })

  test('resign hands over with timeout-now and the successor wins the next term at once', () => {
    const [a, b, c] = [
      node('a', three),
      node('b', three, { random: () => 0.5 }),
      node('c', three, { random: () => 0.5 }),
    ]
    const net = new Net([a, b, c])
    net.connectAll(0)
    net.tick(0)
    net.tick(100)
    net.tick(120)
    a.step(121, { kind: 'resign' })
    assert.equal(a.view(121).isLeader, false, 'the old leader drops its lease before the successor can win')
    net.settle(121)
    const leaders = net.leaders(121)
    assert.equal(leaders.length, 1)
    assert.notEqual(leaders[0], 'a')
    assert.equal(net.nodes.get(leaders[0]!)!.view(121).term, 2)
    assert.equal(a.view(121).leader?.id, leaders[0])
  })

  test('priority: a healthy higher-priority voter takes over through a hand-over', () => {
    const members: RaftMember[] = [{ id: 'a' }, { id: 'b', priority: 10 }, { id: 'c' }]
    const [a, b, c] = [
      node('a', members),
      node('b', members, { random: () => 0.9 }),
      node('c', members, { random: () => 0.9 }),
    ]
    const net = new Net([a, b, c])
    net.connectAll(0)
    net.tick(0)
    net.tick(100)
    assert.deepEqual(net.leaders(100), ['a'])
    for (let t = 120; t <= 600; t += 20) net.tick(t)
    assert.deepEqual(net.leaders(600), ['b'])
  })

  test('when the leader process is gone, the best-ranked survivor campaigns at once', () => {
    const [a, b, c] = [
      node('a', three),
      node('b', three, { random: () => 0.5 }),
      node('c', three, { random: () => 0.5 }),
    ]
    const net = new Net([a, b, c])
    net.connectAll(0)
    net.tick(0)
    net.tick(100)
    net.cut.add('a')
    b.step(130, { kind: 'peerUnreachable', peer: 'a' })
    c.step(130, { kind: 'peerUnreachable', peer: 'a' })
    net.settle(130)
    assert.deepEqual(
      net.leaders(130).filter((id) => id !== 'a'),
      ['b'],
    )
  })

  test('a pre-vote refused while the leader seemed alive is granted once its process is found gone', () => {
    const [a, b, c] = [
      node('a', three),
      node('b', three, { random: () => 0.5 }),
      node('c', three, { random: () => 0.5 }),
    ]
    const net = new Net([a, b, c])
    net.connectAll(0)
    net.tick(0)
    net.tick(100)
    net.cut.add('a')
    // b notices the crash first; c still follows a and refuses b's pre-vote.
    b.step(130, { kind: 'peerUnreachable', peer: 'a' })
    net.settle(130)
    assert.equal(b.view(130).role, 'candidate', 'b is still a pre-candidate')
    assert.equal(b.view(130).term, 1)
    // A millisecond later c notices too, and grants the deferred pre-vote without b asking again.
    c.step(131, { kind: 'peerUnreachable', peer: 'a' })
    net.settle(131)
    assert.deepEqual(
      net.leaders(131).filter((id) => id !== 'a'),
      ['b'],
    )
    assert.equal(b.view(131).term, 2)
  })

  test('a hand-over notice keeps the other followers from competing with the successor', () => {
    const four: RaftMember[] = [{ id: 'a' }, { id: 'b' }, { id: 'c' }, { id: 'd' }]
    const [a, b, c, d] = [
      node('a', four),
      node('b', four, { random: () => 0.5 }),
      node('c', four, { random: () => 0.5 }),
      node('d', four, { random: () => 0.5 }),
    ]
    const net = new Net([a, b, c, d])
    net.connectAll(0)
    net.tick(0)
    net.tick(100)
    // Only d acks the newest heartbeat, so d is the successor and b, the best-ranked of the others,
    // would campaign at once on losing the leader if nothing told it about the hand-over.
    net.cut.add('b').add('c')
    net.tick(120)
    net.cut.clear()
    a.step(121, { kind: 'stop', handover: true })
    const out = a.ready().messages
    const target = out.find((m) => m.msg.t === 'timeout-now')?.to
    assert.equal(target, 'd', 'the leader names the freshest voter as successor')
    const others = [b, c, d].filter((n) => n.id !== target)
    for (const m of out)
      if (m.to !== target) net.nodes.get(m.to)?.step(121, { kind: 'receive', from: 'a', msg: m.msg })
    // The leader's connection drops before the successor's vote request arrives.
    net.cut.add('a')
    for (const n of others) n.step(122, { kind: 'peerUnreachable', peer: 'a' })
    for (const n of others) {
      assert.equal(n.view(122).role, 'follower', `${n.id} does not campaign against the successor`)
      assert.ok(!n.ready().messages.some((m) => m.msg.t === 'prevote'))
    }
    net.nodes
      .get(target)
      ?.step(123, { kind: 'receive', from: 'a', msg: { t: 'timeout-now', term: 1, waitMs: 0 } })
    net.settle(123)
    assert.deepEqual(
      net.leaders(123).filter((id) => id !== 'a'),
      [target],
    )
    assert.equal(net.nodes.get(target)?.view(123).term, 2)
  })

  test('a successor elected on a wrong peerUnreachable hint claims no lease while the old one may run', () => {
    // Found by the simulator (ballot sim --scenario false-unreachable --seed 1): followers told, wrongly,
    // that the leader's process was gone forgot their promise to it and elected a successor whose
    // isLeader() was true while the cut-off leader's lease still ran.
    const [a, b, c] = [
      node('a', three),
      node('b', three, { random: () => 0.5 }),
      node('c', three, { random: () => 0.5 }),
    ]
    const net = new Net([a, b, c])
    net.connectAll(0)
    net.tick(0)
    net.tick(100)
    for (let t = 120; t <= 200; t += 20) net.tick(t) // a holds a lease from the acks of 200, to 290
    net.cut.add('a') // a is alive and leading, but cut off
    b.step(210, { kind: 'peerUnreachable', peer: 'a' })
    c.step(210, { kind: 'peerUnreachable', peer: 'a' })
    net.settle(210)
    assert.deepEqual(net.leaders(210).sort(), ['a', 'b'], 'b wins at once on the hint; a has not heard')
    for (let t = 210; t < 290; t += 5) {
      assert.equal(a.view(t).isLeader, true)
      assert.equal(b.view(t).isLeader, false, `both would be leader at ${t}`)
    }
    assert.ok(b.ready().deadline <= 310, 'b wakes when its lease may start')
    for (let t = 230; t <= 330; t += 20) net.tick(t)
    assert.equal(a.view(330).isLeader, false)
    assert.equal(b.view(330).isLeader, true, 'the successor leads once the old lease is over')
  })

  test('a voter restarted from its hard state reports a promise it may have made, and the winner waits', () => {
    // b restarts (term 1 on disk) and at once votes for c: it cannot know whether it acked a leader
    // just before it went down, so it reports electionTimeoutMin of promise left.
    const b = node('b', three, { hardState: { term: 1 } })
    const c = node('c', three, { hardState: { term: 1 } })
    b.step(0, { kind: 'tick' })
    b.step(5, { kind: 'receive', from: 'c', msg: { t: 'vote', term: 2, transfer: false } })
    const resp = b.ready().messages.find((m) => m.msg.t === 'vote-resp')?.msg
    assert.deepEqual(resp, { t: 'vote-resp', term: 2, granted: true, promiseMs: 95 })
    c.step(0, { kind: 'tick' })
    c.step(5, { kind: 'receive', from: 'a', msg: { t: 'hb', term: 1, seq: 1 } }) // c promises a too
    c.step(5, { kind: 'peerUnreachable', peer: 'a' })
    c.step(6, { kind: 'receive', from: 'b', msg: { t: 'prevote-resp', term: 2, granted: true } })
    c.step(7, { kind: 'receive', from: 'b', msg: resp as RaftMessage })
    assert.equal(c.view(7).role, 'leader')
    assert.ok(c.ready().deadline <= 113, 'c wakes when its lease may start')
    // b acks every heartbeat c sends (c ticks at each deadline it asks for).
    for (let t = 7; t <= 110; t = Math.min(c.ready().deadline, 110.5)) {
      c.step(t, { kind: 'tick' })
      for (const m of c.ready().messages)
        if (m.to === 'b' && m.msg.t === 'hb')
          c.step(t, { kind: 'receive', from: 'b', msg: { t: 'hb-resp', term: 2, seq: m.msg.seq, ack: true } })
      if (t === 110.5) break
    }
    // 95 ms by b's clock is at most 95 × 1.05 / 0.95 ≈ 105 ms by c's: c's lease starts at 7 + 105.
    assert.equal(c.view(111).isLeader, false, "no lease while b's promise may still hold")
    assert.equal(c.view(111).leaseStartsAt?.toFixed(1), '112.0', 'the view says when it will start')
    assert.equal(c.view(113).isLeader, true, 'then the fresh acks count')
  })

  test('check-quorum acts on a tick at exactly the deadline it asked for', () => {
    // Found by the simulator: with acks sent at 120.7, (120.7 + 100) - 120.7 < 100 in floating point, so
    // a leader woken at its check-quorum deadline did nothing and asked for the same deadline again.
    const [a, b, c] = [
      node('a', three),
      node('b', three, { random: () => 0.5 }),
      node('c', three, { random: () => 0.5 }),
    ]
    const net = new Net([a, b, c])
    net.connectAll(0)
    net.tick(0)
    net.tick(100)
    net.tick(120.7) // a heartbeat sent and acked at 120.7
    net.cut.add('a')
    let wakes = 0
    for (let d = a.ready().deadline; d <= 230 && wakes < 50; d = a.ready().deadline) {
      a.step(d, { kind: 'tick' })
      wakes++
    }
    assert.ok(wakes < 50, 'the leader makes progress at each deadline')
    assert.equal(a.view(230).role, 'follower', 'check-quorum stepped the cut-off leader down')
  })

  test('one flaky link deposes nobody: the others still follow the leader and refuse the pre-vote', () => {
    const [a, b, c] = [
      node('a', three),
      node('b', three, { random: () => 0.5 }),
      node('c', three, { random: () => 0.5 }),
    ]
    const net = new Net([a, b, c])
    net.connectAll(0)
    net.tick(0)
    net.tick(100)
    b.step(130, { kind: 'peerUnreachable', peer: 'a' })
    net.settle(130)
    assert.deepEqual(net.leaders(130), ['a'])
    assert.equal(a.view(130).term, 1)
  })
})
