// The simulator on bully: thousands of seeded runs, every named scenario, the two-leader measurement,
// and proof that its checks can fail (a bully where the lowest wins, a restless bully).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { BullyMachine } from '../src/protocol/bully/machine.js'
import type { BullyHardState, BullyMessage } from '../src/protocol/bully/messages.js'
import { BULLY_TIMING_PROFILES, FAST_BULLY_TIMING } from '../src/protocol/bully/options.js'
import type { Input, ProtocolMachine } from '../src/protocol/machine.js'
import type { ProtocolAdapter } from '../src/sim/adapter.js'
import { bullyAdapter, runBatch, runSimulation, SCENARIO_NAMES, simPid } from '../src/sim/index.js'

/**
 * Bully's fencing promise, audited from outside the machines: no two leaderships ever share a token, and
 * each leadership's token is above every token its claimer could know of (causally: every message is
 * stamped, out of band, with the largest token its sender knew when it wrote it). Under a partition the two sides may
 * lead with tokens in either order, so the checker's global 'fencing' (each new token above every
 * earlier one anywhere) is not bully's promise; this is.
 */
function auditTokens(runs: number, seed: number, voters: number, timing?: string) {
  const found: string[] = []
  for (let s = seed; s < seed + runs; s++) {
    // The audit reads batches as machines make them; under a failing disk the simulator drops a batch
    // (and the leadership in it) after that, so such runs are left to the checker's own fencing check.
    const inRun: string[] = []
    const stamps = new WeakMap<object, number>()
    const known = new Map<string, number>() // survives restarts: bully persists its largest epoch
    const owner = new Map<number, string>()
    const leading = new Map<string, number | undefined>()
    const base = bullyAdapter({ timing })
    const audited: ProtocolAdapter<BullyMessage, BullyHardState> = {
      ...base,
      create: (node) => {
        const m = base.create(node)
        const id = m.id
        const wrapped: ProtocolMachine<BullyMessage, BullyHardState> = {
          id,
          view: (now) => m.view(now),
          step(now: number, input: Input<BullyMessage>) {
            // A stopped machine hears nothing, so learns nothing.
            if (input.kind === 'receive' && m.view(now).role !== 'stopped') {
              known.set(id, Math.max(known.get(id) ?? 0, stamps.get(input.msg) ?? 0))
            }
            m.step(now, input)
          },
          ready() {
            const r = m.ready()
            // What the sender knew when it wrote each message: what it knew before this batch (a
            // leadership the batch starts may come after some of its messages), or what the message
            // itself says.
            const before = known.get(id) ?? 0
            for (const o of r.messages) {
              const says = Math.max(
                o.msg.epoch,
                (o.msg.t === 'claim' || o.msg.t === 'hb' ? o.msg.max : 0) ?? 0,
              )
              stamps.set(o.msg, Math.max(before, says))
            }
            for (const t of r.transitions) {
              const token = t.role === 'leader' && t.leader?.id === id ? t.leader.term : undefined
              if (token !== undefined && leading.get(id) !== token) {
                const k = known.get(id) ?? 0
                if (token <= k)
                  inRun.push(`seed ${s}: ${id} leads with ${token}, not above ${k} it could know`)
                const other = owner.get(token)
                if (other !== undefined) inRun.push(`seed ${s}: ${other} and ${id} both led with ${token}`)
                owner.set(token, id)
                known.set(id, Math.max(k, token))
              }
              leading.set(id, token)
            }
            return r
          },
        }
        return wrapped
      },
    }
    const r = runSimulation(audited, { seed: s, voters, scenario: 'random' })
    if (!r.scenario.faults.some((f) => f.kind === 'disk-fail')) found.push(...inRun)
  }
  return found
}

describe('simulator: bully', () => {
  test('2,000 seeded runs, 5 nodes: every leadership has its own token, above every token its claimer could know of', () => {
    const found = auditTokens(2000, 1, 5)
    assert.deepEqual(found.slice(0, 5), [], `${found.length} broken`)
  })

  test('1,000 seeded runs, 3 nodes, fast timings: the same', () => {
    const found = auditTokens(1000, 50_000, 3, 'fast')
    assert.deepEqual(found.slice(0, 5), [], `${found.length} broken`)
  })

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
    assert.deepEqual(s.checked.sort(), ['fencing', 'liveness', 'stability'])
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

  test('the fencing check catches two leaderships with one token (nodes sharing an epoch slot)', () => {
    // Every pid is a multiple of 1000: all nodes claim in one epoch slot, so racing claims (a resign
    // against the end of a resign hold, two sides of a partition) can take the same epoch.
    const base = bullyAdapter()
    const oneSlot: ProtocolAdapter<BullyMessage, BullyHardState> = {
      ...base,
      create: (node) =>
        new BullyMachine({
          id: node.id,
          pid: simPid(node.id) * 1000,
          address: node.id,
          timing: base.timing.heartbeatIntervalMs === 20 ? FAST_BULLY_TIMING : BULLY_TIMING_PROFILES.default,
          peers: node.members.map((m) => ({ id: m.id })),
          hardState: node.persisted,
        }),
    }
    const s = runBatch(oneSlot, { seed: 1, runs: 3000, voters: 5, scenario: 'random' })
    assert.ok((s.violations.fencing ?? 0) > 0, JSON.stringify(s.violations))
  })
})
