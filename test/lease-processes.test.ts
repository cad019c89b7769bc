// Lease candidates in separate processes on one real etcd: one leader among five; kill -9 of the leader
// gives the next one only after the dead one's lease has run out at the store (never two leaders, judged
// by each process's own claims and the time up to which it could have led); resign hands over at once.
import { after, test } from 'node:test'
import { EtcdServer } from './helpers/etcd-server.js'
import { fiveProcesses } from './helpers/lease-procs.js'
import type { RaftProcess } from './helpers/raft-cluster.js'

const TTL = 2000

let etcd: EtcdServer | undefined
const procs: RaftProcess[] = []
after(async () => {
  for (const p of procs) p.kill('SIGKILL')
  await Promise.all(procs.map((p) => p.waitExit().catch(() => undefined)))
  await etcd?.close()
})

test('five candidates in five processes: one leader; kill -9 hands over after the TTL; resign at once', async (t) => {
  const server = await EtcdServer.start()
  etcd = server
  const election = `procs-${process.pid}`
  const { failover, handover } = await fiveProcesses({
    options: (id) => ({ id, hosts: [server.endpoint], election, ttlMs: TTL }),
    ttlMs: TTL,
    // The lease lives 2/3 × TTL to TTL after the kill (the last keep-alive was at most TTL/3 before it),
    // plus up to 0.5 s of etcd's expiry check.
    failover: { min: (TTL * 2) / 3 - 50, max: TTL + 1500 },
    procs,
  })
  t.diagnostic(
    `kill -9 failover ${failover.toFixed(0)} ms (TTL ${TTL}); resign hand-over ${handover.toFixed(1)} ms`,
  )
})
