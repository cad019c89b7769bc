// The simulator on bully: thousands of seeded runs, every named scenario, the two-leader measurement,
// and proof that its checks can fail (a bully where the lowest wins, a restless bully).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { BullyMachine } from '../src/protocol/bully/machine.js'
import type { BullyHardState, BullyMessage } from '../src/protocol/bully/messages.js'
import { FAST_BULLY_TIMING } from '../src/protocol/bully/options.js'
import type { ProtocolAdapter } from '../src/sim/adapter.js'
import { bullyAdapter, runBatch, runSimulation, SCENARIO_NAMES, simPid } from '../src/sim/index.js'

describe('simulator: bully', () => {
  test('2,000 seeded runs of the default fault mix, 5 nodes: the highest live node always ends up leading', (t) => {
    const s = runBatch(bullyAdapter(), { seed: 1, runs: 2000, voters: 5, scenario: 'random' })
    t.diagnostic(
      `runs/s ${s.runsPerSecond}; elections ${s.elections}; messages/election ${s.messagesPerElection}; after heal p50 ${s.timeToLeaderAfterHealMs.p50} p99 ${s.timeToLeaderAfterHealMs.p99} ms; two leaders in ${s.multiLeader?.runs} runs`,
    )
    assert.equal(
      s.failedRuns,
      0,
      `violations: ${JSON.stringify(s.violations)}, seeds ${s.failedSeeds.join(' ')}`,
    )
    assert.deepEqual(s.checked.sort(), ['liveness', 'stability'])
    assert.ok(s.elections >= s.runs, 'every run elects at least once')
    // Partitions give each side its own leader: measured, and not hidden.
    assert.ok((s.multiLeader?.runs ?? 0) > 100, 'some runs had two leaders at once')
  })

  test('1,000 seeded runs with 3 nodes, fast timings', () => {
    const s = runBatch(bullyAdapter({ timing: 'fast' }), {
      seed: 7,
      runs: 1000,
      voters: 3,
      scenario: 'random',
    })
    assert.equal(
      s.failedRuns,
      0,
      `violations: ${JSON.stringify(s.violations)}, seeds ${s.failedSeeds.join(' ')}`,
    )
  })

  for (const name of SCENARIO_NAMES) {
    test(`scenario ${name}: 50 runs, no violation`, () => {
      const s = runBatch(bullyAdapter(), { seed: 1000, runs: 50, voters: 5, scenario: name })
      assert.equal(
        s.failedRuns,
        0,
        `violations: ${JSON.stringify(s.violations)}, seeds ${s.failedSeeds.join(' ')}`,
      )
    })
  }

  test('when nothing fails: one claim in each run, no two leaders, no election after the first', () => {
    const s = runBatch(bullyAdapter(), { seed: 5, runs: 200, voters: 5, scenario: 'quiet' })
    assert.equal(s.failedRuns, 0)
    assert.equal(s.elections, s.runs, 'exactly one election per run (one round, even when all start at once)')
    assert.equal(s.multiLeader?.runs, 0)
  })

  test('a run replays exactly from its seed', () => {
    const run = () => {
      const lines: string[] = []
      runSimulation(bullyAdapter(), { seed: 9, voters: 5, scenario: 'mix', traceSink: (l) => lines.push(l) })
      return lines
    }
    const a = run()
    assert.ok(a.length > 100)
    assert.deepEqual(run(), a)
  })

  test('the liveness check catches a bully where the lowest node wins', () => {
    const base = bullyAdapter()
    const upsideDown: ProtocolAdapter<BullyMessage, BullyHardState> = {
      ...base,
      create: (node) =>
        new BullyMachine({
          id: node.id,
          pid: -simPid(node.id),
          address: node.id,
          timing: FAST_BULLY_TIMING,
          peers: node.members.map((m) => ({ id: m.id })),
        }),
    }
    const s = runBatch(upsideDown, { seed: 1, runs: 20, voters: 3, scenario: 'quiet' })
    assert.equal(s.violations.liveness, 20)
  })

  test('the stability check catches a bully whose followers time out between heartbeats', () => {
    const base = bullyAdapter()
    const restless: ProtocolAdapter<BullyMessage, BullyHardState> = {
      ...base,
      create: (node) =>
        new BullyMachine({
          id: node.id,
          pid: simPid(node.id),
          address: node.id,
          // A leader timeout shorter than the heartbeat interval: validation would refuse it.
          timing: { ...FAST_BULLY_TIMING, heartbeatIntervalMs: 100, leaderTimeoutMs: 50 },
          peers: node.members.map((m) => ({ id: m.id })),
        }),
    }
    const s = runBatch(restless, { seed: 1, runs: 20, voters: 3, scenario: 'quiet' })
    assert.ok((s.violations.stability ?? 0) > 0, JSON.stringify(s.violations))
  })
})
