// Property-based simulation: fast-check draws fault schedules (any mix, any overlap, any node) and the
// run seed; every run must keep every invariant. With the deliberately broken raft, fast-check must find
// a counterexample and shrink it to a small one.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { type Fault, raftAdapter, runSimulation, type Scenario } from '../src/sim/index.js'

const time = fc.double({ min: 0, max: 8000, noNaN: true })
const duration = fc.double({ min: 5, max: 6000, noNaN: true })
const slot = fc.nat({ max: 6 })

const fault: fc.Arbitrary<Fault> = fc.oneof(
  fc.record(
    {
      kind: fc.constant('crash' as const),
      at: time,
      node: slot,
      restartAfter: fc.double({ min: 1, max: 4000, noNaN: true }),
    },
    { requiredKeys: ['kind', 'at', 'node'] },
  ),
  fc.record({
    kind: fc.constant('partition' as const),
    at: time,
    duration,
    groups: fc.array(fc.nat({ max: 2 }), { maxLength: 6 }),
    bridge: fc.option(slot, { nil: undefined }),
  }),
  fc.record({
    kind: fc.constant('one-way' as const),
    at: time,
    duration,
    from: fc.array(slot, { minLength: 1, maxLength: 3 }),
    to: fc.array(slot, { minLength: 1, maxLength: 3 }),
  }),
  fc.record({ kind: fc.constant('isolate' as const), at: time, duration, node: slot }),
  fc.record({ kind: fc.constant('resign' as const), at: time, node: slot }),
  fc.record(
    {
      kind: fc.constant('stop' as const),
      at: time,
      node: slot,
      restartAfter: fc.double({ min: 1, max: 4000, noNaN: true }),
    },
    { requiredKeys: ['kind', 'at', 'node'] },
  ),
  fc.record({ kind: fc.constant('pause' as const), at: time, duration, node: slot }),
  fc.record({
    kind: fc.constant('slow' as const),
    at: time,
    duration,
    node: slot,
    extraMs: fc.double({ min: 0, max: 800, noNaN: true }),
  }),
  fc.record({
    kind: fc.constant('false-unreachable' as const),
    at: time,
    node: slot,
    peer: slot,
    reconnectAfter: fc.double({ min: 1, max: 1000, noNaN: true }),
  }),
  fc.record({
    kind: fc.constant('lossy' as const),
    at: time,
    duration,
    loss: fc.double({ min: 0, max: 0.5, noNaN: true }),
    duplicate: fc.double({ min: 0, max: 0.3, noNaN: true }),
    reorder: fc.double({ min: 0, max: 0.5, noNaN: true }),
  }),
)

const runCase = fc.record({
  seed: fc.nat(),
  voters: fc.integer({ min: 3, max: 5 }),
  observers: fc.integer({ min: 0, max: 1 }),
  scenario: fc.record({
    name: fc.constant('generated'),
    faults: fc.array(fault, { maxLength: 6 }),
    drift: fc.constantFrom('none' as const, 'within' as const, 'extreme' as const),
  }) as fc.Arbitrary<Scenario>,
})

describe('simulator: property-based fault schedules', () => {
  test('any generated fault schedule keeps every raft invariant', () => {
    fc.assert(
      fc.property(runCase, (c) => {
        const r = runSimulation(raftAdapter(), c)
        assert.deepEqual(
          r.violations,
          [],
          `seed ${c.seed}: ${JSON.stringify(c.scenario.faults)}\n${r.trace.join('\n')}`,
        )
      }),
      { numRuns: 1000, seed: 20261123 },
    )
  })

  test('with the broken raft, fast-check finds a counterexample and shrinks it to a small one', (t) => {
    const unsafe = raftAdapter({ unsafe: true })
    const out = fc.check(
      fc.property(runCase, (c) => runSimulation(unsafe, c).violations.length === 0),
      { numRuns: 2000, seed: 20261123 },
    )
    assert.ok(out.failed, 'the unsafe variant must break an invariant somewhere')
    const [c] = out.counterexample ?? []
    assert.ok(c)
    t.diagnostic(`shrunk after ${out.numShrinks} shrinks: ${JSON.stringify(c)}`)
    assert.ok(c.scenario.faults.length <= 2, `shrunk to ${c.scenario.faults.length} faults`)
    const r = runSimulation(unsafe, c)
    assert.ok(r.violations.length > 0, 'the shrunk case still fails, and replays')
  })
})
