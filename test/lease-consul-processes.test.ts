// Lease candidates in separate processes on one real Consul (`--store consul://` URLs): one leader among
// five; kill -9 of the leader gives the next one only after the dead one's session was invalidated and
// its lock-delay ran out (never two leaders, judged by each process's own claims); resign at once.
//
// The test sets a lock-delay of 1 s (the default is 15 s, as `consul lock`): a crashed leader's lock
// fails over after Consul invalidates the session (TTL to 2 × TTL after the last renew) plus that delay.
import { after, test } from 'node:test'
import { ConsulAgent } from './helpers/consul.js'
import { fiveProcesses } from './helpers/lease-procs.js'
import type { RaftProcess } from './helpers/raft-cluster.js'

const TTL = 10_000
const LOCK_DELAY = 1000

let agent: ConsulAgent | undefined
const procs: RaftProcess[] = []
after(async () => {
  for (const p of procs) p.kill('SIGKILL')
  await Promise.all(procs.map((p) => p.waitExit().catch(() => undefined)))
  await agent?.close()
})

test('five candidates in five processes on Consul: one leader; kill -9 hands over after the TTL plus the lock-delay; resign at once', async (t) => {
  const own = await ConsulAgent.start()
  agent = own
  const { failover, handover } = await fiveProcesses({
    options: (id) => ({
      id,
      store: own.address.replace('http://', 'consul://'),
      election: `procs/${process.pid}`,
      ttlMs: TTL,
      lockDelayMs: LOCK_DELAY,
    }),
    ttlMs: TTL,
    // Consul invalidates no sooner than the TTL after the last renew (sent at most TTL/3 before the kill)
    // and, in practice, 2 × TTL after it; then the lock-delay; then the next acquire try (every 1 s).
    failover: { min: (TTL * 2) / 3 + LOCK_DELAY - 50, max: 2 * TTL + LOCK_DELAY + 4000 },
    procs,
  })
  t.diagnostic(
    `kill -9 failover ${failover.toFixed(0)} ms (TTL ${TTL}, lock-delay ${LOCK_DELAY}); resign hand-over ${handover.toFixed(1)} ms`,
  )
})
