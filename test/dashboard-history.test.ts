/**
 * The dashboard's timeline, without a browser: leaderships open and close as an observer sees leaders
 * come and go; each records how it followed the one before (election or hand-over) and the time with no
 * leader in between, measured from when the old leadership really ended when the observer knows that.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LeadershipHistory } from '../src/server/dashboard/history.js'

test('leaderships: first, an election after the leader fell silent, a hand-over, bounded', () => {
  const h = new LeadershipHistory(3)
  assert.equal(h.observe(1000, undefined), false, 'nobody leading, nothing to record')
  assert.equal(h.observe(1000, { id: 'a', token: 1n, since: 900 }), true)
  assert.equal(h.observe(1500, { id: 'a', token: 1n, since: 900 }), false, 'the same leadership again')
  // a fell silent at 2000 (last heard), the observer noticed at 2300; b was known from 2400.
  h.observe(2300, undefined, { how: 'election', at: 2000 })
  h.observe(2400, { id: 'b', token: 2n })
  // b hands over to c directly.
  h.observe(3000, { id: 'c', token: 3n }, { how: 'hand-over' })
  assert.deepEqual(h.list(), [
    { leader: 'a', token: '1', from: 900, to: 2000, after: 'first', gapMs: undefined },
    { leader: 'b', token: '2', from: 2400, to: 3000, after: 'election', gapMs: 400 },
    { leader: 'c', token: '3', from: 3000, after: 'hand-over', gapMs: 0 },
  ])
  // The same leader with a new token is a new leadership; the oldest record goes.
  h.observe(4000, { id: 'c', token: 4n })
  assert.deepEqual(
    h.list().map((r) => `${r.leader}${r.token}:${r.after}`),
    ['b2:election', 'c3:hand-over', 'c4:election'],
  )
  assert.equal(h.current?.token, '4')
})

test('an end reported later than the change is not moved before the leadership began', () => {
  const h = new LeadershipHistory()
  h.observe(1000, { id: 'a', token: 1n })
  h.observe(1100, undefined, { how: 'election', at: 500 })
  assert.equal(h.list()[0]?.to, 1000)
})
