// The lease driver (LeaseElection, LeaseFollower) on a real redis-server started here: leadership,
// hand-over by pub/sub, followers, sessions lost behind the driver's back, stop leaving nothing, bad
// configuration, the server killed and restarted under a leader, DEBUG SLEEP longer than the TTL, a
// crashed holder's lock taken at its expiry, TLS (rediss) with a CA made here, and Sentinel failover.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { LeaseElection } from '../src/lease/candidate.js'
import { LeaseFollower } from '../src/lease/follower.js'
import { RedisBackend, type RedisBackendOptions, redisKeys } from '../src/lease/stores/redis.js'
import { ClaimChecker, candidateOn, followerOn, type Recorded, taken } from './helpers/lease.js'
import { BlackholeProxy, RedisSentinelGroup, RedisServer } from './helpers/redis.js'
import { freePorts, waitUntil } from './helpers/services.js'

let redis: RedisServer
const servers: Array<{ close(): Promise<void> }> = []
const open: Array<Recorded<LeaseElection | LeaseFollower>> = []
let n = 0
const name = () => `ballot-test-${process.pid}-${++n}`

before(async () => {
  redis = await RedisServer.start()
  servers.push(redis)
})
after(async () => {
  await Promise.all(open.map((r) => r.e.stop().catch(() => undefined)))
  await Promise.allSettled(servers.map((s) => s.close()))
})

function backend(election: string, on: RedisServer = redis, extra: Partial<RedisBackendOptions> = {}) {
  return new RedisBackend({ host: on.endpoint, election, ...extra })
}

function candidate(
  election: string,
  id: string,
  on: RedisServer = redis,
  extra: Partial<RedisBackendOptions> = {},
  ttlMs = 2000,
) {
  const r = candidateOn(backend(election, on, extra), id, { timing: { ttlMs } })
  open.push(r)
  return r
}

function follower(election: string, on: RedisServer = redis): Recorded<LeaseFollower> {
  const r = followerOn(backend(election, on))
  open.push(r)
  return r
}

/** Waits until nobody leads, noting whether anyone still claimed later than `validity` after `since`. */
function claimedLate(cs: Array<Recorded<LeaseElection>>, since: number, validity: number) {
  let late = false
  return () => {
    if (cs.some((c) => c.e.isLeader()) && performance.now() > since + validity) late = true
    return cs.every((c) => !c.e.isLeader()) && { late }
  }
}

