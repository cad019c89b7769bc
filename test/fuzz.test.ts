/**
 * The fuzz path on every CI run (a few thousand seeded inputs; `npm run fuzz` runs a million and the live
 * processes): hostile frames through the frame decoder and codec into live raft and bully machines. No
 * exception escapes, no dropped or refused input changes its target, and every kind of input is made
 * and dropped for a reason the counters name.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CATEGORIES } from '../bench/fuzz/frames.js'
import { fuzzInProcess } from '../bench/fuzz/in-process.js'

test('seeded fuzz into raft and bully machines: nothing escapes, nothing invalid changes state', async () => {
  const seed = 20261130
  const report = await fuzzInProcess({ seed, frames: 8000, framesPerCluster: 2000, tickEvery: 100 })
  const why = `seed ${seed}: ${JSON.stringify([...report.exceptions, ...report.stateChanges].slice(0, 3))}`
  assert.deepEqual(report.exceptions, [], why)
  assert.deepEqual(report.stateChanges, [], why)
  assert.equal(report.frames, 8000)
  for (const c of CATEGORIES) assert.ok((report.byCategory[c]?.inputs ?? 0) > 0, `no ${c} input was made`)
  // Every check on the way in was exercised: the counters name each reason.
  for (const reason of [
    'oversized',
    'malformed',
    'version',
    'cluster',
    'auth',
    'replay',
    'schema',
    'unknown-peer',
  ])
    assert.ok(
      (report.dropped[reason] ?? 0) > 0,
      `nothing was dropped as ${reason}: ${JSON.stringify(report.dropped)}`,
    )
  // The four clusters (raft and bully, keyed and open) each ran, and the keyed ones kept their leader.
  assert.equal(report.clusters.length, 4)
  for (const c of report.clusters.filter((x) => x.config.endsWith('keyed')))
    assert.equal(c.leaderAtEnd, c.leaderAtStart, `${c.config} lost its leader to inputs a stranger sent`)
})
