// The lease driver (LeaseElection, LeaseFollower) on a real ZooKeeper started here: the scenarios every
// store shares (./helpers/lease-scenarios.ts: leadership, hand-over by watch, followers, a node deleted
// behind its back, stop, bad configuration, the server killed and frozen under a leader), then
// ZooKeeper's own: session timeouts the server grants, digest auth, and one latch shared with Curator's
// own LeaderLatch.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, test } from 'node:test'
import zookeeper from 'node-zookeeper-client'
import { LeaseElection } from '../src/lease/candidate.js'
import { ZooKeeperBackend, type ZooKeeperBackendOptions } from '../src/lease/stores/zookeeper.js'
import { latchSharedWithCurator } from './helpers/curator-latch.js'
import { candidateOn, type Recorded } from './helpers/lease.js'
import { leaseScenarios } from './helpers/lease-scenarios.js'
import { zkCall as call, zookeeperStore } from './helpers/lease-stores.js'
import { waitUntil } from './helpers/services.js'

const TTL = zookeeperStore.ttlMs
const s = leaseScenarios(zookeeperStore) // tickTime 200 ms: session timeouts from 400 to 4000 ms
const latch = () => zookeeperStore.election()
const raw = () => s.server.raw()
const owned = <T extends { stop(): unknown }>(e: T): T => s.own(e)

function backend(path: string, extra: Partial<ZooKeeperBackendOptions> = {}) {
  return new ZooKeeperBackend({ connect: s.server.zk.connectString, path, sessionTimeoutMs: TTL, ...extra })
}

function candidate(path: string, id: string, ttlMs = TTL): Recorded<LeaseElection> {
  return s.candidate(path, id, { timing: { ttlMs } })
}

describe('lease on ZooKeeper: its own', () => {
  test('a session timeout the server cannot grant as asked: INVALID_OPTIONS naming the TTL (when exact)', async () => {
    const e = owned(
      new LeaseElection({
        id: 'a',
        backend: backend(latch(), { sessionTimeoutMs: 10_000, exactSessionTimeout: true }),
        timing: { ttlMs: 10_000 },
      }),
    )
    await assert.rejects(e.start(), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'INVALID_OPTIONS')
      assert.match(
        err.message,
        /^ttl: zookeeper 127\.0\.0\.1:\d+ grants a session timeout of 4000 ms, not the 10000 ms asked/,
      )
      return true
    })
    await e.stop()
    // Without `exactSessionTimeout` the granted timeout is used, and reported in the session.
    const lax = candidate(latch(), 'lax', 10_000)
    await lax.e.start()
    await waitUntil('lax leads', () => lax.e.isLeader())
    assert.equal(lax.e.view().session?.ttlMs, 4000)
    await lax.e.stop()
  })

  test('digest auth: a latch under a digest ACL works with the credentials and is refused in one line without', async () => {
    const client = await raw()
    // The latch path itself is readable and writable by ops only (what `setAcl` on it would make).
    const path = `/ballot-digest-${process.pid}`
    const id = new zookeeper.Id('digest', `ops:${digestOf('ops', 's3cret')}`)
    await call((cb) =>
      client.create(path, Buffer.alloc(0), [new zookeeper.ACL(zookeeper.Permission.ALL, id)], (e) => cb(e)),
    )
    const good = candidateOn(backend(path, { digest: { username: 'ops', password: 's3cret' } }), 'good')
    s.own(good.e)
    await good.e.start()
    await waitUntil('good leads', () => good.e.isLeader())
    for (const digest of [undefined, { username: 'ops', password: 'wrong' }]) {
      const e = owned(new LeaseElection({ id: 'bad', backend: backend(path, digest ? { digest } : {}) }))
      await assert.rejects(e.start(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'STORE_REFUSED')
        assert.match(err.message, /NO_AUTH/)
        assert.ok(!err.message.includes('\n') && !err.message.includes('wrong'))
        return true
      })
      await e.stop()
    }
    await good.e.stop()
  })
})

/** ZooKeeper's digest of user:password (base64 of SHA-1), as DigestAuthenticationProvider makes it. */
function digestOf(user: string, password: string): string {
  return createHash('sha1').update(`${user}:${password}`).digest('base64')
}

describe('lease on ZooKeeper: one latch with Curator LeaderLatch', () => {
  test('Curator leads: ballot names it by its id; when it closes its latch, ballot leads; then Curator waits behind ballot and takes over on resign', () =>
    latchSharedWithCurator(s, { path: latch(), connect: s.server.zk.connectString }))
})
