/**
 * Compares two benchmark results files (docs/benchmarks/results.json from two runs): every figure both
 * have, old and new side by side with the change. A report, not a gate: it always exits 0 once both
 * files are read.
 *
 *   npm run bench:compare -- old.json new.json [--threshold 10]
 *
 * Rows whose p50 (or the single value) moved by more than --threshold percent are marked with "!".
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { figureKey } from './lib/report.js'
import type { Results } from './lib/results.js'
import { summarize, table } from './stats.js'

const { values: args, positionals } = parseArgs({
  options: { threshold: { type: 'string', default: '10' } },
  allowPositionals: true,
})
if (positionals.length !== 2) {
  console.error('usage: npm run bench:compare -- old.json new.json [--threshold 10]')
  process.exit(2)
}
const load = (path: string): Results => {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Results
  } catch (err) {
    console.error(`${path}: cannot read a results file (${(err as Error).message})`)
    process.exit(2)
  }
}
const [oldR, newR] = positionals.map(load) as [Results, Results]
const threshold = Number(args.threshold)

const change = (a: number, b: number) =>
  Number.isFinite(a) && Number.isFinite(b) && a !== 0
    ? Math.round(((b - a) / Math.abs(a)) * 1000) / 10
    : Number.NaN
const mark = (pct: number) => (Math.abs(pct) > threshold ? '!' : '')
const pct = (v: number) => (Number.isFinite(v) ? `${v > 0 ? '+' : ''}${v}%` : '-')

console.log(`old: ${oldR.command} (${oldR.startedAt}${oldR.quick ? ', quick' : ''})`)
console.log(`new: ${newR.command} (${newR.startedAt}${newR.quick ? ', quick' : ''})\n`)

const failover: Array<Record<string, string | number>> = []
for (const nf of newR.failover) {
  const of = oldR.failover.find((f) => figureKey(f) === figureKey(nf))
  if (!of) continue
  const a = summarize(of.samples)
  const b = summarize(nf.samples)
  const c = change(a.p50, b.p50)
  failover.push({
    '': mark(c),
    figure: figureKey(nf),
    'old p50/p90/p99 ms': `${a.p50} / ${a.p90} / ${a.p99}`,
    'new p50/p90/p99 ms': `${b.p50} / ${b.p90} / ${b.p99}`,
    'p50 change': pct(c),
    'p99 change': pct(change(a.p99, b.p99)),
  })
}
if (failover.length) console.log(`Failover\n${table(failover)}\n`)

const metrics: Array<Record<string, string | number>> = []
const add = (what: string, a: number | undefined, b: number | undefined) => {
  if (a === undefined || b === undefined) return
  const c = change(a, b)
  metrics.push({ '': mark(c), figure: what, old: a, new: b, change: pct(c) })
}
for (const ns of newR.scale) {
  const os = oldR.scale.find((s) => s.driver === ns.driver && s.nodes === ns.nodes)
  if (!os) continue
  const at = `${ns.driver} ${ns.nodes} nodes`
  add(`${at}: first leader ms`, os.firstLeaderMs, ns.firstLeaderMs)
  add(`${at}: kill -9 p50 ms`, summarize(os.crash).p50, summarize(ns.crash).p50)
  add(`${at}: hand-over p50 ms`, summarize(os.handover).p50, summarize(ns.handover).p50)
  add(`${at}: msgs/s at rest`, os.messagesPerSecond, ns.messagesPerSecond)
  add(`${at}: bytes/s at rest`, os.bytesPerSecond, ns.bytesPerSecond)
  add(`${at}: CPU %/node`, os.cpuPercentPerNode, ns.cpuPercentPerNode)
  add(`${at}: RSS MiB/node`, os.rssMiBPerNode, ns.rssMiBPerNode)
  add(`${at}: elections at rest`, os.electionsAtRest, ns.electionsAtRest)
}
for (const ns of newR.sim) {
  const os = oldR.sim.find((s) => s.algo === ns.algo && s.voters === ns.voters)
  if (os)
    add(`sim ${ns.algo} ${ns.voters} voters: msgs/election`, os.messagesPerElection, ns.messagesPerElection)
}
for (const ng of newR.groups) {
  const og = oldR.groups.find((g) => g.kind === ng.kind && g.count === ng.count)
  if (!og) continue
  add(`${ng.kind} ×${ng.count}: CPU %/group`, og.cpuPercentPerGroup, ng.cpuPercentPerGroup)
  add(`${ng.kind} ×${ng.count}: RSS MiB/process`, og.rssMiBPerProcess, ng.rssMiBPerProcess)
}
for (const ns of newR.stability) {
  const os = oldR.stability.find((s) => s.driver === ns.driver && s.hog === ns.hog)
  if (os) add(`stability ${ns.driver}, hog ${ns.hog}: leader changes`, os.leaderChanges, ns.leaderChanges)
}
for (const ni of newR.leaseIdle) {
  const oi = oldR.leaseIdle.find((i) => i.store === ni.store && i.who === ni.who)
  if (oi) add(`idle ${ni.store} ${ni.who}: requests/s`, oi.perSecond, ni.perSecond)
}
if (metrics.length) console.log(`Other figures\n${table(metrics)}\n`)
if (!failover.length && !metrics.length) console.log('The two runs share no figure.')
