/**
 * Stability: leader changes while nothing fails, over a long quiet run (10 minutes in the full report),
 * with and without a CPU hog in every node process (the event loop spins for --hog-busy-ms every
 * --hog-every-ms: timers fire late, as on a busy host). The goal is no change at all.
 *
 *   node --import tsx bench/stability.ts [--duration-s 600] [--nodes 5] [--drivers raft,bully-tcp]
 *                                        [--hog-busy-ms 50] [--hog-every-ms 200]
 */
import { parseArgs } from 'node:util'
import { BullyCluster } from '../test/helpers/bully-cluster.js'
import { RaftCluster, type RaftProcess, waitFor } from '../test/helpers/raft-cluster.js'
import { bullyLayout } from './bully.js'
import { cpuWindow } from './lib/proc.js'
import type { ScaleDriver } from './scale.js'
import { isMain, sleep, table } from './stats.js'

const HOG = new URL('./lib/hog.mjs', import.meta.url).href

/** One stability run. */
export interface StabilityRow {
  driver: ScaleDriver
  nodes: number
  hog: string
  seconds: number
  /** New leaderships (tokens) any node saw after the first agreement. */
  leaderChanges: number
  /** Elections started (raft) or claims (bully), summed over nodes. */
  electionsStarted: number
  /** Mean CPU per node over the run, % of one core (the hog's included). */
  cpuPercentPerNode: number
}

/** Runs one cluster quietly for `seconds`, the hog preloaded into every node when asked. */
export async function stabilityRun(o: {
  driver: ScaleDriver
  nodes: number
  seconds: number
  hog?: { busyMs: number; everyMs: number }
}): Promise<StabilityRow> {
  // Children inherit the environment when spawned: the hog rides in with NODE_OPTIONS.
  const saved = { opts: process.env.NODE_OPTIONS, hog: process.env.BENCH_HOG }
  if (o.hog) {
    process.env.NODE_OPTIONS = `${saved.opts ?? ''} --import ${HOG}`.trim()
    process.env.BENCH_HOG = `${o.hog.busyMs},${o.hog.everyMs}`
  }
  let procs: () => RaftProcess[]
  let close: () => Promise<void>
  let agreed: () => { id: string; token: number } | undefined
  try {
    if (o.driver === 'raft') {
      const c = await RaftCluster.create({ size: o.nodes, timing: 'default' })
      c.startAll()
      procs = () => c.live()
      close = () => c.close()
      agreed = () => c.agreedLeader()
    } else {
      const c = new BullyCluster()
      const opts = await bullyLayout(o.driver === 'bully-tcp' ? 'tcp' : 'multicast', o.nodes, 'default')
      for (let i = 1; i <= o.nodes; i++) c.start(`n${i}`, opts(i))
      procs = () => c.live()
      close = () => c.close()
      agreed = () => c.agreedLeader()
    }
  } finally {
    if (saved.opts === undefined) delete process.env.NODE_OPTIONS
    else process.env.NODE_OPTIONS = saved.opts
    if (saved.hog === undefined) delete process.env.BENCH_HOG
    else process.env.BENCH_HOG = saved.hog
  }
  try {
    const first = await waitFor('a first agreed leader', agreed, 120_000)
    await sleep(2000) // bully's highest node may take over from a first claimer: let start-up settle
    const settled = agreed() ?? first
    const ps = procs()
    const electionsOf = async () =>
      (await Promise.all(ps.map((p) => p.state()))).reduce(
        (a, s) => a + ((s.counters as { electionsStarted?: number }).electionsStarted ?? 0),
        0,
      )
    const e0 = await electionsOf()
    const cpu = cpuWindow(ps.map((p) => p.pid))
    const t0 = Date.now()
    await sleep(o.seconds * 1000)
    const tokens = new Set<number>()
    for (const p of ps)
      for (const e of p.events)
        if (
          e.ev === 'change' &&
          (e.t as number) >= t0 &&
          e.token !== undefined &&
          (e.token as number) > settled.token
        )
          tokens.add(e.token as number)
    return {
      driver: o.driver,
      nodes: o.nodes,
      hog: o.hog ? `${o.hog.busyMs} ms busy every ${o.hog.everyMs} ms` : 'none',
      seconds: o.seconds,
      leaderChanges: tokens.size,
      electionsStarted: (await electionsOf()) - e0,
      cpuPercentPerNode: cpu.percent(),
    }
  } finally {
    await close()
  }
}

if (isMain(import.meta.url)) {
  const { values: args } = parseArgs({
    options: {
      'duration-s': { type: 'string', default: '600' },
      nodes: { type: 'string', default: '5' },
      drivers: { type: 'string', default: 'raft,bully-tcp' },
      'hog-busy-ms': { type: 'string', default: '50' },
      'hog-every-ms': { type: 'string', default: '200' },
    },
  })
  const hog = { busyMs: Number(args['hog-busy-ms']), everyMs: Number(args['hog-every-ms']) }
  const rows: StabilityRow[] = []
  for (const driver of args.drivers.split(',').filter(Boolean) as ScaleDriver[])
    for (const withHog of [false, true]) {
      const r = await stabilityRun({
        driver,
        nodes: Number(args.nodes),
        seconds: Number(args['duration-s']),
        ...(withHog ? { hog } : {}),
      })
      console.error(JSON.stringify(r))
      rows.push(r)
    }
  console.log(table(rows as unknown as Array<Record<string, string | number>>))
}
