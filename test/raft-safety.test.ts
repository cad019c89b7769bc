// The holes a review found in the raft machine's lease and fencing (issue 9), each replayed input by
// input on the pure machine. Each of these failed on the machine before the fix (see each test's note).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { Outgoing } from '../src/protocol/machine.js'
import { RaftMachine, type RaftMachineOptions } from '../src/protocol/raft/machine.js'
import type { RaftMessage } from '../src/protocol/raft/messages.js'
import { FAST_TIMING, type RaftMember } from '../src/protocol/raft/options.js'

const T = FAST_TIMING // heartbeat 20, election 100-200, lease 90
const three: RaftMember[] = [{ id: 'a' }, { id: 'b' }, { id: 'c' }]

function node(id: string, extra: Partial<RaftMachineOptions> = {}) {
  return new RaftMachine({ id, members: three, timing: T, random: () => 0.5, ...extra })
}

/** Delivers every queued message at `now`, except over cut nodes, until nothing is left. */
class Net {
  readonly nodes = new Map<string, RaftMachine>()
  readonly cut = new Set<string>()
  constructor(machines: RaftMachine[]) {
    for (const m of machines) this.nodes.set(m.id, m)
  }
  connectAll(now: number) {
    for (const a of this.nodes.values())
      for (const b of this.nodes.values()) if (a !== b) a.step(now, { kind: 'peerConnected', peer: b.id })
    this.settle(now)
  }
  settle(now: number, hold?: (m: { from: string } & Outgoing<RaftMessage>) => boolean) {
    for (let i = 0; i < 1000; i++) {
      const queue: Array<{ from: string } & Outgoing<RaftMessage>> = []
      for (const n of this.nodes.values())
        for (const m of n.ready().messages) queue.push({ from: n.id, ...m })
      if (queue.length === 0) return
      for (const m of queue) {
        if (this.cut.has(m.from) || this.cut.has(m.to) || hold?.(m)) continue
        this.nodes.get(m.to)?.step(now, { kind: 'receive', from: m.from, msg: m.msg })
      }
    }
    throw new Error('network did not settle')
  }
  tick(now: number) {
    for (const n of this.nodes.values()) n.step(now, { kind: 'tick' })
    this.settle(now)
  }
  /** Ticks every 5 ms from `from` to `to`. */
  run(from: number, to: number) {
    for (let t = from; t <= to; t += 5) this.tick(t)
  }
  leasing(now: number) {
    return [...this.nodes.values()].filter((n) => n.view(now).isLeader).map((n) => n.id)
  }
}

/** a leads term 1 with a lease renewed up to `until`. */
function trioLedByA(until: number) {
  const a = node('a', { random: () => 0 })
  const [b, c] = [node('b'), node('c')]
  const net = new Net([a, b, c])
  net.connectAll(0)
  net.run(0, until)
  assert.deepEqual(net.leasing(until), ['a'])
  return { a, b, c, net }
}

