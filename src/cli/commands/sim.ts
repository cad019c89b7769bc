/**
 * `ballot sim`: the deterministic simulator from the command line. Many seeded runs print a summary
 * (and the seed and trace of any run that broke an invariant); `--seed S --trace` replays one run event
 * by event; `--json` prints the summary as one JSON object. Exit code 1 when an invariant was broken,
 * 2 for bad flags.
 */
import { randomInt } from 'node:crypto'
import { type Command, Option } from 'commander'
import { InvalidOptionsError } from '../../errors.js'
import { ADAPTERS } from '../../sim/protocols/index.js'
import { LEASE_SCENARIOS } from '../../sim/protocols/lease.js'
import { formatSummary, runBatch } from '../../sim/runner.js'
import { SCENARIO_NAMES, validateScenarioName } from '../../sim/scenario.js'
import { runSimulation } from '../../sim/simulation.js'

interface SimFlags {
  algo: string
  voters: string
  /** Deprecated name of --voters (a count here, but a member list in run and exec). */
  nodes?: string
  observers: string
  runs: string
  seed?: string
  scenario: string
  timing: string
  trace?: boolean
  json?: boolean
  unsafeSkipVoteChecks?: boolean
}

function integer(flag: string, value: string, min: number, max: number): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new InvalidOptionsError(
      flag,
      `must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`,
    )
  }
  return n
}

/**
 * --voters, or the deprecated --nodes (a count in sim and demo, but a member list in run and exec,
 * hence the new name), said to be deprecated on stderr.
 */
export function votersFlag(flags: { voters: string; nodes?: string }, max = 50): number {
  if (flags.nodes === undefined) return integer('--voters', flags.voters, 1, max)
  // Checked first, so a bad value is still one line.
  const n = integer('--nodes', flags.nodes, 1, max)
  process.stderr.write(
    'ballot: --nodes is deprecated here (it is a member list in run and exec): use --voters\n',
  )
  return n
}

export function registerSim(program: Command): void {
  program
    .command('sim')
    .description(
      'Run the deterministic simulator: seeded runs with faults, checking every invariant at every step',
    )
    .option('--algo <name>', `protocol to simulate (${Object.keys(ADAPTERS).join(', ')})`, 'raft')
    .option('--voters <n>', 'voting members', '5')
    .addOption(new Option('--nodes <n>', 'deprecated: use --voters').hideHelp())
    .option('--observers <n>', 'observers (follow, never vote or lead)', '0')
    .option('--runs <n>', 'number of runs; run i uses seed S + i', '1000')
    .option('--seed <S>', 'seed of the first run (default: random, printed)')
    .option(
      '--scenario <name>',
      `one of ${SCENARIO_NAMES.join(', ')}; for lease also ${LEASE_SCENARIOS.names.filter((n) => !(SCENARIO_NAMES as readonly string[]).includes(n)).join(', ')} (not the peer-to-peer-only ones)`,
      'random',
    )
    .option('--timing <profile>', 'timing profile: default or fast (lease: a TTL of 5 s or 1 s)', 'default')
    .option('--trace', 'replay one run (the --seed) and print every event')
    .option('--json', 'print the summary as one JSON object')
    .option('--unsafe-skip-vote-checks', 'test only: a broken raft that the checker must catch')
    .action((flags: SimFlags) => {
      const factory = ADAPTERS[flags.algo]
      if (!factory) {
        throw new InvalidOptionsError(
          '--algo',
          `must be one of ${Object.keys(ADAPTERS)
            .map((a) => JSON.stringify(a))
            .join(', ')}, got ${JSON.stringify(flags.algo)}`,
        )
      }
      if (!['default', 'fast'].includes(flags.timing))
        throw new InvalidOptionsError(
          '--timing',
          `must be one of "default", "fast", got ${JSON.stringify(flags.timing)}`,
        )
      const voters = votersFlag(flags)
      const observers = integer('--observers', flags.observers, 0, 20)
      const runs = integer('--runs', flags.runs, 1, 100_000_000)
      const seed =
        flags.seed === undefined ? randomInt(0, 2 ** 31) : integer('--seed', flags.seed, 0, 2 ** 32 - 1)
      const adapter = factory({ timing: flags.timing, unsafe: flags.unsafeSkipVoteChecks ?? false })
      const scenario = validateScenarioName(flags.scenario, adapter.scenarios)
      const replay = [
        `ballot sim --algo ${flags.algo} --voters ${voters} --observers ${observers}`,
        `--scenario ${scenario} --timing ${flags.timing}`,
        ...(flags.unsafeSkipVoteChecks ? ['--unsafe-skip-vote-checks'] : []),
      ].join(' ')

      if (flags.trace) {
        const r = runSimulation(adapter, {
          seed,
          voters,
          observers,
          scenario,
          traceSink: flags.json ? undefined : (line) => console.log(line),
        })
        const out = {
          algo: adapter.name,
          seed,
          scenario: r.scenario,
          violations: r.violations,
          expectedUnderOutOfBoundClocks: r.expected,
          elections: r.elections,
          messages: r.messages,
          firstLeaderMs: r.firstLeaderMs,
          afterHealMs: r.afterHealMs,
          healAt: r.healAt,
          endedAt: r.endedAt,
        }
        if (flags.json) console.log(JSON.stringify(out))
        else {
          console.log(`\nseed ${seed}, scenario ${r.scenario.name}: ${JSON.stringify(r.scenario.faults)}`)
          for (const v of r.violations)
            console.log(`VIOLATION ${v.invariant} at ${v.time.toFixed(3)} ms: ${v.message}`)
          for (const v of r.expected)
            console.log(
              `expected (out-of-bound clocks) ${v.invariant} at ${v.time.toFixed(3)} ms: ${v.message}`,
            )
          if (r.violations.length + r.expected.length === 0) console.log('no violations')
        }
        if (r.violations.length > 0) process.exitCode = 1
        return
      }

      const summary = runBatch(adapter, { seed, runs, voters, observers, scenario })
      if (flags.json) console.log(JSON.stringify(summary))
      else console.log(formatSummary(summary, replay))
      if (summary.failedRuns > 0) process.exitCode = 1
    })
}
