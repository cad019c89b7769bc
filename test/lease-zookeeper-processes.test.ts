// Lease candidates in separate processes on one real ZooKeeper (`--store zookeeper://` URLs): one leader
// among five; kill -9 of the leader gives the next one only after the dead one's session has expired at
// the server (never two leaders, judged by each process's own claims); resign hands over at once.
import { after, test } from 'node:test'
import { fiveProcesses } from './helpers/lease-procs.js'
import type { RaftProcess } from './helpers/raft-cluster.js'
import { ZooKeeperServer } from './helpers/zookeeper.js'

const TTL = 2000
const TICK = 200

let zk: ZooKeeperServer | undefined
const procs: RaftProcess[] = []
after(async () => {
  for (const p of procs) p.kill('SIGKILL')
  await Promise.all(procs.map((p) => p.waitExit().catch(() => undefined)))
  await zk?.close()
})

test('five candidates in five processes on ZooKeeper: one leader; kill -9 hands over after the session timeout; resign at once', async (t) => {
  const server = await ZooKeeperServer.start({ tickTimeMs: TICK })
  zk = server
  const { failover, handover } = await fiveProcesses({
    options: (id) => ({
      id,
      store: `zookeeper://${server.connectString}`,
      election: `/procs/${process.pid}`,
      ttlMs: TTL,
    }),
    ttlMs: TTL,
    // The server expires the session a session timeout after the last packet it got (at most TTL/3 before
    // the kill), in tickTime buckets.
    failover: { min: (TTL * 2) / 3 - 50, max: TTL + 2 * TICK + 1500 },
    procs,
  })
  t.diagnostic(
    `kill -9 failover ${failover.toFixed(0)} ms (TTL ${TTL}); resign hand-over ${handover.toFixed(1)} ms`,
  )
})
