/**
 * `npm run bench`: every benchmark, side by side, into one report: docs/benchmarks.md with SVG plots
 * (docs/benchmarks/*.svg) and the raw results (docs/benchmarks/results.json) for comparing two runs.
 * Benchmarks report and never fail: a part that cannot run here (a store that does not start, a size
 * the machine cannot hold) is noted in the report, and the command still exits 0.
 *
 *   npm run bench                                   full profile (see --help for what each section takes)
 *   npm run bench -- --quick                        smoke profile
 *   npm run bench -- --sections failover,scale,sim,groups,stability
 *   npm run bench -- --sections stability --merge   (keeps the other sections of the results file)
 *   npm run bench -- --report-only docs/benchmarks/results.json
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { type BullyTransport, bullyFailover, bullyFloorMs } from './bully.js'
import { growGroups } from './groups.js'
import { LEASE_STORES, leaseBench } from './lease.js'
import { writeReport } from './lib/report.js'
import { type FailoverFigure, mergeResults, type Results, SECTIONS, type Section } from './lib/results.js'
import { type FaultKind, type RaftProfile, raftFailover, raftFloorMs } from './raft.js'
import { baselineRssMiB, type ScaleDriver, scaleOne } from './scale.js'
import { simMessages } from './sim.js'
import { stabilityRun } from './stability.js'
import { summarize } from './stats.js'

const HELP = `npm run bench -- [options]

  --quick                 smoke profile: few runs, small sizes, short windows (minutes, not hours)
  --sections LIST         failover,scale,sim,groups,stability (default: all)
  --runs N                failover runs per figure (default 30; quick 3)
  --nodes N               raft and bully cluster size in the failover section (default 5)
  --stores LIST           lease stores (default: ${Object.keys(LEASE_STORES).join(',')})
  --ttl S                 lease TTL on etcd and ZooKeeper, s (default 2)
  --consul-ttl S          Consul TTL, s (default 10, its minimum); --lock-delay S (default 1)
  --sizes LIST            scale: cluster sizes (default 3,5,7,9,15,25; 51 if the machine allows)
  --scale-runs N          scale: kill -9 and hand-over runs per size (default 10; quick 2)
  --scale-drivers LIST    scale: raft,bully-tcp,bully-multicast (default all three)
  --rest-s S              scale and groups: seconds at rest measured (default 30; quick 5)
  --settle-s S            scale: seconds after the first agreement before the rest window (default 10; quick 1)
  --sim-voters LIST       sim: voter counts (default 3,5,7,9,15,25,51,101)
  --sim-runs N            sim: seeded runs per count (default 200; quick 10)
  --groups-raft LIST      groups: raft groups per process, grown until one fails (default 1,10,50,100,200,500)
  --groups-lease LIST     groups: lease candidates per process (default 1,10,50,100,200,500)
  --stability-s S         stability: seconds per run (default 600; quick 30)
  --stability-drivers L   stability: raft,bully-tcp,bully-multicast (default raft,bully-tcp)
  --hog-busy-ms MS        stability: the CPU hog spins this long ... (default 50)
  --hog-every-ms MS       ... every this many ms (default 200)
  --out DIR               where benchmarks.md and benchmarks/ go (default docs)
  --merge                 keep the sections this run does not measure from DIR/benchmarks/results.json
                          (each section keeps the command, time and load it was measured with)
  --report-only FILE      re-render the report from a results.json, measuring nothing
`

const argv = process.argv.slice(2)
const { values: a } = parseArgs({
  args: argv,
  options: {
    quick: { type: 'boolean', default: false },
    sections: { type: 'string' },
    runs: { type: 'string' },
    nodes: { type: 'string', default: '5' },
    stores: { type: 'string', default: Object.keys(LEASE_STORES).join(',') },
    ttl: { type: 'string', default: '2' },
    'consul-ttl': { type: 'string', default: '10' },
    'lock-delay': { type: 'string', default: '1' },
    sizes: { type: 'string' },
    'scale-runs': { type: 'string' },
    'scale-drivers': { type: 'string', default: 'raft,bully-tcp,bully-multicast' },
    'rest-s': { type: 'string' },
    'settle-s': { type: 'string' },
    'sim-voters': { type: 'string', default: '3,5,7,9,15,25,51,101' },
    'sim-runs': { type: 'string' },
    'groups-raft': { type: 'string' },
    'groups-lease': { type: 'string' },
    'stability-s': { type: 'string' },
    'stability-drivers': { type: 'string', default: 'raft,bully-tcp' },
    'hog-busy-ms': { type: 'string', default: '50' },
    'hog-every-ms': { type: 'string', default: '200' },
    out: { type: 'string', default: 'docs' },
    merge: { type: 'boolean', default: false },
    'report-only': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
})
if (a.help) {
  console.log(HELP)
  process.exit(0)
}

/** A flag's number, or one clear line naming the flag. */
function num(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || n < 0) {
    console.error(`--${name}: must be a number >= 0, got ${JSON.stringify(value)}`)
    process.exit(2)
  }
  return n
}
function list(name: string, value: string | undefined, fallback: number[]): number[] {
  if (value === undefined) return fallback
  return value
    .split(',')
    .filter(Boolean)
    .map((v) => num(name, v, 0))
}