describe('raft safety holes (issue 9)', () => {
  test('hole 1: a hand-over right after a win on wrong hints still waits out the older lease', () => {
    // Before the fix: c won term 3 by TimeoutNow, the transfer votes carried no promise remainder, and
    // c's isLeader() was true while a's term-1 lease ran (the simulator's seed 16228, fast, 3 voters).
    const { a, b, c, net } = trioLedByA(120)
    const aLeaseEnd = a.view(120).leaseExpiresAt as number
    net.cut.add('a') // a is alive and leading, but b and c are told, wrongly, that its process is gone
    b.step(121, { kind: 'peerUnreachable', peer: 'a' })
    c.step(121, { kind: 'peerUnreachable', peer: 'a' })
    net.settle(121)
    const winner = [b, c].find((n) => n.view(121).role === 'leader') as RaftMachine
    const other = winner === b ? c : b
    assert.equal(winner.view(121).term, 2)
    assert.equal(winner.view(121).isLeader, false, 'the winner waits for the broken promises')
    net.tick(122) // a heartbeat of term 2: the other acks it, promising the winner
    winner.step(123, { kind: 'resign' })
    net.settle(123)
    assert.equal(other.view(123).role, 'leader', 'the hand-over made a new leader')
    assert.equal(other.view(123).term, 3)
    for (let t = 123; t < aLeaseEnd; t += 1) {
      net.tick(t)
      assert.deepEqual(net.leasing(t), ['a'], `at ${t} only a may lead (its lease runs to ${aLeaseEnd})`)
    }
    net.run(aLeaseEnd, 400)
    assert.deepEqual(net.leasing(400), [other.id], 'then the successor leads')
  })

  test('hole 2: an ack of a heartbeat never sent renews nothing, and a cut-off leader steps down', () => {
    // Before the fix: one hb-resp {sent: 1e9} kept isLeader() true for good and check-quorum silent.
    const { a, net } = trioLedByA(120)
    net.cut.add('a')
    for (const seq of [0, 1e9, Number.MAX_SAFE_INTEGER])
      a.step(121, { kind: 'receive', from: 'b', msg: { t: 'hb-resp', term: 1, seq, ack: true } })
    for (let t = 121; t <= 100_000; t += 50) a.step(t, { kind: 'tick' })
    assert.equal(a.view(100_000).isLeader, false)
    assert.notEqual(a.view(100_000).role, 'leader', 'check-quorum fired')
    assert.ok((a.view(215).isLeader ?? true) === false, 'the lease ended on time')
  })

  test("hole 3: a reply to an older term's heartbeat renews nothing in a newer term", () => {
    // Before the fix: a term-1 heartbeat delayed across hand-overs a→b→a was answered with term 3 and
    // renewed a's term-3 lease from a follower that had promised nothing in term 3.
    const { a, b, c, net } = trioLedByA(120)
    const old: Array<{ to: string; msg: RaftMessage }> = []
    const hbAt = a.ready().deadline
    a.step(hbAt, { kind: 'tick' }) // a term-1 heartbeat that c will get late
    for (const m of a.ready().messages) if (m.to === 'c' && m.msg.t === 'hb') old.push(m)
    assert.equal(old.length, 1)
    // a → b → a: two hand-overs
    a.step(hbAt + 1, { kind: 'resign' })
    net.settle(hbAt + 1)
    assert.equal(b.view(hbAt + 1).role, 'leader')
    b.step(hbAt + 2, { kind: 'resign' })
    net.settle(hbAt + 2, (m) => m.to === 'c' || m.from === 'c') // c hears none of it
    assert.equal(a.view(hbAt + 2).role, 'leader')
    assert.equal(a.view(hbAt + 2).term, 3)
    // c, now in term 3 by some vote, gets the old heartbeat and answers it.
    c.step(hbAt + 3, { kind: 'receive', from: 'b', msg: { t: 'vote', term: 3, transfer: true } })
    c.ready()
    c.step(hbAt + 4, { kind: 'receive', from: 'a', msg: old[0]?.msg as RaftMessage })
    const reply = c.ready().messages.find((m) => m.msg.t === 'hb-resp')?.msg
    assert.ok(reply?.t === 'hb-resp')
    assert.deepEqual({ term: reply.term, ack: reply.ack }, { term: 3, ack: false }, 'a refusal, not an ack')
    // Even an ack (a faulty peer) naming that term-1 heartbeat counts for nothing in term 3.
    net.cut.add('b')
    a.step(hbAt + 5, { kind: 'receive', from: 'c', msg: { ...reply, ack: true } })
    assert.equal(a.view(hbAt + 5).isLeader, false, 'no majority acked a heartbeat of term 3')
  })

  test('hole 8: a term near 2^53 from the wire is refused, and elections go on', () => {
    // Before the fix: the leader adopted term 2^53 − 1; every later pre-vote (2^53) failed the peers'
    // schema, and the cluster never elected again.
    const { a, net } = trioLedByA(120)
    a.step(121, {
      kind: 'receive',
      from: 'b',
      msg: { t: 'hb-resp', term: Number.MAX_SAFE_INTEGER, seq: 0, ack: false },
    })
    const ready = a.ready()
    assert.equal(a.view(121).term, 1, 'the term is unchanged')
    assert.equal(a.view(121).role, 'leader')
    assert.deepEqual(
      ready.refused?.map((r) => [r.peer, r.reason]),
      [['b', 'term-jump']],
    )
    net.settle(121)
    a.step(122, { kind: 'resign' })
    net.settle(122)
    net.run(125, 400)
    assert.equal(net.leasing(400).length, 1, 'a new leader leads')
  })

  test('hole 10: a vote claiming an hour of broken promise delays the lease by electionTimeoutMin at most', () => {
    // Before the fix: promiseMs up to 3,600,000 was believed, and the winner's isLeader() stayed false
    // for an hour while everyone followed it.
    const b = node('b', { random: () => 0 })
    b.step(0, { kind: 'tick' })
    b.step(300, { kind: 'tick' }) // pre-vote
    b.step(300, { kind: 'receive', from: 'c', msg: { t: 'prevote-resp', term: 1, granted: true } })
    b.step(301, {
      kind: 'receive',
      from: 'c',
      msg: { t: 'vote-resp', term: 1, granted: true, promiseMs: 3_600_000 },
    })
    assert.equal(b.view(301).role, 'leader')
    // c acks every heartbeat b sends from here on.
    let first: number | undefined
    for (let t = 301; t <= 450 && first === undefined; t += 1) {
      b.step(t, { kind: 'tick' })
      for (const m of b.ready().messages)
        if (m.to === 'c' && m.msg.t === 'hb')
          b.step(t, { kind: 'receive', from: 'c', msg: { t: 'hb-resp', term: 1, seq: m.msg.seq, ack: true } })
      if (b.view(t).isLeader) first = t
    }
    // Capped at electionTimeoutMin (100) by c's clock: at most 100 × 1.05 / 0.95 ≈ 110.5 by b's.
    assert.ok(first !== undefined && first <= 301 + 111, `the lease started at ${first}`)
  })

  test('hole 11: a peer that counts another set of voters is refused, naming both lists', () => {
    // Before the fix: the hello said nothing of membership, and nodes with different lists counted
    // different majorities.
    const a = node('a')
    a.step(0, { kind: 'tick' })
    a.step(1, {
      kind: 'receive',
      from: 'b',
      msg: { t: 'hello', term: 0, kind: 'voter', tags: {}, voters: ['a', 'b', 'c', 'd', 'e'] },
    })
    a.step(2, { kind: 'receive', from: 'b', msg: { t: 'vote', term: 1, transfer: false } })
    const ready = a.ready()
    assert.ok(!ready.messages.some((m) => m.msg.t === 'vote-resp'), 'no vote for a peer with another list')
    assert.equal(ready.refused?.length, 2)
    assert.match(ready.refused?.[0]?.detail ?? '', /\[a, b, c, d, e\].*\[a, b, c\]/)
    // Restarted with the same list, it is heard again.
    a.step(3, {
      kind: 'receive',
      from: 'b',
      msg: { t: 'hello', term: 0, kind: 'voter', tags: {}, voters: ['a', 'b', 'c'] },
    })
    a.step(300, { kind: 'receive', from: 'b', msg: { t: 'vote', term: 1, transfer: false } })
    assert.ok(a.ready().messages.some((m) => m.msg.t === 'vote-resp' && m.msg.granted))
  })
})
