/**
 * Many groups in one process:
 *   raft    G independent raft groups of 3, spread over 3 processes (each process is one member of every
 *           group): time until every group has a leader, then a quiet window: CPU and RSS per group,
 *           elections and leader changes while nothing fails. Each RaftElection has its own TCP port:
 *           the library cannot share one transport between groups today, so this measures G separate
 *           elections per process.
 *   lease   N lease candidates on etcd in one process, each in an election of its own: time until all
 *           lead, CPU and RSS per candidate, gRPC messages etcd receives per candidate per second, and
 *           leaderships lost while nothing fails. Each candidate has its own etcd3 client (no shared
 *           connection today).
 * Counts grow until a step fails (not every group led within the deadline, or leadership moved while
 * idle); the last good step is the figure.
 *
 *   node --import tsx bench/groups.ts [--raft 1,10,50,100,200] [--lease 1,10,50,100,200] [--rest-s 10]
 */
import { parseArgs } from 'node:util'
import { EtcdServer } from '../test/helpers/etcd-server.js'
import { freePorts, RaftProcess, waitFor } from '../test/helpers/raft-cluster.js'
import { cpuWindow, rssMiB } from './lib/proc.js'
import { isMain, now, sleep, table } from './stats.js'

const RAFT_GROUPS = new URL('./fixtures/raft-groups-node.ts', import.meta.url).pathname
const LEASE_MANY = new URL('./fixtures/lease-many-node.ts', import.meta.url).pathname

/** One step of the many-groups benchmark. */
export interface GroupsRow {
  kind: 'raft groups' | 'lease candidates'
  /** Groups (raft) or candidates (lease) in one process. */
  count: number
  /** Whether every group led within the deadline and nothing moved while idle. */
  ok: boolean
  /** From every process up to every group led (ms); undefined if not within the deadline. */
  allLedMs?: number
  /** CPU per group at rest, % of one core (summed over the processes that host it). */
  cpuPercentPerGroup: number
  /** RSS per group (MiB) above one process with a single group, summed over processes. */
  rssMiBPerGroup: number
  /** RSS of one process (MiB). */
  rssMiBPerProcess: number
  /** Leader changes (raft) or lost leaderships (lease) while idle. */
  changesAtRest: number
  /** etcd gRPC messages received per candidate per second (lease only). */
  storeMessagesPerSecond?: number
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0)

async function end(ps: RaftProcess[]): Promise<void> {
  for (const p of ps) p.kill('SIGKILL')
  await Promise.all(ps.map((p) => p.waitExit().catch(() => undefined)))
}

/** G raft groups of 3 over 3 processes. */
export async function raftGroups(count: number, restS: number, deadlineMs = 120_000): Promise<GroupsRow> {
  const ports = await freePorts(count * 3)
  const groups = Array.from({ length: count }, (_, g) =>
    ['n1', 'n2', 'n3'].map((id, k) => ({ id, address: `127.0.0.1:${ports[g * 3 + k]}` })),
  )
  const ps = ['n1', 'n2', 'n3'].map(
    (id) => new RaftProcess(id, { id, timing: 'default', groups }, RAFT_GROUPS),
  )
  try {
    await waitFor('every process up', () => ps.every((p) => p.events.some((e) => e.ev === 'ready')), 180_000)
    const up = Math.max(...ps.map((p) => p.events.find((e) => e.ev === 'ready')?.t as number))
    /** Each group's leader@token as every process names it now, or undefined where they differ. */
    const agreed = () =>
      Array.from({ length: count }, (_, g) => {
        const names = ps.map((p) => {
          const e = p.events.findLast((x) => x.ev === 'change' && x.g === g)
          return e?.leader ? `${e.leader}@${e.token}` : undefined
        })
        return names.every((n) => n !== undefined && n === names[0]) ? names[0] : undefined
      })
    const led = await waitFor('every group led', () => agreed().every(Boolean) && now(), deadlineMs).catch(
      () => undefined,
    )
    await sleep(1000)
    const atStart = agreed()
    const cpu = cpuWindow(ps.map((p) => p.pid))
    await sleep(restS * 1000)
    const cpuPerProcess = cpu.percent()
    const atEnd = agreed()
    const rss = ps.map((p) => rssMiB(p.pid) ?? 0)
    const changes = atStart.filter((a, g) => a !== atEnd[g]).length
    return {
      kind: 'raft groups',
      count,
      ok: led !== undefined && changes === 0,
      ...(led !== undefined ? { allLedMs: Math.round(led - up) } : {}),
      cpuPercentPerGroup: Math.round(((cpuPerProcess * 3) / count) * 100) / 100,
      rssMiBPerGroup: 0, // filled in against the one-group step by the caller
      rssMiBPerProcess: Math.round((sum(rss) / 3) * 10) / 10,
      changesAtRest: changes,
    }
  } finally {
    await end(ps)
  }
}

