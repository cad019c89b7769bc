// The lease driver in the deterministic simulator: real LeaseMachines against the store model (TTL
// sessions on the store's own clock, an ordered line, compare-and-set create and delete, watches), under
// every lease scenario; exact replay from a seed; and what the model must show: a paused leader's
// session expiring at the store while it sleeps, sessions expiring through an outage, requests applied
// while their replies are lost.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { describe, test } from 'node:test'
import { resolveLeaseTiming } from '../src/lease/options.js'
import {
  LEASE_SCENARIOS,
  leaseAdapter,
  leaseLivenessBoundMs,
  runBatch,
  runSimulation,
  type Scenario,
} from '../src/sim/index.js'

const CLI = new URL('../dist/cli/main.js', import.meta.url).pathname

/** The real time (ms) at the start of a trace line. */
const timeOf = (line: string) => Number(line.trim().split(/\s+/)[0])

describe('simulator: lease', () => {
  for (const [voters, runs] of [
    [3, 700],
    [5, 500],
    [7, 300],
  ] as const) {
    test(`${runs} seeded runs at ${voters} candidates (fast profile) break nothing`, (t) => {
      const s = runBatch(leaseAdapter({ timing: 'fast' }), { seed: 1, runs, voters, scenario: 'random' })
      t.diagnostic(
        `runs/s ${s.runsPerSecond}; leaderships ${s.elections}; usable leader after heal p50 ${s.timeToLeaderAfterHealMs.p50} p99 ${s.timeToLeaderAfterHealMs.p99} max ${s.timeToLeaderAfterHealMs.max} ms (bound ${s.livenessBoundMs}); expected ${JSON.stringify(s.expectedUnderOutOfBoundClocks)}`,
      )
      assert.equal(
        s.failedRuns,
        0,
        `violations: ${JSON.stringify(s.violations)}, seeds ${s.failedSeeds.join(' ')}`,
      )
      assert.ok(s.elections > 2 * s.runs, 'leaderships change hands in most runs')
      assert.ok(s.timeToLeaderAfterHealMs.runs > runs / 4, 'many runs had no usable leader at the heal')
      assert.ok(s.timeToLeaderAfterHealMs.max < s.livenessBoundMs)
      // A leader whose clock leaps back outlives its session at the store: what the drift bound
      // protects, reported apart.
      assert.deepEqual(Object.keys(s.expectedUnderOutOfBoundClocks), ['lease'])
    })
  }

  test('200 runs of the default profile (TTL 5 s) break nothing', () => {
    const s = runBatch(leaseAdapter(), { seed: 1, runs: 200, voters: 5, scenario: 'random' })
    assert.equal(s.failedRuns, 0, `violations: ${JSON.stringify(s.violations)}, seeds ${s.failedSeeds}`)
  })

  for (const name of [...LEASE_SCENARIOS.names, 'random']) {
    test(`scenario ${name}: 30 runs, no violation`, () => {
      const s = runBatch(leaseAdapter({ timing: 'fast' }), { seed: 100, runs: 30, voters: 3, scenario: name })
      assert.equal(
        s.failedRuns,
        0,
        `violations: ${JSON.stringify(s.violations)}, seeds ${s.failedSeeds.join(' ')}`,
      )
      if (name === 'quiet') assert.equal(s.elections, s.runs, 'one leadership per run, none after it')
      if (name !== 'clock-jump' && name !== 'random' && name !== 'mix')
        assert.deepEqual(s.expectedUnderOutOfBoundClocks, {})
    })
  }

  test('a run replays exactly from its seed, and another seed gives another run', () => {
    const run = (seed: number) => {
      const lines: string[] = []
      const r = runSimulation(leaseAdapter({ timing: 'fast' }), {
        seed,
        voters: 5,
        scenario: 'mix',
        traceSink: (l) => lines.push(l),
      })
      return { lines, messages: r.messages, events: r.events, scenario: JSON.stringify(r.scenario) }
    }
    const a = run(42)
    assert.ok(a.lines.length > 500)
    assert.deepEqual(run(42), a)
    assert.notDeepEqual(run(43).lines, a.lines)
  })

  test('the liveness bound: a TTL, a request timeout, a backoff and a keep-alive period, stretched by drift', () => {
    const fast = resolveLeaseTiming({ ttlMs: 1000 })
    // (1000 + 100 expiry loop + 500 + 333 + 333) / 0.95 + 100
    assert.equal(leaseLivenessBoundMs(fast), 2486)
    assert.equal(leaseAdapter({ timing: 'fast' }).livenessBoundMs, 2486)
    assert.ok(leaseAdapter().livenessBoundMs > 2 * resolveLeaseTiming({ ttlMs: 5000 }).ttlMs)
  })
})

