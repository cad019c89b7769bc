// The lease driver (LeaseElection, LeaseFollower) on a real redis-server started here: the scenarios every
// store shares (./helpers/lease-scenarios.ts: leadership, hand-over, followers, an entry deleted behind its
// back, its session deleted behind its back, stop, bad configuration, the server killed (its data lost)
// and frozen by DEBUG SLEEP under a leader), then Redis's own: a resign costs two scripts (no herd), a
// crashed holder's lock taken at its expiry, keyspace notifications, passwords and ACL users, a
// leader cut off by the network, a persistent server restarted, TLS (rediss) with a CA made here, and
// Sentinel failover.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { LeaseElection } from '../src/lease/candidate.js'
import { RedisBackend, type RedisBackendOptions, redisKeys } from '../src/lease/stores/redis.js'
import { ClaimChecker, candidateOn, startInLine } from './helpers/lease.js'
import { leaseScenarios } from './helpers/lease-scenarios.js'
import { redisStore } from './helpers/lease-stores.js'
import { BlackholeProxy, RedisSentinelGroup, RedisServer } from './helpers/redis.js'
import { waitUntil } from './helpers/services.js'

const s = leaseScenarios(redisStore)
const name = () => redisStore.election()

function backend(election: string, on: RedisServer, extra: Partial<RedisBackendOptions> = {}) {
  return new RedisBackend({ host: on.endpoint, election, ...extra })
}

/** A recorded candidate on `on` (default the shared server), stopped after the file even on failure. */
function candidate(
  election: string,
  id: string,
  on: RedisServer = s.server.redis,
  extra: Partial<RedisBackendOptions> = {},
  ttlMs = 2000,
) {
  const r = candidateOn(backend(election, on, extra), id, { timing: { ttlMs } })
  s.own(r.e)
  return r
}

/** Another redis-server for one test, closed after the file. */
async function another(opts: Parameters<typeof RedisServer.start>[0] = {}): Promise<RedisServer> {
  return s.own(await RedisServer.start(opts))
}

describe('lease on Redis: its own', () => {
  test('a resign costs the store two scripts however many wait: the next in line is handed the lock (no herd)', async () => {
    const election = name()
    const cs = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((id) =>
      candidate(election, id, undefined, {}, 30_000),
    )
    await startInLine(cs)
    const from = await waitUntil('a leads', () => cs.find((c) => c.e.isLeader()))
    await waitUntil('all name a', () => cs.every((c) => c.e.leader()?.id === 'a'))
    const scripts = () => {
      const text = s.server.redis.cli('INFO', 'commandstats').stdout
      let sum = 0
      for (const m of text.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)) sum += Number(m[1])
      return sum
    }
    // One resign first, so that the server knows every script (a first EVALSHA fails, then EVAL).
    await from.e.resign()
    await waitUntil('all name b', () => cs.every((c) => c.e.leader()?.id === 'b'))
    const before = scripts()
    await cs[1]?.e.resign()
    await waitUntil('c leads', () => cs[2]?.e.isLeader(), 10_000, 1)
    await waitUntil('all name c', () => cs.every((c) => c.e.leader()?.id === 'c'))
    // b's leave (which hands the lock to c) and its join at the back; keep-alives come every 10 s.
    assert.equal(scripts() - before, 2)
    for (const c of cs) await c.e.stop()
  })

  test('a crashed holder (its session left to expire): the next in line takes the lock at its expiry', async () => {
    const election = name()
    const keys = redisKeys(election)
    // A holder that stops renewing: a raw session and lock made with redis-cli, as the scripts make them.
    const dead = 'deadbeef'.repeat(4)
    const sk = keys.sessionPrefix + dead
    s.server.redis.cli('HSET', sk, 'ttl', '1500', 'id', 'crashed', 'seq', '1', 'token', '1')
    s.server.redis.cli('PEXPIRE', sk, '1500')
    s.server.redis.cli('ZADD', keys.line, '1', dead)
    s.server.redis.cli('SET', keys.leader, dead, 'PX', '1500')
    const t0 = performance.now()
    const b = candidate(election, 'b', undefined, {}, 5000)
    await b.e.start()
    await waitUntil('b to name the crashed holder', () => b.e.leader()?.id === 'crashed')
    await waitUntil('b leads', () => b.e.isLeader(), 10_000, 5)
    const took = performance.now() - t0
    // b's own keep-alives come every 5000/3 ms: leading within ~1.5 s is the PTTL hint, not a keep-alive.
    assert.ok(took < 1500 + 500, `b led ${took.toFixed(0)} ms after the crash`)
    assert.ok(took > 1400, `b led ${took.toFixed(0)} ms after the crash, before the lock expired`)
    await b.e.stop()
  })

  test('keyspace notifications on: the lock expiring wakes the next in line at once (no keep-alive, no hint)', async () => {
    const notifying = await another({ notify: 'Kx' })
    const election = name()
    const keys = redisKeys(election)
    const dead = 'feedface'.repeat(4)
    const sk = keys.sessionPrefix + dead
    notifying.cli('HSET', sk, 'ttl', '60000', 'id', 'crashed', 'seq', '1', 'token', '1')
    notifying.cli('PEXPIRE', sk, '60000')
    notifying.cli('ZADD', keys.line, '1', dead)
    notifying.cli('SET', keys.leader, dead, 'PX', '60000')
    // TTL 30 s: b's keep-alives come every 10 s, and its PTTL hint says 60 s.
    const b = candidate(election, 'b', notifying, {}, 30_000)
    await b.e.start()
    await waitUntil('b to name the crashed holder', () => b.e.leader()?.id === 'crashed')
    const t0 = performance.now()
    // Shortened behind b's back (no message): only the server's expired event can tell b in time.
    notifying.cli('PEXPIRE', sk, '200')
    notifying.cli('PEXPIRE', keys.leader, '200')
    await waitUntil('b leads', () => b.e.isLeader(), 5000, 5)
    const took = performance.now() - t0
    assert.ok(took < 2000, `b led ${took.toFixed(0)} ms after the lock was set to expire in 200 ms`)
    await b.e.stop()
  })
})

