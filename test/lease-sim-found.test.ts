// What the lease simulator found, kept as tests: each bug as the shortest input sequence that shows it
// on the pure machine, and the seed that found it, replayed.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { LineEntry } from '../src/lease/backend.js'
import { type LeaseInput, LeaseMachine, type LeaseRequest } from '../src/lease/machine.js'
import { resolveLeaseTiming } from '../src/lease/options.js'
import { leaseAdapter, runSimulation } from '../src/sim/index.js'

const timing = resolveLeaseTiming({ ttlMs: 3000, maxClockDrift: 0.05, safetyMarginMs: 100 })

/** An entry under the candidate's session key (one key per session, as etcd's election names it). */
function entry(id: string, token: number, key = `e/${id}`): LineEntry {
  return { id, key, order: BigInt(token), token: BigInt(token) }
}

class Harness {
  readonly m = new LeaseMachine({ id: 'me', timing, random: () => 0.5 })
  requests: LeaseRequest[] = []
  errors: Error[] = []
  step(now: number, input: LeaseInput) {
    this.m.step(now, input)
    const r = this.m.ready()
    this.requests.push(...r.requests)
    this.errors.push(...r.errors)
  }
  take(kind: LeaseRequest['kind']): LeaseRequest {
    const r = this.requests.shift()
    assert.equal(r?.kind, kind, `expected ${kind}, got ${JSON.stringify(r)}`)
    return r as LeaseRequest
  }
}

describe('found by the lease simulator', () => {
  test('a follower that briefly sees its own left entry at the head still names the leader after (same leadership, same token)', () => {
    // The candidate leads on e/me@2, resigns (leave, then join again under the same session key). A read
    // of the line that the store answered before the leave arrives after the leave's answer: it shows
    // e/me@2 at the head (the etcd backend's refresh can race its own leave like this). Then the line
    // of the join shows a@3 leading. That is the leadership already reported before the stale line, on
    // the same token: it must be named again, not refused as "not above" itself for ever.
    const h = new Harness()
    const me = entry('me', 2)
    const a = entry('a', 3)
    h.step(0, { kind: 'start' })
    h.step(0, {
      kind: 'sessionOpened',
      seq: h.take('openSession').seq,
      sentAt: 0,
      session: { id: 's1', ttlMs: 3000 },
    })
    const join = h.take('join')
    h.step(1, { kind: 'line', entries: [me, a] })
    h.step(1, { kind: 'joined', seq: join.seq, entry: me })
    assert.equal(h.m.view(1).isLeader, true)
    h.step(2, { kind: 'resign' })
    h.step(3, { kind: 'left', seq: h.take('leave').seq })
    assert.equal(h.m.view(3).leader?.id, 'a', 'a leads once we left')
    const rejoin = h.take('join')
    h.step(4, { kind: 'line', entries: [me, a] }) // read before the leave, answered after it
    h.step(5, { kind: 'line', entries: [a, entry('me', 4)] })
    h.step(5, { kind: 'joined', seq: rejoin.seq, entry: entry('me', 4) })
    const v = h.m.view(5)
    assert.equal(v.leader?.id, 'a', 'the leader is named again')
    assert.equal(v.leader?.token, 3n)
    assert.equal(v.role, 'follower')
    assert.deepEqual(
      h.errors.map((e) => (e as { code?: string }).code),
      [],
      'naming the same leadership again is no token going backwards',
    )
    // A different leadership on a token not above the highest is still refused.
    h.step(6, { kind: 'line', entries: [entry('b', 1), entry('me', 4)] })
    assert.equal(h.m.view(6).leader, undefined)
    assert.equal((h.errors.at(-1) as { code?: string }).code, 'TOKEN_NOT_NEWER')
  })

  test('seed 581 (3 candidates, fast, mix): every live candidate names the leader after the heal', () => {
    const r = runSimulation(leaseAdapter({ timing: 'fast' }), { seed: 581, voters: 3, scenario: 'random' })
    assert.equal(r.scenario.name, 'mix')
    assert.deepEqual(r.violations, [])
  })

  test('seeds 2943 and 1396 (5 candidates, default): a leave applied late deletes nothing it does not mean', () => {
    for (const seed of [2943, 1396]) {
      const r = runSimulation(leaseAdapter(), { seed, voters: 5, scenario: 'random' })
      assert.deepEqual(r.violations, [], `seed ${seed}`)
      // With the delete unguarded (as the etcd and Consul recipes do it), the same runs overlap.
      const bad = runSimulation(leaseAdapter({ unsafeUnguardedLeave: true }), {
        seed,
        voters: 5,
        scenario: 'random',
      })
      assert.deepEqual(
        bad.violations.map((v) => v.invariant),
        ['lease'],
        `seed ${seed}`,
      )
    }
  })
})
