/**
 * Bully figures with real processes on loopback, over TCP and over UDP multicast (127.0.0.1), with the
 * default timings:
 *   failover   kill -9 of the leader → every survivor names the same new leader (p50, p99); also
 *              SIGSTOP (silent) and a hand-over (stop with hand-over) with --kinds
 *   claims     election rounds (claims, each a new epoch) from the kill to agreement; aim: 1
 *   messages   election messages those claims cost (a claim is one datagram over multicast, one frame
 *              per peer over TCP), against the classic algorithm's worst case
 *   start      all nodes started at once → first agreement, counted from the last node being up;
 *              a start with no agreement within 10 s counts as a deadlock
 *
 *   node --import tsx bench/bully.ts [--runs 20] [--starts 100] [--sizes 3,5] [--transports tcp,multicast]
 *                                    [--kinds crash]
 *
 * `npm run bench` (bench/run.ts) calls the exported functions for the report.
 */
import { parseArgs } from 'node:util'
import { BULLY_TIMING_PROFILES, type BullyElectionOptions } from '../src/index.js'
import { BullyCluster } from '../test/helpers/bully-cluster.js'
import { freePorts, freeUdpPort, type RaftProcess, waitFor } from '../test/helpers/raft-cluster.js'
import type { FaultKind } from './raft.js'
import { isMain, now, sleep, summarize, table } from './stats.js'

/** A bully transport. */
export type BullyTransport = 'tcp' | 'multicast'
/** A bully timing profile. */
export type BullyProfile = 'default' | 'fast'

/** What no safe design can beat: the detection time (the leader timeout). */
export function bullyFloorMs(profile: BullyProfile): number {
  return BULLY_TIMING_PROFILES[profile].leaderTimeoutMs
}

/** The classic bully's worst case after a leader dies with s survivors: the lowest starts it. */
function classicWorst(survivors: number): number {
  const elections = (survivors * (survivors - 1)) / 2
  return elections + elections + (survivors - 1) // ELECTION, OK, COORDINATOR
}

/** Options for node i (pid i) of a cluster of `size` on the given transport. */
export async function bullyLayout(
  kind: BullyTransport,
  size: number,
  timing: BullyProfile,
): Promise<(i: number) => BullyElectionOptions> {
  if (kind === 'multicast') {
    const group = `239.255.41.17:${await freeUdpPort()}`
    return (i) => ({ pid: i, multicast: { group, iface: '127.0.0.1' }, timing })
  }
  const addrs = (await freePorts(size)).map((p) => `127.0.0.1:${p}`)
  return (i) => ({ pid: i, listen: addrs[i - 1] as string, nodes: addrs, timing })
}

/**
 * Claims made since `since`, with tokens above `above` up to `upTo`: each claim is a leadership with a
 * token of its own (epochs are per-node slots, so tokens no longer count claims by their difference),
 * and every claimer reports its own leadership, so distinct tokens named in change events count them.
 */
function claimsSeen(nodes: RaftProcess[], since: number, above: number, upTo: number): number {
  const tokens = new Set<number>()
  for (const n of nodes)
    for (const e of n.events) {
      const token = e.token as number | undefined
      if (
        e.ev === 'change' &&
        (e.t as number) >= since &&
        token !== undefined &&
        token > above &&
        token <= upTo
      )
        tokens.add(token)
    }
  return tokens.size
}

/** When the last of `nodes` learned that `id` leads with `token`. */
export function lastLearned(nodes: RaftProcess[], id: string, token: number): number {
  let latest = 0
  for (const n of nodes) {
    const ev = n.events.find((e) => e.ev === 'change' && e.leader === id && e.token === token)
    latest = Math.max(latest, ev?.t ?? 0)
  }
  return latest
}

/**
 * One failover in a running bully cluster (node names n1..nN, pid = the number): inject the fault,
 * time agreement on the next leader, restart the node and wait until it leads again.
 */
export async function bullyFailoverOnce(
  c: BullyCluster,
  opts: (i: number) => BullyElectionOptions,
  kind: FaultKind,
): Promise<{ time: number; claims: number }> {
  const lead = await c.waitForLeader(undefined, undefined, 60_000)
  const name = [...c.nodes.entries()].find(([n]) => c.idOf(n) === lead.id)?.[0] as string
  const leader = c.nodes.get(name) as RaftProcess
  await sleep(300 + Math.random() * 200) // a random heartbeat phase
  let t0 = now()
  if (kind === 'crash') leader.kill('SIGKILL')
  else if (kind === 'silent') leader.kill('SIGSTOP')
  else leader.send('stop')
  const survivors = () => c.live().filter((n) => n !== leader)
  const next = await waitFor(
    'a new agreed leader',
    () => {
      const a = c.agreedLeader(survivors())
      return a && a.token > lead.token && a.id !== lead.id ? a : undefined
    },
    60_000,
  )
  if (kind === 'handover') t0 = (leader.events.find((e) => e.ev === 'stopping')?.t as number) ?? t0
  const time = lastLearned(survivors(), next.id, next.token) - t0
  const claims = claimsSeen(survivors(), t0, lead.token, next.token)
  if (kind === 'silent') leader.kill('SIGKILL')
  await leader.waitExit()
  c.start(name, opts(Number(name.slice(1)))) // back to full strength; it takes over again
  await c.waitForLeader(lead.id, undefined, 60_000)
  return { time, claims }
}