if (a['report-only']) {
  const r = JSON.parse(readFileSync(a['report-only'], 'utf8')) as Results
  console.log(`wrote ${writeReport(r, a.out)}`)
  process.exit(0)
}

const q = a.quick
const sections = (a.sections ?? SECTIONS.join(',')).split(',').filter(Boolean) as Section[]
for (const s of sections)
  if (!SECTIONS.includes(s)) {
    console.error(`--sections: unknown section ${JSON.stringify(s)} (known: ${SECTIONS.join(', ')})`)
    process.exit(2)
  }
const settings = {
  runs: num('runs', a.runs, q ? 3 : 30),
  nodes: num('nodes', a.nodes, 5),
  stores: a.stores.split(',').filter(Boolean),
  ttlS: num('ttl', a.ttl, 2),
  consulTtlS: num('consul-ttl', a['consul-ttl'], 10),
  lockDelayS: num('lock-delay', a['lock-delay'], 1),
  sizes: list('sizes', a.sizes, q ? [3, 5, 9] : [3, 5, 7, 9, 15, 25]),
  scaleRuns: num('scale-runs', a['scale-runs'], q ? 2 : 10),
  scaleDrivers: a['scale-drivers'].split(',').filter(Boolean) as ScaleDriver[],
  restS: num('rest-s', a['rest-s'], q ? 5 : 30),
  settleS: num('settle-s', a['settle-s'], q ? 1 : 10),
  simVoters: list('sim-voters', a['sim-voters'], []),
  simRuns: num('sim-runs', a['sim-runs'], q ? 10 : 200),
  groupsRaft: list('groups-raft', a['groups-raft'], q ? [1, 10, 50] : [1, 10, 50, 100, 200, 500]),
  groupsLease: list('groups-lease', a['groups-lease'], q ? [1, 10, 50] : [1, 10, 50, 100, 200, 500]),
  stabilityS: num('stability-s', a['stability-s'], q ? 30 : 600),
  stabilityDrivers: a['stability-drivers'].split(',').filter(Boolean) as ScaleDriver[],
  hog: {
    busyMs: num('hog-busy-ms', a['hog-busy-ms'], 50),
    everyMs: num('hog-every-ms', a['hog-every-ms'], 200),
  },
}

