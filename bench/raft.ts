/**
 * Raft failover figures with real processes on loopback (5 nodes by default):
 *   crash     kill -9 of the leader → every survivor names the same new leader
 *   silent    SIGSTOP of the leader (a hung host) → the same
 *   handover  stop({handover:true}) of the leader → the same
 * each with two figures: when every survivor names the new leader ("named"), and when the new leader
 * may act: its isLeader() turns true (enterLeader), once any older lease has surely run out ("acts").
 * for the default and fast timing profiles, plus an idle stability run that counts elections when
 * nothing fails and the traffic at rest.
 *
 *   node --import tsx bench/raft.ts [--runs 20] [--nodes 5] [--profiles default,fast] [--stability-s 300]
 *   node --import tsx bench/raft.ts --kinds '' --stability-s 300     (only the idle stability run)
 *
 * `npm run bench` (bench/run.ts) calls the exported functions for the report.
 */
import { parseArgs } from 'node:util'
import { RAFT_TIMING_PROFILES } from '../src/index.js'
import { type NodeEvent, RaftCluster, type RaftProcess, waitFor } from '../test/helpers/raft-cluster.js'
import { isMain, now, sleep, summarize, table } from './stats.js'

/** A raft timing profile. */
export type RaftProfile = 'default' | 'fast'
/** How the leader goes away. */
export type FaultKind = 'crash' | 'silent' | 'handover'

/** What no safe design can beat for a fault: the detection time (the minimum election timeout). */
export function raftFloorMs(profile: RaftProfile): number {
  return RAFT_TIMING_PROFILES[profile].electionTimeoutMinMs
}

/** Every node's change and lease events around one failover: for the timeline plot. */
export interface FailoverTrace {
  /** When the fault was injected (ms, wall clock). */
  t0: number
  /** The node that failed. */
  gone: string
  /** When every survivor named the new leader. */
  named: number
  /** Each node's events from a while before t0 to a while after agreement. */
  nodes: Array<{ id: string; events: NodeEvent[] }>
}

/** Time at which every live node other than `gone` first named the same new leader, and who it is. */
async function agreementTime(
  c: RaftCluster,
  gone: string,
  oldToken: number,
  timeoutMs: number,
): Promise<{ at: number; leader: string }> {
  const survivors = () => c.live().filter((n) => n.id !== gone)
  const agreed = await waitFor(
    'a new agreed leader',
    () => {
      const a = c.agreedLeader(survivors())
      return a && a.token > oldToken ? a : undefined
    },
    timeoutMs,
  )
  // The moment the last survivor learned of it.
  let latest = 0
  for (const n of survivors()) {
    const ev = n.events.find((e) => e.ev === 'change' && e.leader === agreed.id && e.token === agreed.token)
    latest = Math.max(latest, ev?.t ?? 0)
  }
  return { at: latest, leader: agreed.id }
}

/**
 * One failover in a running cluster with an agreed leader: inject the fault, time both figures, bring
 * the failed node back and wait until every node follows again.
 */
export async function raftFailoverOnce(
  c: RaftCluster,
  kind: FaultKind,
): Promise<{ named: number; acts: number | undefined; trace: FailoverTrace }> {
  const lead = await c.waitForAgreement(undefined, 60_000)
  const leader = c.nodes.get(lead.id) as RaftProcess
  // Let heartbeats settle so every run starts from a steady state at a random heartbeat phase.
  await sleep(150 + Math.random() * 100)
  let t0 = now()
  if (kind === 'crash') leader.kill('SIGKILL')
  else if (kind === 'silent') leader.kill('SIGSTOP')
  else leader.send('stop')
  const { at: t1, leader: next } = await agreementTime(c, lead.id, lead.token, 60_000)
  // A hand-over is timed from the moment the leader's stop() is called, not from our stdin write.
  if (kind === 'handover') t0 = (leader.events.find((e) => e.ev === 'stopping')?.t as number) ?? t0
  let acts: number | undefined
  const successor = c.nodes.get(next)
  if (successor) {
    const enter = await waitFor(
      'the new leader to hold its lease',
      () => successor.events.find((e) => e.ev === 'lead' && e.leading === true && (e.t as number) >= t0),
      60_000,
    )
    acts = (enter.t as number) - t0
  }
  const to = Math.max(t1, t0 + (acts ?? 0)) + 300
  const trace: FailoverTrace = {
    t0,
    gone: lead.id,
    named: t1,
    nodes: [...c.nodes.values()].map((n) => ({
      id: n.id,
      events: n.events.filter((e) => (e.ev === 'change' || e.ev === 'lead') && (e.t as number) <= to),
    })),
  }
  if (kind === 'silent') leader.kill('SIGKILL')
  await leader.waitExit()
  c.start(lead.id) // back to full strength for the next run
  await waitFor('the restarted node to follow', () => c.agreedLeader() !== undefined, 60_000)
  return { named: t1 - t0, acts, trace }
}

