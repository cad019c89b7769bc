#!/usr/bin/env node
// `npm run soak`: the simulator's soak of raft at 3, 5 and 7 voters under both timing profiles (100,000
// seeded runs a row by default), run two rows at a time, printed as one table. Exit 1 if any run broke an
// invariant (each failing row's seeds and replay line are printed below the table). `--algo lease` soaks
// lease candidates against the simulated store (timing profiles: TTL 5 s and 1 s).
//   node scripts/soak.mjs [--runs N] [--seed S] [--algo raft|bully|lease] [--nodes 3,5,7] [--timing default,fast]
import { spawn } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '100000' },
    seed: { type: 'string', default: '1' },
    algo: { type: 'string', default: 'raft' },
    nodes: { type: 'string', default: '3,5,7' },
    timing: { type: 'string', default: 'default,fast' },
  },
})
const cli = new URL('../dist/cli/main.js', import.meta.url).pathname
const rows = []
for (const timing of values.timing.split(','))
  for (const nodes of values.nodes.split(',')) rows.push({ nodes, timing })

function runRow(row) {
  const args = [cli, 'sim', '--algo', values.algo, '--voters', row.nodes, '--timing', row.timing]
  args.push('--runs', values.runs, '--seed', values.seed, '--scenario', 'random', '--json')
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
    })
    child.on('error', reject)
    child.on('close', () => {
      try {
        resolve({ ...row, summary: JSON.parse(out) })
      } catch (err) {
        reject(new Error(`sim for ${row.nodes} voters (${row.timing}) printed no summary: ${err}`))
      }
    })
  })
}

const results = []
const queue = [...rows]
await Promise.all(
  Array.from({ length: Math.min(availableParallelism(), rows.length) }, async () => {
    for (let row = queue.shift(); row; row = queue.shift()) results.push(await runRow(row))
  }),
)
results.sort((a, b) => a.timing.localeCompare(b.timing) || Number(a.nodes) - Number(b.nodes))

const members = values.algo === 'lease' ? 'candidates' : 'voters'
const header = [members, 'timing', 'runs', 'violations', 'runs/s', 'usable leader after heal p50 / p99 (ms)']
const table = results.map(({ nodes, timing, summary: s }) => [
  nodes,
  timing,
  String(s.runs),
  s.failedRuns === 0 ? '0' : `${s.failedRuns} (${JSON.stringify(s.violations)})`,
  String(s.runsPerSecond),
  `${s.timeToLeaderAfterHealMs.p50} / ${s.timeToLeaderAfterHealMs.p99}`,
])
const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)))
const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`
const total = results.reduce((sum, r) => sum + r.summary.runs, 0)
console.log(
  `${values.algo} soak, ${total} runs, seeds ${values.seed}…, scenario random (every fault kind of ${values.algo})`,
)
console.log(line(header))
console.log(line(widths.map((w) => '-'.repeat(w))))
for (const r of table) console.log(line(r))
let failed = false
for (const { nodes, timing, summary: s } of results) {
  const expected = Object.entries(s.expectedUnderOutOfBoundClocks ?? {})
  if (expected.length > 0)
    console.log(
      `${nodes} ${members}, ${timing}: expected under out-of-bound clocks: ${JSON.stringify(Object.fromEntries(expected))} (liveness bound ${s.livenessBoundMs} ms, max after heal ${s.timeToLeaderAfterHealMs.max} ms)`,
    )
  if (s.failedRuns > 0) {
    failed = true
    console.log(
      `${nodes} ${members}, ${timing}: failed seeds ${s.failedSeeds.join(' ')}; replay: ballot sim --algo ${values.algo} --voters ${nodes} --timing ${timing} --seed <seed> --trace`,
    )
  }
}
process.exitCode = failed ? 1 : 0
