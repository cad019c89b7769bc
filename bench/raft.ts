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
 */
import { parseArgs } from 'node:util'
import { RaftCluster, type RaftProcess, waitFor } from '../test/helpers/raft-cluster.js'
import { summarize, table } from './stats.js'

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
const now = () => performance.timeOrigin + performance.now()

type Kind = 'crash' | 'silent' | 'handover'

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

async function measure(
  profile: 'default' | 'fast',
  kind: Kind,
): Promise<{ named: number[]; acts: number[] }> {
  const c = await RaftCluster.create({ size, timing: profile })
  const out: number[] = []
  const acts: number[] = []
  try {
    c.startAll()
    await c.waitForAgreement(undefined, 30_000)
    for (let i = 0; i < runs; i++) {
      const lead = await c.waitForAgreement(undefined, 30_000)
      const leader = c.nodes.get(lead.id) as RaftProcess
      // Let heartbeats settle so every run starts from a steady state at a random heartbeat phase.
      await new Promise((r) => setTimeout(r, 150 + Math.random() * 100))
      let t0 = now()
      if (kind === 'crash') leader.kill('SIGKILL')
      else if (kind === 'silent') leader.kill('SIGSTOP')
      else leader.send('stop')
      const { at: t1, leader: next } = await agreementTime(c, lead.id, lead.token, 30_000)
      // A hand-over is timed from the moment the leader's stop() is called, not from our stdin write.
      if (kind === 'handover') t0 = (leader.events.find((e) => e.ev === 'stopping')?.t as number) ?? t0
      out.push(t1 - t0)
      const successor = c.nodes.get(next)
      if (successor) {
        const enter = await waitFor(
          'the new leader to hold its lease',
          () => successor.events.find((e) => e.ev === 'lead' && e.leading === true && (e.t as number) >= t0),
          30_000,
        )
        acts.push((enter.t as number) - t0)
      }
      if (kind === 'silent') leader.kill('SIGKILL')
      await leader.waitExit()
      c.start(lead.id) // back to full strength for the next run
      await waitFor('the restarted node to follow', () => c.agreedLeader() !== undefined, 30_000)
    }
  } finally {
    await c.close()
  }
  return { named: out, acts }
}

async function stability(profile: 'default' | 'fast', seconds: number) {
  const c = await RaftCluster.create({ size, timing: profile })
  try {
    c.startAll()
    const first = await c.waitForAgreement(undefined, 30_000)
    const before = await Promise.all(c.live().map((n) => n.state()))
    const t0 = now()
    await new Promise((r) => setTimeout(r, seconds * 1000))
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

const rows: Array<Record<string, string | number>> = []
const json: Record<string, unknown> = { nodes: size, runs }
for (const profile of (args.profiles as string).split(',') as Array<'default' | 'fast'>) {
  for (const kind of (args.kinds as string).split(',').filter(Boolean) as Kind[]) {
    const { named, acts } = await measure(profile, kind)
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
  for (const profile of (args.profiles as string).split(',') as Array<'default' | 'fast'>) {
    json[`${profile}.stability`] = await stability(profile, stabilityS)
  }
}
console.log(table(rows))
console.log(JSON.stringify(json))
