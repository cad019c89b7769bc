// Lease candidates in separate processes on one real redis-server (`--store redis://` URLs): one leader
// among five; kill -9 of the leader gives the next one only after the dead one's lock (which expires with
// its session) has expired at the server, woken by the PTTL hint (never two leaders, judged by each
// process's own claims); resign hands over at once, by pub/sub.
import { after, test } from 'node:test'
import { fiveProcesses } from './helpers/lease-procs.js'
import type { RaftProcess } from './helpers/raft-cluster.js'
import { RedisServer } from './helpers/redis.js'

const TTL = 2000

let redis: RedisServer | undefined
const procs: RaftProcess[] = []
after(async () => {
  for (const p of procs) p.kill('SIGKILL')
  await Promise.all(procs.map((p) => p.waitExit().catch(() => undefined)))
  await redis?.close()
})

test('five candidates in five processes on Redis: one leader; kill -9 hands over at the lock expiry; resign at once', async (t) => {
  const server = await RedisServer.start()
  redis = server
  const { failover, handover } = await fiveProcesses({
    options: (id) => ({
      id,
      store: `redis://${server.endpoint}`,
      election: `procs-${process.pid}`,
      ttlMs: TTL,
    }),
    ttlMs: TTL,
    // The lock expires TTL after the last keep-alive reached the server (at most TTL/3 before the kill);
    // the next in line looks at once then (its timer at the lock's PTTL), not at its next keep-alive.
    failover: { min: (TTL * 2) / 3 - 50, max: TTL + 500 },
    handoverMaxMs: 300,
    procs,
  })
  t.diagnostic(
    `kill -9 failover ${failover.toFixed(0)} ms (TTL ${TTL}); resign hand-over ${handover.toFixed(1)} ms`,
  )
})