describe('lease on Redis', () => {
  test('one leader among three; the others follow it and list the line in order', async () => {
    const election = name()
    const cs = ['a', 'b', 'c'].map((id) => candidate(election, id))
    for (const c of cs) await c.e.start()
    const leader = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
    assert.equal(leader.e.id, 'a', 'the first to join leads')
    await waitUntil('all follow a', () => cs.every((c) => c.e.leader()?.id === 'a'))
    assert.equal(cs[1]?.e.leader()?.address, 'a.example:80')
    assert.deepEqual(cs[1]?.e.leader()?.tags, { name: 'a' })
    assert.equal(cs.filter((c) => c.e.isLeader()).length, 1)
    assert.equal(leader.e.view().session?.ttlMs, 2000, 'Redis grants the TTL asked, to the ms')
    for (const c of cs) {
      await waitUntil(`${c.e.id} to list the line`, () => c.e.clusterState().members.length === 3)
      const state = c.e.clusterState()
      assert.deepEqual(
        state.members.map((m) => m.id),
        ['a', 'b', 'c'],
      )
      assert.equal(state.members.find((m) => m.self)?.id, c.e.id)
      assert.deepEqual(
        state.members.map((m) => m.role),
        ['leader', 'follower', 'follower'],
      )
    }
    for (const c of cs) await c.e.stop()
  })

  test('resign hands over by pub/sub, well within a keep-alive period, never two leaders at once', async () => {
    const election = name()
    const cs = ['a', 'b', 'c'].map((id) => candidate(election, id, redis, {}, 5000))
    for (const c of cs) await c.e.start()
    const checker = new ClaimChecker(cs.map((c) => c.e))
    const handovers: number[] = []
    for (let i = 0; i < 6; i++) {
      const from = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
      const t0 = performance.now()
      await from.e.resign()
      const to = await waitUntil(
        'the next leader',
        () => cs.find((c) => c !== from && c.e.isLeader()),
        20_000,
        1,
      )
      handovers.push(performance.now() - t0)
      assert.notEqual(to, from)
    }
    assert.ok(Math.max(...handovers) < 5000 / 3, `hand-overs took ${handovers.map((h) => h.toFixed(0))} ms`)
    assert.deepEqual(checker.overlaps, [])
    assert.ok(checker.tokensGrow(), checker.describe())
    assert.ok(checker.claims.length >= 6, checker.describe())
    for (const c of cs) await c.e.stop()
  })

  test('a resign costs the store two scripts however many wait: the next in line is handed the lock (no herd)', async () => {
    const election = name()
    const cs = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((id) =>
      candidate(election, id, redis, {}, 30_000),
    )
    for (const c of cs) await c.e.start()
    const from = await waitUntil('a leads', () => cs.find((c) => c.e.isLeader()))
    await waitUntil('all name a', () => cs.every((c) => c.e.leader()?.id === 'a'))
    const scripts = () => {
      const text = redis.cli('INFO', 'commandstats').stdout
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

  test('a follower sees every change of leader, in order, with growing tokens', async () => {
    const election = name()
    const f = follower(election)
    await f.e.start()
    assert.equal(f.e.leader(), undefined)
    const cs = ['a', 'b', 'c'].map((id) => candidate(election, id))
    for (const c of cs) await c.e.start()
    for (let i = 0; i < 5; i++) {
      const from = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
      await from.e.resign()
      await waitUntil('the next leader', () => cs.find((c) => c !== from && c.e.isLeader()))
    }
    const leaderships = taken(cs)
    await waitUntil('the follower to catch up', () => f.leaders().at(-1) === leaderships.at(-1))
    assert.deepEqual(f.leaders(), leaderships)
    const tokens = f.leaders().map((x) => BigInt(x.split('@')[1] as string))
    assert.ok(tokens.every((t, i) => i === 0 || t > (tokens[i - 1] as bigint)))
    assert.equal(f.e.leader()?.address, `${leaderships.at(-1)?.split('@')[0]}.example:80`)
    for (const c of cs) await c.e.stop()
    await waitUntil('the follower to see nobody lead', () => f.e.leader() === undefined)
    await f.e.stop()
  })

  test('a session deleted behind its back: a new session, the line joined again, a larger token', async () => {
    const election = name()
    const a = candidate(election, 'a')
    await a.e.start()
    await waitUntil('a leads', () => a.e.isLeader())
    const first = a.e.leader()?.token as bigint
    const sid = a.e.view().session?.id as string
    const keys = redisKeys(election)
    assert.equal(redis.cli('DEL', keys.sessionPrefix + sid, keys.leader).stdout.trim(), '2')
    await waitUntil('a to lead again', () => a.e.isLeader() && (a.e.leader()?.token ?? 0n) > first)
    assert.ok(
      a.seen.some((s) => s.change.role !== 'leader' && a.seen.some((p) => p.t < s.t && p.leading)),
      'it stopped leading in between',
    )
    assert.notEqual(a.e.view().session?.id, sid)
    assert.ok(
      a.errors.some((e) => e.code === 'SESSION_LOST'),
      JSON.stringify(a.errors),
    )
    await a.e.stop()
  })

  test('a crashed holder (its session left to expire): the next in line takes the lock at its expiry', async () => {
    const election = name()
    const keys = redisKeys(election)
    // A holder that stops renewing: a raw session and lock made with redis-cli, as the scripts make them.
    const dead = 'deadbeef'.repeat(4)
    const sk = keys.sessionPrefix + dead
    redis.cli('HSET', sk, 'ttl', '1500', 'id', 'crashed', 'seq', '1', 'token', '1')
    redis.cli('PEXPIRE', sk, '1500')
    redis.cli('ZADD', keys.line, '1', dead)
    redis.cli('SET', keys.leader, dead, 'PX', '1500')
    const t0 = performance.now()
    const b = candidate(election, 'b', redis, {}, 5000)
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
    const notifying = await RedisServer.start({ notify: 'Kx' })
    servers.push(notifying)
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

  test('stop leaves nothing behind but the counters', async () => {
    const election = name()
    const cs = ['a', 'b'].map((id) => candidate(election, id))
    for (const c of cs) await c.e.start()
    await waitUntil('a leads', () => cs[0]?.e.isLeader())
    for (const c of cs) await c.e.stop()
    const left = redis
      .cli('--scan', '--pattern', `ballot:{${election}}:*`)
      .stdout.trim()
      .split('\n')
      .filter(Boolean)
      .sort()
    const keys = redisKeys(election)
    assert.deepEqual(left, [keys.seq, keys.token, keys.version].sort())
  })
})

describe('lease on Redis: bad configuration gives one clear error from start()', () => {
  test('an address where nothing listens: STORE_UNAVAILABLE naming it', async () => {
    const [port] = await freePorts(1)
    for (const e of [
      new LeaseElection({ id: 'a', backend: new RedisBackend({ host: `127.0.0.1:${port}`, election: 'x' }) }),
      new LeaseFollower({ backend: new RedisBackend({ host: `127.0.0.1:${port}`, election: 'x' }) }),
    ]) {
      await assert.rejects(e.start(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'STORE_UNAVAILABLE')
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`))
        assert.ok(!err.message.includes('\n'), 'one line')
        return true
      })
      await e.stop()
    }
  })

  test('foreign data on the election keys: STORE_REFUSED naming the key', async () => {
    const election = name()
    const keys = redisKeys(election)
    redis.cli('LPUSH', keys.line, 'x')
    for (const e of [
      new LeaseElection({ id: 'a', backend: backend(election) }),
      new LeaseFollower({ backend: backend(election) }),
    ]) {
      await assert.rejects(e.start(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'STORE_REFUSED')
        assert.ok(err.message.includes(`${keys.line} is a list`), err.message)
        assert.ok(!err.message.includes('\n'), 'one line')
        return true
      })
      await e.stop()
    }
  })

  test('a password: the right one works; a wrong or missing one is refused in one line, never printed', async () => {
    const secured = await RedisServer.start({ password: 's3cret-pass' })
    servers.push(secured)
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
    const acl = await RedisServer.start()
    servers.push(acl)
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

describe('lease on Redis: the server fails under a leader', () => {
  test('killed and restarted (its data lost), then frozen by DEBUG SLEEP longer than the TTL: leadership lost in time, recovery, tokens grow, never two leaders', async (t) => {
    const own = await RedisServer.start()
    servers.push(own)
    const cs = ['a', 'b', 'c'].map((id) => candidate('fail', id, own)) // TTL 2 s
    const checker = new ClaimChecker(cs.map((c) => c.e))
    for (const c of cs) await c.e.start()
    const validity = 2000 * 0.95 - 200
    const leader = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
    const before = leader.e.leader()?.token as bigint

    const t0 = performance.now()
    await own.stop('SIGKILL')
    assert.equal((await waitUntil('nobody to lead', claimedLate(cs, t0, validity))).late, false)
    const lost = performance.now() - t0
    await waitUntil('every candidate to report the store unavailable', () =>
      cs.every((c) => c.errors.some((e) => e.code === 'STORE_UNAVAILABLE')),
    )
    await waitUntil('a few retries', () => cs.every((c) => c.e.view().failures >= 2))
    await own.start()
    // No persistence: every key is gone, the token counter too; it starts again from the server's clock.
    const next = await waitUntil(
      'a leader after the restart, on a larger token',
      () => cs.find((c) => c.e.isLeader() && (c.e.leader()?.token ?? 0n) > before),
      20_000,
    )
    t.diagnostic(`killed: leadership lost after ${lost.toFixed(0)} ms; ${next.e.id} leads after the restart`)

    // DEBUG SLEEP 4 (> TTL 2 s): requests hang; the leader stops leading within its validity.
    const tokenBefore = next.e.leader()?.token as bigint
    const t1 = performance.now()
    const sleeper = own.debugSleep(4)
    try {
      assert.equal(
        (await waitUntil('nobody to lead while frozen', claimedLate(cs, t1, validity))).late,
        false,
      )
      await waitUntil('the frozen store reported', () =>
        cs.some((c) => c.errors.some((e) => e.code === 'STORE_UNAVAILABLE' && e.t > t1)),
      )
      await sleeper.waitExit()
    } finally {
      await sleeper.stop('SIGKILL')
    }
    const frozen = performance.now() - t1
    await waitUntil(
      'a leader after the sleep',
      () => cs.find((c) => c.e.isLeader() && (c.e.leader()?.token ?? 0n) > tokenBefore),
      20_000,
    )
    t.diagnostic(`DEBUG SLEEP 4: the server was frozen ${frozen.toFixed(0)} ms (validity ${validity} ms)`)
    assert.deepEqual(checker.overlaps, [])
    assert.ok(checker.tokensGrow(), checker.describe())
    for (const c of cs) await c.e.stop()
  })
})

describe('lease on Redis: the leader cut off by the network', () => {
  test('its requests vanish: it stops leading by its own clock, before its lock can expire; the next leads only after, with a larger token', async () => {
    const proxy = await BlackholeProxy.start(redis.port)
    servers.push(proxy)
    const election = name()
    const a = candidate(election, 'a', redis, { host: proxy.endpoint })
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
    const own = await RedisServer.start({ persistent: true })
    servers.push(own)
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
    const secure = await RedisServer.start({ tls: true })
    servers.push(secure)
    const ca = readFileSync(secure.caFile, 'utf8')
    const election = name()
    const cs = ['a', 'b'].map((id) =>
      candidate(election, id, secure, { host: `localhost:${secure.port}`, tls: { ca } }),
    )
    for (const c of cs) await c.e.start()
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
    const group = await RedisSentinelGroup.start()
    servers.push(group)
    const election = name()
    const mk = (id: string) => {
      const r = candidateOn(
        new RedisBackend({ sentinels: [group.sentinelEndpoint], sentinelMaster: 'mymaster', election }),
        id,
      )
      open.push(r)
      return r
    }
    const cs = [mk('a'), mk('b')]
    for (const c of cs) await c.e.start()
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