describe('the store model', () => {
  test('a leader paused longer than the TTL: its session expires at the store while it sleeps, a successor leads, and it does not lead on waking', () => {
    const scenario: Scenario = {
      name: 'pause',
      faults: [{ kind: 'pause', at: 3000, duration: 2500, node: 0 }],
      drift: 'within',
    }
    let checked = 0
    for (let seed = 1; seed <= 20; seed++) {
      const lines: string[] = []
      const r = runSimulation(leaseAdapter({ timing: 'fast' }), {
        seed,
        voters: 3,
        scenario,
        traceSink: (l) => lines.push(l),
      })
      assert.deepEqual(r.violations, [], `seed ${seed}`)
      const pause = lines.find((l) => l.includes('fault') && l.includes('pause for'))
      assert.ok(pause)
      const paused = pause.trim().split(/\s+/)[2] as string
      const during = (l: string) => timeOf(l) > 3000 && timeOf(l) < 5500
      const expired = lines.find((l) => during(l) && l.includes(`of ${paused} expired`))
      assert.ok(expired, `seed ${seed}: ${paused}'s session expires at the store during the pause`)
      const successor = lines.find(
        (l) =>
          during(l) && l.includes('becomes') && l.includes('leader, leader') && !l.includes(` ${paused} `),
      )
      assert.ok(successor, `seed ${seed}: another candidate leads while ${paused} sleeps`)
      assert.ok(timeOf(successor) >= timeOf(expired), 'only after the store expired the session')
      // On waking, the paused node says it leads only with a new leadership (a new entry, joined after).
      const awake = lines.filter((l) => timeOf(l) >= 5500 && l.includes(` ${paused} `))
      const claim = awake.find((l) => l.includes('isLeader     true'))
      assert.ok(!claim || awake.some((l) => l.includes('joined') && timeOf(l) <= timeOf(claim)))
      checked++
    }
    assert.equal(checked, 20)
  })

  test('through an outage longer than the TTL every session expires on the store clock; a usable leader soon after', () => {
    const scenario: Scenario = {
      name: 'outage',
      faults: [{ kind: 'outage', at: 3000, duration: 3000 }],
      drift: 'within',
    }
    for (let seed = 1; seed <= 10; seed++) {
      const lines: string[] = []
      const r = runSimulation(leaseAdapter({ timing: 'fast' }), {
        seed,
        voters: 3,
        scenario,
        traceSink: (l) => lines.push(l),
      })
      assert.deepEqual(r.violations, [], `seed ${seed}`)
      const expired = lines.filter((l) => l.includes('expired') && timeOf(l) > 3000 && timeOf(l) < 6000)
      assert.equal(expired.length, 3, `seed ${seed}: each candidate's session expires during the outage`)
      assert.ok(r.afterHealMs !== undefined && r.afterHealMs < 1000, `seed ${seed}: ${r.afterHealMs}`)
    }
  })

  test('under a lossy network, requests are applied while their replies are lost, and notifications are lost', () => {
    const lines: string[] = []
    const r = runSimulation(leaseAdapter({ timing: 'fast' }), {
      seed: 7,
      voters: 5,
      scenario: {
        name: 'lossy',
        faults: [{ kind: 'lossy', at: 2000, duration: 10_000, loss: 0.3, duplicate: 0.1, reorder: 0.2 }],
        drift: 'within',
      },
      traceSink: (l) => lines.push(l),
    })
    assert.deepEqual(r.violations, [])
    assert.ok(
      lines.some((l) => /store .* lost +→ n\d #\d+ done/.test(l)),
      'a reply lost after its request applied',
    )
    assert.ok(
      lines.some((l) => /store .* lost +→ n\d notify/.test(l)),
      'a notification lost',
    )
  })
})

describe('ballot sim --algo lease', () => {
  test('runs seeded lease runs and prints a summary; scenarios without a lease meaning are refused', () => {
    const ok = spawnSync(
      process.execPath,
      [
        CLI,
        'sim',
        '--algo',
        'lease',
        '--nodes',
        '3',
        '--runs',
        '20',
        '--seed',
        '1',
        '--timing',
        'fast',
        '--json',
      ],
      { encoding: 'utf8' },
    )
    assert.equal(ok.status, 0, ok.stderr)
    const s = JSON.parse(ok.stdout)
    assert.equal(s.algo, 'lease')
    assert.equal(s.runs, 20)
    assert.equal(s.failedRuns, 0)
    const bad = spawnSync(process.execPath, [CLI, 'sim', '--algo', 'lease', '--scenario', 'forged'], {
      encoding: 'utf8',
    })
    assert.equal(bad.status, 2)
    assert.match(bad.stderr, /--scenario.*outage/)
    const raftOutage = spawnSync(process.execPath, [CLI, 'sim', '--algo', 'raft', '--scenario', 'outage'], {
      encoding: 'utf8',
    })
    assert.equal(raftOutage.status, 2)
  })

  test('--trace replays one run: store requests, replies, expiries', () => {
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        'sim',
        '--algo',
        'lease',
        '--nodes',
        '3',
        '--seed',
        '3',
        '--timing',
        'fast',
        '--scenario',
        'gc-pause',
        '--trace',
      ],
      { encoding: 'utf8' },
    )
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /store .*recv +n\d → #\d+ keepAlive s\d/)
    assert.match(r.stdout, /session s\d of n\d expired/)
    assert.match(r.stdout, /no violations/)
  })
})
