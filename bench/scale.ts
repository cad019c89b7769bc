/**
 * Raft and bully at cluster sizes of real processes on loopback: time to the first leader, crash
 * failover and hand-over, and the cost at rest (messages and bytes per second, CPU and RSS per node).
 *
 *   node --import tsx bench/scale.ts [--sizes 3,5,7,9,15,25] [--runs 5] [--rest-s 10]
 *                                    [--drivers raft,bully-tcp,bully-multicast]
 *
 * RSS per node includes Node itself and tsx's TypeScript loader: the baseline row (an idle
 * `node --import tsx` process) says how much of it is not the election.
 */
import { spawn } from 'node:child_process'
import { parseArgs } from 'node:util'
import { BullyCluster } from '../test/helpers/bully-cluster.js'
import { RaftCluster, type RaftProcess, waitFor } from '../test/helpers/raft-cluster.js'
import { type BullyTransport, bullyFailoverOnce, bullyLayout, lastLearned } from './bully.js'
import { cpuWindow, rssMiB } from './lib/proc.js'
import { type FaultKind, raftFailoverOnce } from './raft.js'
import { isMain, now, sleep, summarize, table } from './stats.js'

/** A peer-to-peer driver measured at scale. */
export type ScaleDriver = 'raft' | 'bully-tcp' | 'bully-multicast'

/** A running cluster of either driver, as the scale benchmark needs it. */
interface Running {
  procs(): RaftProcess[]
  /** Time the last node learned of the first agreed leader, once there is one. */
  firstAgreement(): Promise<number>
  failover(kind: FaultKind): Promise<number>
  close(): Promise<void>
}

async function startRaft(size: number): Promise<Running> {
  const c = await RaftCluster.create({ size, timing: 'default' })
  c.startAll()
  return {
    procs: () => c.live(),
    firstAgreement: async () => {
      const a = await c.waitForAgreement(undefined, 120_000)
      return lastLearned(c.live(), a.id, a.token)
    },
    failover: async (kind) => (await raftFailoverOnce(c, kind)).named,
    close: () => c.close(),
  }
}

async function startBully(transport: BullyTransport, size: number): Promise<Running> {
  const c = new BullyCluster()
  const opts = await bullyLayout(transport, size, 'default')
  for (let i = 1; i <= size; i++) c.start(`n${i}`, opts(i))
  return {
    procs: () => c.live(),
    firstAgreement: async () => {
      const a = await c.waitForLeader(undefined, undefined, 120_000)
      return lastLearned(c.live(), a.id, a.token)
    },
    failover: async (kind) => (await bullyFailoverOnce(c, opts, kind)).time,
    close: () => c.close(),
  }
}

/** The cost of one cluster size at rest, and its failover figures. */
export interface ScaleRow {
  driver: ScaleDriver
  nodes: number
  /** From the last node up to every node naming the first leader (ms). */
  firstLeaderMs: number
  crash: number[]
  handover: number[]
  messagesPerSecond: number
  bytesPerSecond: number
  /** Mean CPU per node at rest, % of one core. */
  cpuPercentPerNode: number
  /** Mean RSS per node (MiB). */
  rssMiBPerNode: number
  /** Elections started while at rest (should be 0). */
  electionsAtRest: number
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0)

