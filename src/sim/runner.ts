/**
 * Many seeded runs and their summary: runs, violations by invariant, elections, time to leader
 * (p50/p99), messages per election, runs per second; and, for each failing run, its seed and trace.
 * Run i of a batch uses seed `seed + i`, so `--seed <that> --runs 1 --trace` replays it alone.
 */
import type { AnyAdapter } from './adapter.js'
import { type RunResult, runSimulation } from './simulation.js'

export interface BatchOptions {
  seed: number
  runs: number
  voters: number
  observers?: number
  scenario?: string
  /** How many failing runs to keep in full (with their traces). Default 5. */
  keepFailures?: number
  /** Called after each run (progress, custom checks). */
  onRun?: (result: RunResult) => void
}

export interface FailedRun {
  seed: number
  scenario: string
  violations: Array<{ invariant: string; time: number; message: string }>
  trace: string[]
}

export interface Summary {
  algo: string
  nodes: number
  observers: number
  scenario: string
  seed: number
  runs: number
  /** Runs with at least one violation. */
  failedRuns: number
  /** Runs whose only violations came under clocks beyond the drift bound. */
  expectedRuns: number
  violations: Record<string, number>
  /** The common invariants this protocol promises and the runs checked; the others print as n/a. */
  checked: string[]
  /**
   * For protocols without a lease (bully): runs in which two nodes claimed isLeader() at once, and for
   * how long (real ms, over those runs). Undefined for protocols that check the lease instead.
   */
  multiLeader?: { runs: number; p50: number; p99: number; max: number }
  /** Broken under clocks beyond the drift bound (clock-jump scenario): shown, not failures. */
  expectedUnderOutOfBoundClocks: Record<string, number>
  elections: number
  /** Boot to first agreed leader, virtual ms. */
  firstLeaderMs: { p50: number; p99: number; max: number }
  /** Heal to agreed leader, in runs that had none at the heal, virtual ms. */
  timeToLeaderAfterHealMs: { runs: number; p50: number; p99: number; max: number }
  messagesPerElection: number
  /** Liveness: after the heal, every live voter names one leader within this (virtual ms). */
  livenessBoundMs: number
  runsPerSecond: number
  seconds: number
  /** The first few failing runs, with their seeds and traces. */
  failures: FailedRun[]
  /** Seeds of every failing run (up to 100). */
  failedSeeds: number[]
}

function quantiles(values: number[]) {
  if (values.length === 0) return { p50: Number.NaN, p99: Number.NaN, max: Number.NaN }
  const sorted = Float64Array.from(values).sort()
  const at = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] as number
  const round = (v: number) => Math.round(v * 10) / 10
  return { p50: round(at(0.5)), p99: round(at(0.99)), max: round(sorted[sorted.length - 1] as number) }
}

export function runBatch(adapter: AnyAdapter, opts: BatchOptions): Summary {
  const keep = opts.keepFailures ?? 5
  const violations: Record<string, number> = {}
  const expected: Record<string, number> = {}
  const first: number[] = []
  const afterHeal: number[] = []
  const multiLeader: number[] = []
  const failures: FailedRun[] = []
  const failedSeeds: number[] = []
  let failedRuns = 0
  let expectedRuns = 0
  let elections = 0
  let electionMessages = 0
  const started = performance.now()
  for (let i = 0; i < opts.runs; i++) {
    const seed = (opts.seed + i) >>> 0
    const r = runSimulation(adapter, {
      seed,
      voters: opts.voters,
      observers: opts.observers ?? 0,
      scenario: opts.scenario ?? 'random',
    })
    elections += r.elections
    electionMessages += r.electionMessages
    if (r.firstLeaderMs !== undefined) first.push(r.firstLeaderMs)
    if (r.afterHealMs !== undefined) afterHeal.push(r.afterHealMs)
    if (r.multiLeaderMs > 0) multiLeader.push(r.multiLeaderMs)
    for (const v of r.expected) expected[v.invariant] = (expected[v.invariant] ?? 0) + 1
    if (r.expected.length > 0 && r.violations.length === 0) expectedRuns++
    if (r.violations.length > 0) {
      failedRuns++
      for (const v of r.violations) violations[v.invariant] = (violations[v.invariant] ?? 0) + 1
      if (failedSeeds.length < 100) failedSeeds.push(seed)
      if (failures.length < keep) {
        failures.push({
          seed,
          scenario: r.scenario.name,
          violations: r.violations.map(({ invariant, time, message }) => ({ invariant, time, message })),
          trace: r.trace,
        })
      }
    }
    opts.onRun?.(r)
  }
  const seconds = (performance.now() - started) / 1000
  return {
    algo: adapter.name,
    nodes: opts.voters,
    observers: opts.observers ?? 0,
    scenario: opts.scenario ?? 'random',
    seed: opts.seed,
    runs: opts.runs,
    failedRuns,
    expectedRuns,
    violations,
    checked: [...adapter.invariants],
    multiLeader: adapter.invariants.has('lease')
      ? undefined
      : { runs: multiLeader.length, ...quantiles(multiLeader) },
    expectedUnderOutOfBoundClocks: expected,
    elections,
    firstLeaderMs: quantiles(first),
    timeToLeaderAfterHealMs: { runs: afterHeal.length, ...quantiles(afterHeal) },
    messagesPerElection: elections === 0 ? 0 : Math.round((electionMessages / elections) * 10) / 10,
    livenessBoundMs: adapter.livenessBoundMs,
    runsPerSecond: Math.round((opts.runs / Math.max(seconds, 1e-9)) * 10) / 10,
    seconds: Math.round(seconds * 100) / 100,
    failures,
    failedSeeds,
  }
}

