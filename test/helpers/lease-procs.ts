/**
 * Five lease candidates in five processes (test/fixtures/lease-node.ts) on one store, judged by what
 * each process says of itself: one leader that all agree on; kill -9 of the leader hands over only after
 * the dead one's session has run out at the store (never two leaders: each claim ends, for a killed
 * process, at the time up to which it could have led); resign hands over at once. Used by the etcd,
 * ZooKeeper and Consul process tests.
 */
import assert from 'node:assert/strict'
import { type NodeEvent, RaftProcess, waitFor } from './raft-cluster.js'

const FIXTURE = new URL('../fixtures/lease-node.ts', import.meta.url).pathname

interface Claim {
  id: string
  start: number
  /**
   * When isLeader() turned false: when it said it stopped leading, or the validity it had then if that ran
   * out first; for a killed process, the last time up to which it could lead.
   */
  end: number
  token: number
}

/** Every leadership each process claimed, from its own events. */
export function claims(all: RaftProcess[], killedAt: Map<string, number>): Claim[] {
  const out: Claim[] = []
  for (const p of all) {
    let open: Claim | undefined
    let valid = Number.NEGATIVE_INFINITY
    let validAtEnd = Number.POSITIVE_INFINITY
    let token = -1
    for (const e of p.events) {
      if (e.ev === 'change') token = (e.token as number | undefined) ?? token
      if (e.ev === 'valid') valid = e.until as number
      if (e.ev === 'validAtEnd') validAtEnd = e.until as number
      if (e.ev === 'lead' && e.leading && !open) {
        open = { id: p.id, start: e.t, end: Number.POSITIVE_INFINITY, token }
        validAtEnd = Number.POSITIVE_INFINITY
      }
      if (e.ev === 'lead' && !e.leading && open) {
        // isLeader() turned false at the validity it ended with, or when it stepped down, whichever came
        // first; the event itself may come out late from a process starved of CPU.
        open.end = Math.min(e.t, validAtEnd)
        out.push(open)
        open = undefined
      }
    }
    if (open) {
      const killed = killedAt.get(p.id)
      // A killed leader acted at most until it was killed, and would have stopped by its validity anyway.
      open.end = killed === undefined ? Number.POSITIVE_INFINITY : Math.min(killed, valid)
      out.push(open)
    }
  }
  return out.sort((a, b) => a.start - b.start)
}

export interface FiveProcessesOptions {
  /** The fixture's options for candidate `id` (store URL or hosts, election, TTL, ...). */
  options(id: string): object
  /** The session TTL the store grants (ms). */
  ttlMs: number
  /** Bounds on kill -9 → next leader (ms): the store's expiry (and, on Consul, the lock-delay). */
  failover: { min: number; max: number }
  /** Longest acceptable resign → next leader (ms). Default TTL/3, a keep-alive period. */
  handoverMaxMs?: number
  /** Every process started, so the test file's after() can kill what a failed run leaves. */
  procs: RaftProcess[]
}

/** Runs the scenario; returns the figures for a diagnostic line. */
export async function fiveProcesses(
  o: FiveProcessesOptions,
): Promise<{ failover: number; handover: number }> {
  const procs: RaftProcess[] = []
  try {
    return await runFive(o, procs)
  } catch (err) {
    // What each process said, with times: enough to tell a late event from two leaders at once.
    for (const p of procs)
      process.stderr.write(
        `${p.id} (pid ${p.pid}${p.exited ? ', exited' : ''}): ${p.events
          .filter((e) => e.ev !== 'valid' && e.ev !== 'state')
          .map((e) => `${e.t.toFixed(1)} ${JSON.stringify({ ...e, t: undefined })}`)
          .join('\n  ')}\n`,
      )
    throw err
  }
}

async function runFive(
  o: FiveProcessesOptions,
  procs: RaftProcess[],
): Promise<{ failover: number; handover: number }> {
  const ids = ['p1', 'p2', 'p3', 'p4', 'p5']
  for (const id of ids) {
    const p = new RaftProcess(id, o.options(id), FIXTURE)
    procs.push(p)
    o.procs.push(p)
  }
  const live = () => procs.filter((p) => !p.exited)
  const leaderOf = (p: RaftProcess) => p.lastChange()?.leader as string | undefined
  const agreed = () => {
    const names = live().map(leaderOf)
    const first = names[0]
    if (!first || names.some((n) => n !== first)) return undefined
    const leader = live().find((p) => p.id === first)
    return leader?.events.some((e) => e.ev === 'lead') ? leader : undefined
  }
  // Waiting candidates on ZooKeeper learn of a new head only at their next keep-alive: allow for it.
  const first = await waitFor('five processes to agree on a leader', agreed, 60_000)
  const killedAt = new Map<string, number>()

  // kill -9 of the leader: nobody may lead until its session has expired at the store.
  const lastValid = [...first.events].reverse().find((e) => e.ev === 'valid')?.until as number
  const before = first.lastChange()?.token as number
  const tKill = performance.timeOrigin + performance.now()
  first.kill('SIGKILL')
  await first.waitExit()
  killedAt.set(first.id, tKill)
  const second = await waitFor(
    'a new leader',
    () => {
      const l = agreed()
      return l && l !== first ? l : undefined
    },
    o.failover.max + 30_000,
  )
  const started = second.events.find((e: NodeEvent) => e.ev === 'lead' && e.leading)?.t as number
  const failover = started - tKill
  assert.ok(
    started > lastValid,
    `the next leader started at ${started}, before the dead one's validity ${lastValid}`,
  )
  assert.ok(
    failover >= o.failover.min,
    `failover ${failover.toFixed(0)} ms: it must wait for the store's expiry`,
  )
  assert.ok(failover <= o.failover.max, `failover ${failover.toFixed(0)} ms: more than ${o.failover.max} ms`)
  assert.ok((second.lastChange()?.token as number) > before)

  // resign: the next in line leads at once (a watch, not the TTL).
  const tResign = performance.timeOrigin + performance.now()
  second.send('resign')
  const third = await waitFor(
    'the next leader after resign',
    () => {
      const l = agreed()
      return l && l !== second ? l : undefined
    },
    60_000,
  )
  const handover =
    (third.events.findLast((e: NodeEvent) => e.ev === 'lead' && e.leading)?.t as number) - tResign
  assert.ok(handover < (o.handoverMaxMs ?? o.ttlMs / 3), `hand-over took ${handover.toFixed(0)} ms`)

  await new Promise((r) => setTimeout(r, 300))
  const all = claims(procs, killedAt)
  assert.ok(all.length >= 3, JSON.stringify(all))
  for (let i = 1; i < all.length; i++) {
    const [a, b] = [all[i - 1] as Claim, all[i] as Claim]
    assert.ok(
      b.start >= a.end,
      `${b.id} started leading at ${b.start} while ${a.id} could lead until ${a.end}`,
    )
    assert.ok(b.token > a.token, `tokens grow: ${a.token} then ${b.token}`)
  }
  for (const p of live()) p.kill('SIGKILL')
  await Promise.all(procs.map((p) => p.waitExit().catch(() => undefined)))
  return { failover, handover }
}
