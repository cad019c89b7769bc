// Lease candidates in separate processes on one real PostgreSQL (`--store postgres://` URLs): one leader
// among five; kill -9 of the leader gives the next one only after the dead one's lease has run out by the
// database's clock (a timer at that expiry, not a poll; never two leaders, judged by each process's own
// claims and the time up to which it could have led); resign hands over at once (LISTEN/NOTIFY).
import { after, test } from 'node:test'
import { fiveProcesses } from './helpers/lease-procs.js'
import { PostgresServer } from './helpers/postgres.js'
import type { RaftProcess } from './helpers/raft-cluster.js'

const TTL = 2000

let pg: PostgresServer | undefined
const procs: RaftProcess[] = []
after(async () => {
  for (const p of procs) p.kill('SIGKILL')
  await Promise.all(procs.map((p) => p.waitExit().catch(() => undefined)))
  await pg?.close()
})

test('five candidates in five processes on PostgreSQL: one leader; kill -9 hands over after the TTL; resign at once', async (t) => {
  const server = await PostgresServer.start()
  pg = server
  const { failover, handover } = await fiveProcesses({
    options: (id) => ({ id, store: server.url, election: `procs-${process.pid}`, ttlMs: TTL }),
    ttlMs: TTL,
    // The lease expires a TTL after the last renewal (sent at most TTL/3 before the kill); the next in line
    // has a timer at that expiry (plus a few ms), or takes at its own keep-alive just after it.
    failover: { min: (TTL * 2) / 3 - 50, max: TTL + 1000 },
    procs,
  })
  t.diagnostic(
    `kill -9 failover ${failover.toFixed(0)} ms (TTL ${TTL}); resign hand-over ${handover.toFixed(1)} ms`,
  )
})