const INVARIANTS = [
  'one-leader-per-term',
  'fencing',
  'lease',
  'liveness',
  'stability',
  'observer',
  'pre-vote',
]

/** The human-readable summary: a table, then each kept failure with its seed and last events. */
export function formatSummary(s: Summary, replay = 'ballot sim'): string {
  const rows: Array<[string, string]> = [
    ['algo', s.algo],
    ['nodes', `${s.nodes} voters, ${s.observers} observers`],
    ['scenario', s.scenario],
    ['seeds', `${s.seed} … ${(s.seed + s.runs - 1) >>> 0}`],
    ['runs', String(s.runs)],
    ['failed runs', String(s.failedRuns)],
    ['runs broken only under out-of-bound clocks', String(s.expectedRuns)],
  ]
  const names = [...new Set([...INVARIANTS, ...Object.keys(s.violations)])]
  for (const name of names) {
    const promised = s.checked.includes(name) || name in s.violations
    rows.push([`  violations: ${name}`, promised ? String(s.violations[name] ?? 0) : 'n/a (not promised)'])
  }
  if (s.multiLeader) {
    const m = s.multiLeader
    rows.push([
      'runs with two leaders at once (no lease)',
      m.runs === 0 ? '0' : `${m.runs}, for p50 / p99 / max ${m.p50} / ${m.p99} / ${m.max} ms of the run`,
    ])
  }
  for (const [name, count] of Object.entries(s.expectedUnderOutOfBoundClocks))
    rows.push([`  expected (out-of-bound clocks): ${name}`, String(count)])
  rows.push(
    ['elections', String(s.elections)],
    [
      'first leader p50 / p99 / max',
      `${s.firstLeaderMs.p50} / ${s.firstLeaderMs.p99} / ${s.firstLeaderMs.max} ms`,
    ],
    [
      'time to leader after heal p50 / p99 / max',
      `${s.timeToLeaderAfterHealMs.p50} / ${s.timeToLeaderAfterHealMs.p99} / ${s.timeToLeaderAfterHealMs.max} ms (${s.timeToLeaderAfterHealMs.runs} runs had no agreed leader at the heal)`,
    ],
    ['messages per election', String(s.messagesPerElection)],
    ['liveness bound (from the timeouts)', `${s.livenessBoundMs} ms`],
    ['runs/s', `${s.runsPerSecond} (${s.seconds} s)`],
  )
  const width = Math.max(...rows.map(([k]) => k.length))
  const out = rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`)
  for (const f of s.failures) {
    out.push('', `FAILED seed ${f.seed} (scenario ${f.scenario}); replay: ${replay} --seed ${f.seed} --trace`)
    for (const v of f.violations) out.push(`  ${v.invariant} at ${v.time.toFixed(3)} ms: ${v.message}`)
    out.push('  last events:', ...f.trace.map((l) => `  ${l}`))
  }
  if (s.failedSeeds.length > s.failures.length) out.push('', `failed seeds: ${s.failedSeeds.join(' ')}`)
  return out.join('\n')
}