/** `runs` failovers of one kind in a fresh cluster. */
export async function bullyFailover(o: {
  transport: BullyTransport
  size: number
  runs: number
  kind: FaultKind
  timing: BullyProfile
}): Promise<{ times: number[]; claims: number[] }> {
  const c = new BullyCluster()
  const times: number[] = []
  const claims: number[] = []
  try {
    const opts = await bullyLayout(o.transport, o.size, o.timing)
    for (let i = 1; i <= o.size; i++) c.start(`n${i}`, opts(i))
    for (let r = 0; r < o.runs; r++) {
      const f = await bullyFailoverOnce(c, opts, o.kind)
      times.push(f.time)
      claims.push(f.claims)
    }
  } finally {
    await c.close()
  }
  return { times, claims }
}

async function simultaneousStarts(kind: BullyTransport, size: number, starts: number, timing: BullyProfile) {
  const firstAgreement: number[] = []
  let deadlocks = 0
  let extraClaims = 0
  for (let s = 0; s < starts; s++) {
    const c = new BullyCluster()
    try {
      const opts = await bullyLayout(kind, size, timing)
      for (let i = 1; i <= size; i++) c.start(`n${i}`, opts(i))
      await waitFor(
        'every node up',
        () => c.live().every((n) => n.events.some((e) => e.ev === 'started')),
        30_000,
      )
      const up = Math.max(...c.live().map((n) => n.events.find((e) => e.ev === 'started')?.t as number))
      const agreed = await waitFor('agreement', () => c.agreedLeader(), 10_000).catch(() => undefined)
      if (!agreed) {
        deadlocks++
        continue
      }
      firstAgreement.push(lastLearned(c.live(), agreed.id, agreed.token) - up)
      extraClaims += claimsSeen(c.live(), 0, 0, agreed.token) - 1
    } finally {
      await c.close()
    }
  }
  return { firstAgreement, deadlocks, extraClaims }
}

if (isMain(import.meta.url)) {
  const { values: args } = parseArgs({
    options: {
      runs: { type: 'string', default: '20' },
      starts: { type: 'string', default: '100' },
      sizes: { type: 'string', default: '3,5' },
      transports: { type: 'string', default: 'tcp,multicast' },
      timing: { type: 'string', default: 'default' },
      kinds: { type: 'string', default: 'crash' },
    },
  })
  const runs = Number(args.runs)
  const starts = Number(args.starts)
  const timing = args.timing as BullyProfile
  const rows: Array<Record<string, string | number>> = []
  const json: Record<string, unknown> = { runs, starts, timing }
  for (const transport of (args.transports as string).split(',').filter(Boolean) as BullyTransport[]) {
    for (const size of (args.sizes as string).split(',').map(Number)) {
      for (const kind of (args.kinds as string).split(',').filter(Boolean) as FaultKind[]) {
        const f = await bullyFailover({ transport, size, runs, kind, timing })
        const fs = summarize(f.times)
        const meanClaims = f.claims.reduce((a, b) => a + b, 0) / f.claims.length
        const perClaim = transport === 'multicast' ? 1 : size - 2 // survivors other than the claimer
        const st =
          starts > 0 && kind === 'crash'
            ? await simultaneousStarts(transport, size, starts, timing)
            : undefined
        const ss = st ? summarize(st.firstAgreement) : undefined
        const row = {
          transport,
          nodes: size,
          kind,
          'failover p50': fs.p50,
          'failover p99': fs.p99,
          'claims/election': Math.round(meanClaims * 100) / 100,
          'msgs/election': Math.round(meanClaims * perClaim * 100) / 100,
          'classic worst': classicWorst(size - 1),
          'start p50': ss?.p50 ?? '-',
          'start p99': ss?.p99 ?? '-',
          deadlocks: st ? `${st.deadlocks}/${starts}` : '-',
        }
        rows.push(row)
        json[`${transport}.${size}.${kind}`] = {
          failover: { ...fs, samples: f.times.map((x) => Math.round(x)) },
          claims: f.claims,
          start: ss,
          deadlocks: st?.deadlocks,
          extraClaimsAtStart: st?.extraClaims,
        }
        console.error(JSON.stringify(row))
      }
    }
  }
  console.log(table(rows))
  console.log(JSON.stringify(json))
}
