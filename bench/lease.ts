/**
 * Lease driver figures on a real etcd started here (test/helpers/etcd-server.ts), for ballot and, on the
 * same etcd, for the etcd3 package's own Election:
 *   resign     the leader resigns → the next candidate leads (three candidates in three processes)
 *   kill -9    the leader's process is SIGKILLed → the next one leads (it must wait out the lease: TTL)
 *   idle       requests etcd receives per second from one idle candidate, and from one idle follower
 *              (grpc_server_msg_received_total from etcd's /metrics, every method)
 *
 *   node --import tsx bench/lease.ts [--runs 20] [--ttl 2]
 */
import { parseArgs } from 'node:util'
import { LeaseFollower } from '../src/lease/follower.js'
import { EtcdBackend } from '../src/lease/stores/etcd.js'
import { EtcdServer } from '../test/helpers/etcd-server.js'
import { RaftProcess, waitFor } from '../test/helpers/raft-cluster.js'
import { summarize, table } from './stats.js'

const { values: args } = parseArgs({
  options: { runs: { type: 'string', default: '20' }, ttl: { type: 'string', default: '2' } },
})
const runs = Number(args.runs)
const ttlS = Number(args.ttl)
const BALLOT = new URL('../test/fixtures/lease-node.ts', import.meta.url).pathname
const ETCD3 = new URL('./etcd3-election-node.ts', import.meta.url).pathname
const now = () => performance.timeOrigin + performance.now()

type Kind = 'ballot' | 'etcd3'
let serial = 0

function spawnCandidate(kind: Kind, etcd: EtcdServer, election: string, id: string): RaftProcess {
  const opts =
    kind === 'ballot'
      ? { id, hosts: [etcd.endpoint], election, ttlMs: ttlS * 1000 }
      : { id, hosts: [etcd.endpoint], election, ttlS }
  return new RaftProcess(id, opts, kind === 'ballot' ? BALLOT : ETCD3)
}

/** Whether the process says it leads now (its last lead event). */
function leads(p: RaftProcess): boolean {
  for (let i = p.events.length - 1; i >= 0; i--)
    if (p.events[i]?.ev === 'lead') return p.events[i]?.leading === true
  return false
}

async function group(kind: Kind, etcd: EtcdServer, n: number) {
  const election = `bench-${kind}-${++serial}`
  const ps: RaftProcess[] = []
  for (let i = 0; i < n; i++) {
    const p = spawnCandidate(kind, etcd, election, `${kind}-${i}`)
    ps.push(p)
    await waitFor('ready', () => p.events.some((e) => e.ev === 'ready'), 30_000)
  }
  return { election, ps }
}

async function resignRuns(kind: Kind, etcd: EtcdServer): Promise<number[]> {
  const { ps } = await group(kind, etcd, 3)
  const out: number[] = []
  try {
    for (let i = 0; i < runs; i++) {
      const leader = await waitFor('a leader', () => ps.find(leads), 30_000)
      const t0 = now()
      leader.send('resign')
      const next = await waitFor('the next leader', () => ps.find((p) => p !== leader && leads(p)), 30_000)
      const t = next.events.findLast((e) => e.ev === 'lead' && e.leading)?.t as number
      out.push(t - t0)
      await new Promise((r) => setTimeout(r, 50))
    }
  } finally {
    for (const p of ps) p.kill()
    await Promise.all(ps.map((p) => p.waitExit().catch(() => undefined)))
  }
  return out
}

async function killRuns(kind: Kind, etcd: EtcdServer): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < runs; i++) {
    const { ps } = await group(kind, etcd, 2)
    try {
      const leader = await waitFor('a leader', () => ps.find(leads), 30_000)
      await new Promise((r) => setTimeout(r, Math.random() * ttlS * 333)) // any point of a keep-alive period
      const t0 = now()
      leader.kill('SIGKILL')
      const next = await waitFor('the next leader', () => ps.find((p) => p !== leader && leads(p)), 30_000)
      out.push((next.events.findLast((e) => e.ev === 'lead' && e.leading)?.t as number) - t0)
    } finally {
      for (const p of ps) p.kill()
      await Promise.all(ps.map((p) => p.waitExit().catch(() => undefined)))
    }
  }
  return out
}

async function received(etcd: EtcdServer): Promise<number> {
  const text = await (await fetch(`http://${etcd.endpoint}/metrics`)).text()
  let sum = 0
  for (const line of text.split('\n'))
    if (line.startsWith('grpc_server_msg_received_total{')) sum += Number(line.split(' ').at(-1))
  return sum
}

/** Messages per second etcd receives while `setUp()`'s participants sit idle for `seconds`. */
async function idleRate(etcd: EtcdServer, seconds: number, setUp: () => Promise<() => Promise<void>>) {
  const tearDown = await setUp()
  await new Promise((r) => setTimeout(r, 1000))
  const before = await received(etcd)
  await new Promise((r) => setTimeout(r, seconds * 1000))
  const after = await received(etcd)
  await tearDown()
  // Each /metrics scrape is HTTP, not gRPC: not counted.
  return Math.round(((after - before) / seconds) * 100) / 100
}

const etcd = await EtcdServer.start()
try {
  const rows: Array<Record<string, string | number>> = []
  for (const kind of ['ballot', 'etcd3'] as Kind[]) {
    rows.push({
      driver: kind,
      measure: 'resign → next leads (ms)',
      ...summarize(await resignRuns(kind, etcd)),
    })
    rows.push({
      driver: kind,
      measure: `kill -9 → next leads (ms), TTL ${ttlS} s`,
      ...summarize(await killRuns(kind, etcd)),
    })
  }
  const idleSeconds = Math.max(6, ttlS * 3)
  const candidateRate = async (kind: Kind) =>
    idleRate(etcd, idleSeconds, async () => {
      const { ps } = await group(kind, etcd, 1)
      await waitFor('it leads', () => leads(ps[0] as RaftProcess), 30_000)
      return async () => {
        for (const p of ps) p.kill()
        await Promise.all(ps.map((p) => p.waitExit()))
      }
    })
  const followerRate = await idleRate(etcd, idleSeconds, async () => {
    const f = new LeaseFollower({
      backend: new EtcdBackend({ hosts: [etcd.endpoint], election: 'bench-idle' }),
    })
    await f.start()
    return () => f.stop()
  })
  const idle = {
    ballotCandidate: await candidateRate('ballot'),
    etcd3Candidate: await candidateRate('etcd3'),
    ballotFollower: followerRate,
  }
  console.log(table(rows))
  console.log(
    `\nidle messages/s received by etcd (TTL ${ttlS} s, over ${idleSeconds} s): ballot candidate ${idle.ballotCandidate}, ` +
      `etcd3 Election candidate ${idle.etcd3Candidate}, ballot follower ${idle.ballotFollower}`,
  )
  console.log(JSON.stringify({ runs, ttlS, rows, idle }))
} finally {
  await etcd.close()
}