describe('lease on Redis: passwords and ACL users', () => {
  test('a password: the right one works; a wrong or missing one is refused in one line, never printed', async () => {
    const secured = await another({ password: 's3cret-pass' })
    const election = name()
    const good = candidate(election, 'good', secured, { password: 's3cret-pass' })
    await good.e.start()
    await waitUntil('good leads', () => good.e.isLeader())
    for (const password of [undefined, 'wr0ng-pass']) {
      const e = new LeaseElection({ id: 'bad', backend: backend(election, secured, { password }) })
      await assert.rejects(e.start(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'STORE_REFUSED', err.message)
        assert.match(err.message, /NOAUTH|WRONGPASS/)
        assert.ok(!err.message.includes('\n') && !err.message.includes('wr0ng-pass'), err.message)
        return true
      })
      await e.stop()
    }
    await good.e.stop()
  })

  test('an ACL user limited to the ballot:* keys and channels leads; one without them is refused in one line', async () => {
    const acl = await another()
    acl.cli('ACL', 'SETUSER', 'elector', 'on', '>el3ctor-pw', '~ballot:*', '&ballot:*', '+@all')
    acl.cli('ACL', 'SETUSER', 'other', 'on', '>0ther-pw', '~app:*', '&app:*', '+@all')
    const election = name()
    const a = candidate(election, 'a', acl, { username: 'elector', password: 'el3ctor-pw' })
    await a.e.start()
    await waitUntil('a leads', () => a.e.isLeader())
    const e = new LeaseElection({
      id: 'b',
      backend: backend(election, acl, { username: 'other', password: '0ther-pw' }),
    })
    await assert.rejects(e.start(), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'STORE_REFUSED', err.message)
      assert.match(err.message, /NOPERM/)
      assert.ok(!err.message.includes('\n') && !err.message.includes('0ther-pw'), err.message)
      return true
    })
    await e.stop()
    await a.e.stop()
  })
})

describe('lease on Redis: the leader cut off by the network', () => {
  test('its requests vanish: it stops leading by its own clock, before its lock can expire; the next leads only after, with a larger token', async () => {
    const proxy = s.own(await BlackholeProxy.start(s.server.redis.port))
    const election = name()
    const a = candidate(election, 'a', undefined, { host: proxy.endpoint })
    await a.e.start()
    await waitUntil('a leads', () => a.e.isLeader())
    const b = candidate(election, 'b')
    await b.e.start()
    await waitUntil('b names a', () => b.e.leader()?.id === 'a')
    const checker = new ClaimChecker([a.e, b.e])
    const before = a.e.leader()?.token as bigint
    let aStopped = 0
    a.e.on('change', (c) => {
      if (c.role !== 'leader' && !aStopped) aStopped = performance.now()
    })
    const t0 = performance.now()
    const validUntil = t0 + (a.e.leaseRemainingMs() as number)
    proxy.blackhole()
    await waitUntil('b leads', () => b.e.isLeader(), 10_000, 5)
    const bLed = performance.now()
    assert.ok(aStopped > 0 && aStopped <= validUntil + 50, `a stopped at +${(aStopped - t0).toFixed(0)} ms`)
    assert.ok(
      bLed > validUntil,
      `b led at +${(bLed - t0).toFixed(0)} ms, a could lead until +${(validUntil - t0).toFixed(0)}`,
    )
    assert.ok((b.e.leader()?.token ?? 0n) > before)
    assert.deepEqual(checker.overlaps, [])
    await b.e.stop()
  })
})

