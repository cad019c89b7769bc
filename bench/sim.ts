/**
 * Simulator figures: runs per second, violations, elections, time to leader after heal (virtual ms) and
 * messages per election, per scenario and cluster size.
 *
 *   node --import tsx bench/sim.ts [--runs 2000] [--nodes 3,5,7] [--scenarios random,quiet,...] [--timing default]
 *
 * The 100,000-run soak with the default fault mix is `npm run soak` (ballot sim --runs 100000).
 */
import { parseArgs } from 'node:util'
import { bullyAdapter, raftAdapter, runBatch, SCENARIO_NAMES } from '../src/sim/index.js'
import { isMain, table } from './stats.js'

/** Messages per election in the simulator, for one protocol and voter count. */
export interface SimMessagesRow {
  algo: 'raft' | 'bully'
  voters: number
  scenario: string
  runs: number
  elections: number
  messagesPerElection: number
  /** Runs that broke an invariant (should be 0). */
  failedRuns: number
}

/**
 * Messages per election against the number of voters, for raft and bully (default timing), from
 * seeded simulator runs of one scenario (default: the leader crashes once).
 */
export function simMessages(o: {
  voters: number[]
  runs: number
  scenario?: string
  seed?: number
}): SimMessagesRow[] {
  const scenario = o.scenario ?? 'crash-leader'
  const rows: SimMessagesRow[] = []
  for (const [algo, adapter] of [
    ['raft', raftAdapter({ timing: 'default' })],
    ['bully', bullyAdapter({ timing: 'default' })],
  ] as const)
    for (const voters of o.voters) {
      const s = runBatch(adapter, { seed: o.seed ?? 1, runs: o.runs, voters, scenario })
      rows.push({
        algo,
        voters,
        scenario,
        runs: s.runs,
        elections: s.elections,
        messagesPerElection: s.messagesPerElection,
        failedRuns: s.failedRuns,
      })
    }
  return rows
}

if (isMain(import.meta.url)) {
  const { values: args } = parseArgs({
    options: {
      runs: { type: 'string', default: '2000' },
      nodes: { type: 'string', default: '3,5,7' },
      scenarios: { type: 'string', default: SCENARIO_NAMES.join(',') },
      timing: { type: 'string', default: 'default' },
      seed: { type: 'string', default: '1' },
    },
  })

  const adapter = raftAdapter({ timing: args.timing })
  const rows: Array<Record<string, string | number>> = []
  const json: Record<string, unknown> = { timing: args.timing, runs: Number(args.runs) }
  for (const nodes of args.nodes.split(',').map(Number)) {
    for (const scenario of args.scenarios.split(',')) {
      const s = runBatch(adapter, {
        seed: Number(args.seed),
        runs: Number(args.runs),
        voters: nodes,
        scenario,
      })
      rows.push({
        nodes,
        scenario,
        runs: s.runs,
        'runs/s': s.runsPerSecond,
        failed: s.failedRuns,
        'broken only by clock jumps': s.expectedRuns,
        elections: s.elections,
        'after heal p50 ms': s.timeToLeaderAfterHealMs.p50,
        'after heal p99 ms': s.timeToLeaderAfterHealMs.p99,
        'first leader p50 ms': s.firstLeaderMs.p50,
        'msgs/election': s.messagesPerElection,
      })
      const { failures: _f, failedSeeds, ...figures } = s
      json[`${nodes}.${scenario}`] = { ...figures, failedSeeds }
    }
  }
  console.log(table(rows))
  console.log(JSON.stringify(json))
}
