/**
 * `npm run fuzz`: hostile frames into the cluster port's whole receive path, then into live processes.
 *
 *   npm run fuzz -- [--seed N] [--frames 1000000] [--live-frames 20000] [--no-live] [--json]
 *
 * 1. In process: `--frames` inputs (random bytes, valid lengths with random payloads, envelopes with every
 *    field mutated, huge/negative/NaN numbers, prototype keys, wrong versions and clusters, oversized
 *    lengths, replays of frames members really sent) through the frame decoder and codec into live raft
 *    and bully machines (three-node clusters on an in-memory bus, keyed and open, driven by the runtime's
 *    MachineDriver). Fails if an exception escapes or an input that was dropped or refused changed its
 *    target. Prints frames/s, drops by reason, heap before and after (run with --expose-gc, as the npm
 *    script does, for a fair heap figure).
 * 2. Live (needs `npm run build`): the same generator, as a stranger without the key, against a real
 *    3-node raft cluster's TCP ports and a bully group's loopback multicast group; fails if the leader
 *    changes, a process dies, or the drop counters (GET /status) do not grow.
 *
 * Deterministic from the seed (printed); a failure prints what to run again.
 */
import { randomInt } from 'node:crypto'
import { parseArgs } from 'node:util'
import { fuzzInProcess } from './fuzz/in-process.js'
import { fuzzLiveBully, fuzzLiveRaft, type LiveReport } from './fuzz/live.js'

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    frames: { type: 'string', default: '1000000' },
    'live-frames': { type: 'string', default: '20000' },
    'no-live': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
})
const seed = values.seed === undefined ? randomInt(2 ** 31 - 1) : Number(values.seed)
const frames = Number(values.frames)
const liveFrames = Number(values['live-frames'])
if (
  !Number.isSafeInteger(seed) ||
  !Number.isSafeInteger(frames) ||
  frames <= 0 ||
  !Number.isSafeInteger(liveFrames)
)
  throw new Error('--seed, --frames and --live-frames take whole numbers')
console.log(`fuzz seed ${seed} (again: npm run fuzz -- --seed ${seed} --frames ${frames})`)

const mb = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`
const report = await fuzzInProcess({
  seed,
  frames,
  onProgress: (n) => {
    if (n > 0 && n % 100_000 === 0) console.log(`  ${n} inputs...`)
  },
})
const failures: string[] = []
console.log(
  `\nin process: ${report.frames} inputs (${report.messages} frames reached a decoder) in ${(report.elapsedMs / 1000).toFixed(1)} s, ${report.framesPerSecond} inputs/s`,
)
console.log(`heap: ${mb(report.heapBeforeBytes)} before, ${mb(report.heapAfterBytes)} after (after gc)`)
console.log('dropped by reason:')
for (const [k, v] of Object.entries(report.dropped).sort((a, b) => b[1] - a[1]))
  console.log(`  ${k.padEnd(14)} ${v}`)
console.log('refused by the machine:')
for (const [k, v] of Object.entries(report.refused)) console.log(`  ${k.padEnd(14)} ${v}`)
console.log(`accepted (open clusters' forgeries, insider's fresh messages): ${report.accepted}`)
console.log('by kind (inputs / accepted):')
for (const [k, v] of Object.entries(report.byCategory))
  console.log(`  ${k.padEnd(17)} ${v.inputs} / ${v.accepted}`)
const kept = report.clusters.filter((c) => c.leaderAtEnd === c.leaderAtStart)
console.log(
  `clusters fuzzed: ${report.clusters.length}; kept the leader they started with: ${kept.length} (keyed: ${kept.filter((c) => c.config.endsWith('keyed')).length} of ${report.clusters.filter((c) => c.config.endsWith('keyed')).length}; an open cluster takes forged orders by design)`,
)
console.log(`state changes from dropped or refused input: ${report.stateChanges.length}`)
console.log(`exceptions escaped: ${report.exceptions.length}`)
console.log(`keyed clusters: unsigned or replayed inputs accepted: ${report.strangerAccepted.length}`)
for (const v of [...report.stateChanges, ...report.exceptions, ...report.strangerAccepted].slice(0, 5))
  console.log(`  #${v.index} ${v.config} ${v.category}: ${v.what.slice(0, 600)}`)
if (report.stateChanges.length > 0) failures.push('an invalid input changed a machine')
if (report.exceptions.length > 0) failures.push('an exception escaped')
if (report.strangerAccepted.length > 0)
  failures.push('a keyed cluster accepted an unsigned or replayed input')

const lives: LiveReport[] = []
if (!values['no-live'] && liveFrames > 0) {
  for (const run of [fuzzLiveRaft, fuzzLiveBully]) {
    const live = await run(seed, liveFrames)
    lives.push(live)
    console.log(
      `\nlive ${live.algo}: ${live.inputs} inputs in ${(live.elapsedMs / 1000).toFixed(1)} s; leader ${live.leader}; named during the run: ${live.leadersSeen.join(', ')} (${live.polls} polls of every node); died: ${live.died.join(', ') || 'none'}`,
    )
    for (const [node, d] of Object.entries(live.droppedByNode))
      console.log(`  ${node} drops grew by ${JSON.stringify(d)}`)
    if (live.replays !== undefined) {
      const n3 = live.droppedByNode.n3 ?? {}
      console.log(`  of which ${live.replays} replays of frames recorded on the way to n3`)
      if (!n3.replay && !n3.stale) failures.push('live raft: n3 counted no replays')
    }
    if (live.leadersSeen.length !== 1) failures.push(`live ${live.algo}: the leader changed`)
    if (live.died.length > 0) failures.push(`live ${live.algo}: a process died`)
    if (Object.values(live.droppedByNode).some((d) => Object.keys(d).length === 0))
      failures.push(`live ${live.algo}: a node counted no drops`)
  }
}
if (values.json) console.log(JSON.stringify({ report, lives }))
if (failures.length > 0) {
  console.error(`\nFAILED (seed ${seed}): ${failures.join('; ')}`)
  process.exit(1)
}
console.log('\nok')
