// Lease candidates in separate processes on one real etcd: one leader among five; kill -9 of the leader
// gives the next one only after the dead one's lease has run out at the store (never two leaders, judged
// by each process's own claims and the time up to which it could have led); resign hands over at once.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { EtcdServer } from './helpers/etcd-server.js'
import { type NodeEvent, RaftProcess, waitFor } from './helpers/raft-cluster.js'

const FIXTURE = new URL('./fixtures/lease-node.ts', import.meta.url).pathname
const TTL = 2000

let etcd: EtcdServer | undefined
const procs: RaftProcess[] = []
after(async () => {
  for (const p of procs) p.kill('SIGKILL')
  await Promise.all(procs.map((p) => p.waitExit().catch(() => undefined)))
  await etcd?.close()
})

interface Claim {
  id: string
  start: number
  /** When it said it stopped leading; for a killed process, the last time up to which it could lead. */
  end: number
  token: number
}

/** Every leadership each process claimed, from its own events. */
function claims(all: RaftProcess[], killedAt: Map<string, number>): Claim[] {
  const out: Claim[] = []
  for (const p of all) {
    let open: Claim | undefined
    let valid = Number.NEGATIVE_INFINITY
    let token = -1
    for (const e of p.events) {
      if (e.ev === 'change') token = (e.token as number | undefined) ?? token
      if (e.ev === 'valid') valid = e.until as number
      if (e.ev === 'lead' && e.leading && !open)
        open = { id: p.id, start: e.t, end: Number.POSITIVE_INFINITY, token }
      if (e.ev === 'lead' && !e.leading && open) {
        open.end = e.t
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

function leaderOf(p: RaftProcess): string | undefined {
  return p.lastChange()?.leader as string | undefined
}

test('five candidates in five processes: one leader; kill -9 hands over after the TTL; resign at once', async (t) => {
  etcd = await EtcdServer.start()
  const election = `procs-${process.pid}`
  const ids = ['p1', 'p2', 'p3', 'p4', 'p5']
  for (const id of ids)
    procs.push(new RaftProcess(id, { id, hosts: [etcd.endpoint], election, ttlMs: TTL }, FIXTURE))
  const live = () => procs.filter((p) => !p.exited)
  const agreed = () => {
    const names = live().map(leaderOf)
    const first = names[0]
    if (!first || names.some((n) => n !== first)) return undefined
    const leader = live().find((p) => p.id === first)
    return leader?.events.some((e) => e.ev === 'lead') ? leader : undefined
  }
  const first = await waitFor('five processes to agree on a leader', agreed, 30_000)
  const killedAt = new Map<string, number>()

  // kill -9 of the leader: nobody may lead until its lease has expired at etcd.
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
    30_000,
  )
  const started = second.events.find((e: NodeEvent) => e.ev === 'lead' && e.leading)?.t as number
  const failover = started - tKill
  assert.ok(
    started > lastValid,
    `the next leader started at ${started}, before the dead one's validity ${lastValid}`,
  )
  assert.ok(
    failover >= (TTL * 2) / 3 - 50,
    `failover ${failover.toFixed(0)} ms: it must wait for the lease to expire`,
  )
  assert.ok(
    failover <= TTL + 1500,
    `failover ${failover.toFixed(0)} ms: within the TTL and etcd's expiry check`,
  )
  assert.ok((second.lastChange()?.token as number) > before)

  // resign: the next in line leads at once (a watch, not the TTL).
  const tResign = performance.timeOrigin + performance.now()
  second.send('resign')
  const third = await waitFor('the next leader after resign', () => {
    const l = agreed()
    return l && l !== second ? l : undefined
  })
  const handover =
    (third.events.findLast((e: NodeEvent) => e.ev === 'lead' && e.leading)?.t as number) - tResign
  assert.ok(handover < TTL / 3, `hand-over took ${handover.toFixed(0)} ms`)

  t.diagnostic(
    `kill -9 failover ${failover.toFixed(0)} ms (TTL ${TTL}); resign hand-over ${handover.toFixed(1)} ms`,
  )
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
})