const cpus = os.cpus()
const results: Results = {
  version: 1,
  quick: q,
  startedAt: new Date().toISOString(),
  command: ['npm run bench', ...(argv.length ? ['--', ...argv] : [])].join(' '),
  flags: argv,
  machine: {
    cpus: cpus.length,
    model: cpus[0]?.model.trim() ?? 'unknown',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.versions.node,
    platform: `${os.platform()} ${os.release()}`,
    loadavg: os.loadavg(),
  },
  settings,
  durations: {},
  failover: [],
  leaseIdle: [],
  scale: [],
  sim: [],
  groups: [],
  stability: [],
  notes: [],
  sources: {},
}
const jsonPath = join(a.out, 'benchmarks', 'results.json')
mkdirSync(join(a.out, 'benchmarks'), { recursive: true })
/** With --merge, the file this run adds its sections to (read once, before anything is written). */
let earlier: Results | undefined
if (a.merge && existsSync(jsonPath)) {
  earlier = JSON.parse(readFileSync(jsonPath, 'utf8')) as Results
  if (earlier.version !== 1) {
    console.error(`--merge: ${jsonPath} has version ${earlier.version}, this runner writes version 1`)
    process.exit(2)
  }
}
const save = () => {
  const out = earlier ? mergeResults(earlier, results, sections) : results
  writeFileSync(jsonPath, `${JSON.stringify(out, null, 1)}\n`)
  writeReport(out, a.out)
}
const log = (line: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`)

/** Runs one part; a failure becomes a note in the report, never a failed command. */
async function part(what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn()
  } catch (err) {
    const message = (err as Error).message?.split('\n')[0] ?? String(err)
    results.notes.push(`${what}: not measured (${message})`)
    log(`${what}: ${message}`)
  }
}

const round = (xs: number[]) => xs.map((x) => Math.round(x * 10) / 10)

async function failoverSection() {
  for (const profile of ['default', 'fast'] as RaftProfile[])
    for (const kind of ['crash', 'silent', 'handover'] as FaultKind[])
      await part(`raft ${profile} ${kind}`, async () => {
        const r = await raftFailover({ profile, kind, runs: settings.runs, size: settings.nodes })
        const base = {
          driver: `raft ${profile}`,
          family: 'raft' as const,
          fault: kind,
          floorMs: raftFloorMs(profile),
          floorNote: 'min election timeout',
        }
        results.failover.push({ ...base, figure: 'named', samples: round(r.named) })
        results.failover.push({ ...base, figure: 'acts', samples: round(r.acts) })
        if (profile === 'default' && kind === 'crash' && r.trace) results.timeline = r.trace
        log(
          `raft ${profile} ${kind}: named p50 ${summarize(r.named).p50} ms, acts p50 ${summarize(r.acts).p50} ms`,
        )
      })
  for (const transport of ['tcp', 'multicast'] as BullyTransport[])
    for (const kind of ['crash', 'silent', 'handover'] as FaultKind[])
      await part(`bully ${transport} ${kind}`, async () => {
        const r = await bullyFailover({
          transport,
          size: settings.nodes,
          runs: settings.runs,
          kind,
          timing: 'default',
        })
        results.failover.push({
          driver: `bully ${transport}`,
          family: 'bully',
          fault: kind,
          figure: 'named',
          floorMs: bullyFloorMs('default'),
          floorNote: 'leader timeout',
          samples: round(r.times),
        })
        log(`bully ${transport} ${kind}: p50 ${summarize(r.times).p50} ms`)
      })
  await part('lease', async () => {
    const r = await leaseBench({
      stores: settings.stores,
      kinds: ['handover', 'crash', 'silent'],
      runs: settings.runs,
      settings: { ttlS: settings.ttlS, consulTtlS: settings.consulTtlS, lockDelayS: settings.lockDelayS },
      idle: true,
      log,
    })
    for (const f of r.figures) {
      const fig: FailoverFigure = {
        driver: f.driver === 'ballot' ? `lease ${f.store}` : `${f.driver} Election (${f.store})`,
        family: f.driver === 'ballot' ? 'lease' : 'etcd3',
        fault: f.kind,
        figure: 'acts',
        floorMs: f.floorMs,
        floorNote: 'TTL',
        samples: round(f.samples),
      }
      if (f.note) fig.note = f.note
      results.failover.push(fig)
    }
    results.leaseIdle.push(...r.idle)
    for (const s of r.skipped) results.notes.push(`lease store ${s}`)
  })
}

async function scaleSection() {
  for (const driver of settings.scaleDrivers)
    for (const size of settings.sizes)
      await part(`scale ${driver} ${size} nodes`, async () => {
        const row = await scaleOne({
          driver,
          size,
          runs: settings.scaleRuns,
          restS: settings.restS,
          settleS: settings.settleS,
        })
        results.scale.push({ ...row, crash: round(row.crash), handover: round(row.handover) })
        log(`scale ${driver} ${size}: ${row.messagesPerSecond} msgs/s, ${row.cpuPercentPerNode} %CPU/node`)
      })
  if (!settings.sizes.includes(51) && os.cpus().length <= 2)
    results.notes.push(
      `scale: 51 processes not run on this ${os.cpus().length}-core machine (pass --sizes ...,51 where it has the cores)`,
    )
  await part('baseline RSS', async () => {
    results.baselineRssMiB = await baselineRssMiB()
  })
}

async function simSection() {
  await part('sim', async () => {
    results.sim = simMessages({ voters: settings.simVoters, runs: settings.simRuns })
    log(`sim: ${results.sim.length} rows`)
  })
}

async function groupsSection() {
  await part('groups', async () => {
    const r = await growGroups({
      raft: settings.groupsRaft,
      lease: settings.groupsLease,
      restS: settings.restS,
      log,
    })
    results.groups = r.rows
    results.notes.push(...r.notes.map((n) => `groups, ${n}`))
  })
}

async function stabilitySection() {
  for (const driver of settings.stabilityDrivers)
    for (const hog of [undefined, settings.hog])
      await part(`stability ${driver}${hog ? ' with hog' : ''}`, async () => {
        const row = await stabilityRun({
          driver,
          nodes: settings.nodes,
          seconds: settings.stabilityS,
          ...(hog ? { hog } : {}),
        })
        results.stability.push(row)
        log(`stability ${driver} hog ${row.hog}: ${row.leaderChanges} leader changes`)
      })
}

const RUN: Record<Section, () => Promise<void>> = {
  failover: failoverSection,
  scale: scaleSection,
  sim: simSection,
  groups: groupsSection,
  stability: stabilitySection,
}
for (const s of SECTIONS) {
  if (!sections.includes(s)) continue
  log(`section ${s}`)
  const t0 = performance.now()
  const startedAt = new Date().toISOString()
  const loadavg = os.loadavg()
  const notesBefore = results.notes.length
  await RUN[s]()
  results.durations[s] = Math.round((performance.now() - t0) / 1000)
  ;(results.sources as NonNullable<Results['sources']>)[s] = {
    command: results.command,
    flags: argv,
    quick: q,
    startedAt,
    loadavg,
    durationS: results.durations[s] as number,
    notes: results.notes.slice(notesBefore),
  }
  save()
}
results.finishedAt = new Date().toISOString()
save()
log(`wrote ${jsonPath} and ${join(a.out, 'benchmarks.md')}`)