/** `runs` failovers of one kind in a fresh cluster of `size` with the given timing profile. */
export async function raftFailover(opts: {
  profile: RaftProfile
  kind: FaultKind
  runs: number
  size: number
}): Promise<{ named: number[]; acts: number[]; trace?: FailoverTrace }> {
  const c = await RaftCluster.create({ size: opts.size, timing: opts.profile })
  const named: number[] = []
  const acts: number[] = []
  let trace: FailoverTrace | undefined
  try {
    c.startAll()
    await c.waitForAgreement(undefined, 60_000)
    for (let i = 0; i < opts.runs; i++) {
      const r = await raftFailoverOnce(c, opts.kind)
      named.push(r.named)
      if (r.acts !== undefined) acts.push(r.acts)
      trace ??= r.trace
    }
  } finally {
    await c.close()
  }
  return trace ? { named, acts, trace } : { named, acts }
}

async function stability(profile: RaftProfile, size: number, seconds: number) {
  const c = await RaftCluster.create({ size, timing: profile })
  try {
    c.startAll()
    const first = await c.waitForAgreement(undefined, 30_000)
    const before = await Promise.all(c.live().map((n) => n.state()))
    const t0 = now()
    await sleep(seconds * 1000)
    const after = await Promise.all(c.live().map((n) => n.state()))
    const elapsed = (now() - t0) / 1000
    const last = c.agreedLeader()
    const sum = (states: typeof before, key: 'messagesSent' | 'bytesSent') =>
      states.reduce((acc, s) => acc + ((s.transport as Record<string, number>)[key] ?? 0), 0)
    const elections =
      after.reduce((acc, s) => acc + (s.counters as { electionsStarted: number }).electionsStarted, 0) -
      before.reduce((acc, s) => acc + (s.counters as { electionsStarted: number }).electionsStarted, 0)
    return {
      profile,
      seconds: Math.round(elapsed),
      sameLeader: last?.id === first.id && last?.token === first.token,
      electionsWhileIdle: elections,
      messagesPerSecond: Math.round((sum(after, 'messagesSent') - sum(before, 'messagesSent')) / elapsed),
      bytesPerSecond: Math.round((sum(after, 'bytesSent') - sum(before, 'bytesSent')) / elapsed),
    }
  } finally {
    await c.close()
  }
}

if (isMain(import.meta.url)) {
  const { values: args } = parseArgs({
    options: {
      runs: { type: 'string', default: '20' },
      nodes: { type: 'string', default: '5' },
      profiles: { type: 'string', default: 'default,fast' },
      kinds: { type: 'string', default: 'crash,silent,handover' },
      'stability-s': { type: 'string', default: '0' },
    },
  })
  const runs = Number(args.runs)
  const size = Number(args.nodes)
  const rows: Array<Record<string, string | number>> = []
  const json: Record<string, unknown> = { nodes: size, runs }
  for (const profile of (args.profiles as string).split(',') as RaftProfile[]) {
    for (const kind of (args.kinds as string).split(',').filter(Boolean) as FaultKind[]) {
      const { named, acts } = await raftFailover({ profile, kind, runs, size })
      for (const [figure, samples] of [
        ['named', named],
        ['acts', acts],
      ] as const) {
        const s = summarize(samples)
        // Raw samples too, so an outlier in p99 can be told from a trend.
        json[`${profile}.${kind}.${figure}`] = { ...s, samples: samples.map((x) => Math.round(x * 10) / 10) }
        rows.push({ profile, kind, figure, ...s })
        console.error(`${profile} ${kind} ${figure}: p50 ${s.p50} ms, p99 ${s.p99} ms`)
      }
    }
  }
  const stabilityS = Number(args['stability-s'])
  if (stabilityS > 0) {
    for (const profile of (args.profiles as string).split(',') as RaftProfile[]) {
      json[`${profile}.stability`] = await stability(profile, size, stabilityS)
    }
  }
  console.log(table(rows))
  console.log(JSON.stringify(json))
}