/** One size of one driver: start, first leader, rest window, then failovers. */
export async function scaleOne(o: {
  driver: ScaleDriver
  size: number
  runs: number
  restS: number
  /** Seconds from the first agreement to the start of the rest window (start-up work, first GCs). Default 1. */
  settleS?: number
}): Promise<ScaleRow> {
  const r =
    o.driver === 'raft'
      ? await startRaft(o.size)
      : await startBully(o.driver === 'bully-tcp' ? 'tcp' : 'multicast', o.size)
  try {
    await waitFor(
      'every node up',
      () =>
        r.procs().length === o.size &&
        r.procs().every((p) => p.events.some((e) => e.ev === 'ready' || e.ev === 'started')),
      180_000,
    )
    const up = Math.max(
      ...r.procs().map((p) => p.events.find((e) => e.ev === 'ready' || e.ev === 'started')?.t as number),
    )
    const agreed = await r.firstAgreement()
    // Let start-up pass (hellos, catch-up, lazy compilation, the first full collections): the rest window
    // is the node as it runs for hours, not its first seconds.
    await sleep((o.settleS ?? 1) * 1000)
    const procs = r.procs()
    const before = await Promise.all(procs.map((p) => p.state()))
    const cpu = cpuWindow(procs.map((p) => p.pid))
    const t0 = now()
    await sleep(o.restS * 1000)
    const after = await Promise.all(procs.map((p) => p.state()))
    const elapsed = (now() - t0) / 1000
    const cpuPercent = cpu.percent()
    const rss = procs.map((p) => rssMiB(p.pid) ?? 0)
    const total = (states: typeof before, key: 'messagesSent' | 'bytesSent') =>
      sum(states.map((s) => (s.transport as Record<string, number>)[key] ?? 0))
    const elections = (states: typeof before) =>
      sum(states.map((s) => (s.counters as { electionsStarted?: number }).electionsStarted ?? 0))
    const row: ScaleRow = {
      driver: o.driver,
      nodes: o.size,
      firstLeaderMs: Math.round(agreed - up),
      crash: [],
      handover: [],
      messagesPerSecond: Math.round((total(after, 'messagesSent') - total(before, 'messagesSent')) / elapsed),
      bytesPerSecond: Math.round((total(after, 'bytesSent') - total(before, 'bytesSent')) / elapsed),
      cpuPercentPerNode: cpuPercent,
      rssMiBPerNode: Math.round((sum(rss) / rss.length) * 10) / 10,
      electionsAtRest: elections(after) - elections(before),
    }
    for (let i = 0; i < o.runs; i++) row.crash.push(await r.failover('crash'))
    for (let i = 0; i < o.runs; i++) row.handover.push(await r.failover('handover'))
    return row
  } finally {
    await r.close()
  }
}

/** RSS (MiB) of an idle `node --import tsx` process: what every node's RSS includes before any election. */
export async function baselineRssMiB(): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', 'setInterval(() => {}, 1000)'], {
    stdio: 'ignore',
  })
  try {
    await sleep(2500)
    return rssMiB(child.pid ?? -1) ?? Number.NaN
  } finally {
    child.kill('SIGKILL')
  }
}

if (isMain(import.meta.url)) {
  const { values: args } = parseArgs({
    options: {
      sizes: { type: 'string', default: '3,5,7,9,15,25' },
      runs: { type: 'string', default: '5' },
      'rest-s': { type: 'string', default: '10' },
      drivers: { type: 'string', default: 'raft,bully-tcp,bully-multicast' },
    },
  })
  const rows: Array<Record<string, string | number>> = []
  for (const driver of args.drivers.split(',').filter(Boolean) as ScaleDriver[])
    for (const size of args.sizes.split(',').map(Number)) {
      const r = await scaleOne({ driver, size, runs: Number(args.runs), restS: Number(args['rest-s']) })
      const row = {
        driver,
        nodes: size,
        'first leader ms': r.firstLeaderMs,
        'crash p50': summarize(r.crash).p50,
        'handover p50': summarize(r.handover).p50,
        'msgs/s': r.messagesPerSecond,
        'bytes/s': r.bytesPerSecond,
        'cpu %/node': r.cpuPercentPerNode,
        'rss MiB/node': r.rssMiBPerNode,
        'elections at rest': r.electionsAtRest,
      }
      console.error(JSON.stringify(row))
      rows.push(row)
    }
  console.log(table(rows))
  console.log(`baseline RSS of an idle node --import tsx: ${await baselineRssMiB()} MiB`)
}