/** N lease candidates (separate elections) in one process on one etcd. */
export async function leaseCandidates(
  etcd: EtcdServer,
  count: number,
  restS: number,
  deadlineMs = 120_000,
): Promise<GroupsRow> {
  const p = new RaftProcess(
    'many',
    { hosts: [etcd.endpoint], prefix: `bench-many-${count}-${Date.now()}`, count, ttlMs: 5000 },
    LEASE_MANY,
  )
  const received = async () => {
    const text = await (await fetch(`http://${etcd.endpoint}/metrics`)).text()
    let total = 0
    for (const line of text.split('\n'))
      if (line.startsWith('grpc_server_msg_received_total{')) total += Number(line.split(' ').at(-1))
    return total
  }
  const leading = () => {
    const state = new Map<number, boolean>()
    for (const e of p.events) if (e.ev === 'lead') state.set(e.i as number, e.leading === true)
    return [...state.values()].filter(Boolean).length
  }
  try {
    await waitFor('the process up', () => p.events.some((e) => e.ev === 'ready'), 180_000).catch(
      () => undefined,
    )
    const up = p.events.find((e) => e.ev === 'ready')?.t as number | undefined
    const led = await waitFor('every candidate leads', () => leading() === count && now(), deadlineMs).catch(
      () => undefined,
    )
    await sleep(1000)
    const lossesBefore = p.events.filter((e) => e.ev === 'lead' && e.leading === false).length
    const before = await received()
    const cpu = cpuWindow([p.pid])
    const t0 = now()
    await sleep(restS * 1000)
    const cpuPercent = cpu.percent()
    const rate = ((await received()) - before) / ((now() - t0) / 1000)
    const losses = p.events.filter((e) => e.ev === 'lead' && e.leading === false).length - lossesBefore
    const rss = rssMiB(p.pid) ?? 0
    return {
      kind: 'lease candidates',
      count,
      ok: led !== undefined && up !== undefined && losses === 0,
      ...(led !== undefined && up !== undefined ? { allLedMs: Math.round(led - up) } : {}),
      cpuPercentPerGroup: Math.round((cpuPercent / count) * 100) / 100,
      rssMiBPerGroup: 0,
      rssMiBPerProcess: rss,
      changesAtRest: losses,
      storeMessagesPerSecond: Math.round((rate / count) * 100) / 100,
    }
  } finally {
    await end([p])
  }
}

/** Grows the count through `steps` until one fails; RSS per group is taken against the first step. */
export async function growGroups(o: {
  raft: number[]
  lease: number[]
  restS: number
  log?: (line: string) => void
}): Promise<{ rows: GroupsRow[]; notes: string[] }> {
  const rows: GroupsRow[] = []
  const notes: string[] = []
  const perGroup = (steps: GroupsRow[], processes: number) => {
    const first = steps[0]
    for (const r of steps)
      if (first && r.count > first.count)
        r.rssMiBPerGroup =
          Math.round(
            (((r.rssMiBPerProcess - first.rssMiBPerProcess) * processes) / (r.count - first.count)) * 100,
          ) / 100
  }
  const raftRows: GroupsRow[] = []
  for (const count of o.raft) {
    const r = await raftGroups(count, o.restS)
    o.log?.(`raft groups ${count}: ${JSON.stringify(r)}`)
    raftRows.push(r)
    if (!r.ok) {
      notes.push(
        `raft: stopped growing at ${count} groups per process (not all led, or leadership moved idle)`,
      )
      break
    }
  }
  perGroup(raftRows, 3)
  rows.push(...raftRows)
  if (o.lease.length > 0) {
    let etcd: EtcdServer | undefined
    try {
      etcd = await EtcdServer.start()
    } catch (err) {
      notes.push(`lease: etcd could not start here (${(err as Error).message.split('\n')[0]})`)
    }
    if (etcd) {
      const leaseRows: GroupsRow[] = []
      try {
        for (const count of o.lease) {
          const r = await leaseCandidates(etcd, count, o.restS)
          o.log?.(`lease candidates ${count}: ${JSON.stringify(r)}`)
          leaseRows.push(r)
          if (!r.ok) {
            notes.push(
              `lease: stopped growing at ${count} candidates per process (not all led, or one lost its lease idle)`,
            )
            break
          }
        }
      } finally {
        await etcd.close()
      }
      perGroup(leaseRows, 1)
      rows.push(...leaseRows)
    }
  }
  return { rows, notes }
}

if (isMain(import.meta.url)) {
  const { values: args } = parseArgs({
    options: {
      raft: { type: 'string', default: '1,10,50,100,200' },
      lease: { type: 'string', default: '1,10,50,100,200' },
      'rest-s': { type: 'string', default: '10' },
    },
  })
  const list = (s: string) => s.split(',').filter(Boolean).map(Number)
  const r = await growGroups({
    raft: list(args.raft),
    lease: list(args.lease),
    restS: Number(args['rest-s']),
    log: (l) => console.error(l),
  })
  console.log(table(r.rows.map((x) => ({ ...x }) as unknown as Record<string, string | number>)))
  for (const n of r.notes) console.log(n)
}