describe('lease on Redis: a persistent server restarted under a leader', () => {
  test('SIGTERM saves, the restart restores sessions and lock: the leader stopped at the drop, resumes the same session, and a new leadership has a larger token', async () => {
    const own = await another({ persistent: true })
    const cs = ['a', 'b'].map((id) => candidate('persist', id, own, {}, 5000))
    const checker = new ClaimChecker(cs.map((c) => c.e))
    for (const c of cs) await c.e.start()
    const leader = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
    const before = leader.e.leader()?.token as bigint
    await waitUntil('both in line', () =>
      cs.every((c) => c.e.view().self && c.e.leader()?.id === leader.e.id),
    )
    const sessions = cs.map((c) => c.e.view().session?.id)
    const t0 = performance.now()
    await own.stop('SIGTERM')
    await waitUntil('nobody to lead', () => cs.every((c) => !c.e.isLeader()))
    const stopped = performance.now() - t0
    assert.ok(stopped < 1000, `the leader stopped ${stopped.toFixed(0)} ms after the server went down`)
    await own.start()
    const next = await waitUntil(
      'a leader after the restart, on a larger token',
      () => cs.find((c) => c.e.isLeader() && (c.e.leader()?.token ?? 0n) > before),
      20_000,
    )
    assert.ok(next)
    // The sessions came back with the snapshot (restart within the TTL): resumed, not lost.
    assert.deepEqual(
      cs.map((c) => c.e.view().session?.id),
      sessions,
    )
    assert.ok(!cs.some((c) => c.errors.some((e) => e.code === 'SESSION_LOST')), JSON.stringify(cs[0]?.errors))
    assert.deepEqual(checker.overlaps, [])
    assert.ok(checker.tokensGrow(), checker.describe())
    for (const c of cs) await c.e.stop()
  })
})

describe('lease on Redis: TLS and Sentinel', () => {
  test('rediss: TLS with a CA made here', async () => {
    const secure = await another({ tls: true })
    const ca = readFileSync(secure.caFile, 'utf8')
    const election = name()
    const cs = ['a', 'b'].map((id) =>
      candidate(election, id, secure, { host: `localhost:${secure.port}`, tls: { ca } }),
    )
    await startInLine(cs)
    await waitUntil('a leads', () => cs[0]?.e.isLeader())
    await cs[0]?.e.resign()
    await waitUntil('b leads', () => cs[1]?.e.isLeader())
    // Without the CA: the certificate is refused.
    const e = new LeaseElection({
      id: 'x',
      backend: new RedisBackend({ host: `localhost:${secure.port}`, election, tls: true }),
      connectTimeoutMs: 3000,
    })
    await assert.rejects(e.start(), (err: Error & { code?: string }) => {
      assert.match(err.message, /certificate|self.signed|verify/i)
      return true
    })
    await e.stop()
    for (const c of cs) await c.e.stop()
  })

  test('Sentinel: candidates find the master through it; after a failover they lead again on the new master', async (t) => {
    const group = s.own(await RedisSentinelGroup.start())
    const election = name()
    const mk = (id: string) => {
      const r = candidateOn(
        new RedisBackend({ sentinels: [group.sentinelEndpoint], sentinelMaster: 'mymaster', election }),
        id,
      )
      s.own(r.e)
      return r
    }
    const cs = [mk('a'), mk('b')]
    await startInLine(cs)
    await waitUntil('a leads', () => cs[0]?.e.isLeader())
    const t0 = performance.now()
    await group.master.stop('SIGKILL')
    await waitUntil(
      'the sentinel to promote the replica',
      async () => (await group.masterPort()) === group.replica.port,
      30_000,
    )
    await waitUntil('a leader on the new master', () => cs.find((c) => c.e.isLeader()), 30_000)
    t.diagnostic(
      `Sentinel failover: a leader again ${(performance.now() - t0).toFixed(0)} ms after the master died`,
    )
    for (const c of cs) await c.e.stop()
  })
})
