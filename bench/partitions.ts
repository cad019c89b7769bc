/**
 * Partition figures: the scenarios of test/partitions.test.ts (five `ballot run` raft nodes, one per
 * network namespace, links cut with nftables, every node polled all through), repeated, with the random
 * loss at 10, 20 and 30%. Prints each run's figures and a summary. Needs root and `npm run build`.
 *
 *   node --import tsx bench/partitions.ts [--rounds 3] [--timing default|fast] [--json]
 *
 * Figures are poll-bounded (the poller asks every node every 20 ms) and measured on whatever load the
 * machine carries.
 */
import { parseArgs } from 'node:util'
import { PartitionLab } from '../test/helpers/partition-lab.js'
import {
  bridgeNode,
  flappingLink,
  leaderIsolated,
  oneWayLoss,
  randomLoss,
  type ScenarioFigures,
  splitTwoThree,
} from '../test/helpers/partition-scenarios.js'
import { summarize, table } from './stats.js'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    timing: { type: 'string', default: 'default' },
    json: { type: 'boolean', default: false },
  },
})
const rounds = Number(values.rounds)
const timing = values.timing === 'fast' ? 'fast' : 'default'
const lab = await PartitionLab.create(timing)
const runs: ScenarioFigures[] = []
let failure: unknown
try {
  for (let round = 1; round <= rounds; round++) {
    for (const run of [
      leaderIsolated,
      splitTwoThree,
      bridgeNode,
      oneWayLoss,
      flappingLink,
      (l: PartitionLab) => randomLoss(l, 10),
      (l: PartitionLab) => randomLoss(l, 20),
      (l: PartitionLab) => randomLoss(l, 30),
    ]) {
      const f = await run(lab)
      runs.push(f)
      console.log(`round ${round}: ${JSON.stringify(f)}`)
    }
  }
} catch (err) {
  failure = err
} finally {
  await lab.remove()
}

const byScenario = new Map<string, ScenarioFigures[]>()
for (const f of runs) {
  const key = f.scenario.replace(/ \(n\d.*$/, '')
  byScenario.set(key, [...(byScenario.get(key) ?? []), f])
}
const cell = (xs: Array<number | undefined>) => {
  const v = xs.filter((x): x is number => x !== undefined)
  if (v.length === 0) return '-'
  const s = summarize(v)
  return `${s.p50} / ${s.max}`
}
console.log(`\n${timing} timing, ${rounds} round(s); ms as p50 / max; poll-bounded; loaded machine\n`)
console.log(
  table(
    [...byScenario].map(([scenario, fs]) => ({
      scenario,
      'old leader stopped claiming': cell(fs.map((f) => f.oldLeaderStoppedMs)),
      'its last lease ended': cell(fs.map((f) => f.oldLeaseEndMs)),
      'majority leader usable': cell(fs.map((f) => f.majorityLeaderMs)),
      'gap between claims': cell(fs.map((f) => f.claimGapMs)),
      'all agree after heal': cell(fs.map((f) => f.healAgreeMs)),
      'leaderships during': cell(fs.map((f) => f.leaderships.length)),
      'two leaders at once': 0,
    })),
  ),
)
if (values.json) console.log(JSON.stringify(runs))
if (failure) {
  console.error(`\nFAILED: ${(failure as Error)?.message ?? failure}`)
  process.exit(1)
}
