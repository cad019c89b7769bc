// The lease driver (LeaseElection, LeaseFollower) on a real ZooKeeper started here: leadership,
// hand-over by watch, followers, the server killed and restarted or frozen under a leader, bad
// configuration, digest auth, and one latch shared with Curator's own LeaderLatch.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import zookeeper from 'node-zookeeper-client'
import { LeaseElection } from '../src/lease/candidate.js'
import { LeaseFollower } from '../src/lease/follower.js'
import { ZooKeeperBackend, type ZooKeeperBackendOptions } from '../src/lease/stores/zookeeper.js'
import { CuratorParticipant } from './helpers/curator.js'
import { ClaimChecker, candidateOn, followerOn, type Recorded, taken } from './helpers/lease.js'
import { freePorts, waitUntil } from './helpers/services.js'
import { ZooKeeperServer } from './helpers/zookeeper.js'

const TTL = 2000
let zk: ZooKeeperServer
const open: Array<Recorded<LeaseElection | LeaseFollower>> = []
const others: Array<{ close(): Promise<unknown> | unknown }> = []
let n = 0
const latch = () => `/ballot-lease-test/e${process.pid}-${++n}`

before(async () => {
  zk = await ZooKeeperServer.start() // tickTime 200 ms: session timeouts from 400 to 4000 ms
})
after(async () => {
  await Promise.all(open.map((r) => r.e.stop().catch(() => undefined)))
  await Promise.allSettled(others.map((o) => o.close()))
  await zk?.close()
})

function backend(path: string, extra: Partial<ZooKeeperBackendOptions> = {}, server = zk) {
  return new ZooKeeperBackend({ connect: server.connectString, path, sessionTimeoutMs: TTL, ...extra })
}

function candidate(path: string, id: string, ttlMs = TTL, server = zk): Recorded<LeaseElection> {
  const r = candidateOn(backend(path, { sessionTimeoutMs: ttlMs }, server), id, { timing: { ttlMs } })
  open.push(r)
  return r
}

function follower(path: string, server = zk): Recorded<LeaseFollower> {
  const r = followerOn(backend(path, {}, server))
  open.push(r)
  return r
}

/** A plain client, to write what another tool would. */
async function raw(server = zk): Promise<zookeeper.Client> {
  const client = zookeeper.createClient(server.connectString, { sessionTimeout: 4000 })
  await new Promise<void>((resolve) => {
    client.once('connected', () => resolve())
    client.connect()
  })
  others.push({ close: () => client.close() })
  return client
}

const call = <T>(run: (cb: (err: unknown, value?: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => run((err, value) => (err ? reject(err) : resolve(value as T))))

/** An election or follower that the after() hook stops even when a test fails half-way. */
function owned<E extends LeaseElection | LeaseFollower>(e: E): E {
  open.push({ e } as Recorded<E>)
  return e
}

describe('lease on ZooKeeper', () => {
  test('one leader among three; the others name it (by the next keep-alive at the latest)', async () => {
    const path = latch()
    const cs = ['a', 'b', 'c'].map((id) => candidate(path, id))
    for (const c of cs) await c.e.start()
    const leader = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
    assert.equal(leader.e.id, 'a', 'the first to join leads')
    await waitUntil('all name a', () => cs.every((c) => c.e.leader()?.id === 'a'))
    assert.equal(cs[2]?.e.leader()?.address, 'a.example:80')
    assert.deepEqual(cs[2]?.e.leader()?.tags, { name: 'a' })
    assert.equal(cs.filter((c) => c.e.isLeader()).length, 1)
    await waitUntil('the leader to list the line', () => cs[0]?.e.clusterState().members.length === 3)
    assert.deepEqual(
      cs[0]?.e.clusterState().members.map((m) => m.id),
      ['a', 'b', 'c'],
    )
    for (const c of cs) await c.e.stop()
  })

  test('resign hands over by watch, well within a keep-alive period, never two leaders at once', async () => {
    const path = latch()
    // TTL 4 s (the most this server grants): a hand-over waiting on a keep-alive would take > 1.3 s.
    const cs = ['a', 'b', 'c'].map((id) => candidate(path, id, 4000))
    for (const c of cs) await c.e.start()
    const checker = new ClaimChecker(cs.map((c) => c.e))
    const handovers: number[] = []
    for (let i = 0; i < 6; i++) {
      const from = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
      const t0 = performance.now()
      await from.e.resign()
      const to = await waitUntil('the next leader', () => cs.find((c) => c !== from && c.e.isLeader()))
      handovers.push(performance.now() - t0)
      assert.notEqual(to, from)
    }
    assert.ok(Math.max(...handovers) < 4000 / 3, `hand-overs took ${handovers.map((h) => h.toFixed(0))} ms`)
    assert.deepEqual(checker.overlaps, [])
    assert.ok(checker.tokensGrow(), checker.describe())
    assert.ok(checker.claims.length >= 6, checker.describe())
    for (const c of cs) await c.e.stop()
  })

  test('a follower sees every change of leader, in order, with growing tokens', async () => {
    const path = latch()
    const f = follower(path)
    await f.e.start()
    const cs = ['a', 'b', 'c'].map((id) => candidate(path, id))
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

  test('its node deleted by hand: leadership ends and the candidate joins again with a larger token', async () => {
    const path = latch()
    const a = candidate(path, 'a')
    await a.e.start()
    await waitUntil('a leads', () => a.e.isLeader())
    const first = a.e.leader()?.token as bigint
    const client = await raw()
    await call((cb) => client.remove(a.e.view().self?.key as string, -1, (e) => cb(e)))
    await waitUntil('a to lead on a new node', () => a.e.isLeader() && (a.e.leader()?.token ?? 0n) > first)
    assert.ok(
      a.seen.some((s) => s.change.role !== 'leader'),
      'it stopped leading in between',
    )
    await a.e.stop()
  })

  test('stop leaves nothing behind: the latch node and its metadata are gone at once', async () => {
    const path = latch()
    const a = candidate(path, 'a')
    await a.e.start()
    await waitUntil('a leads', () => a.e.isLeader())
    await a.e.stop()
    const client = await raw()
    assert.deepEqual(await call<string[]>((cb) => client.getChildren(path, cb)), [])
    assert.deepEqual(await call<string[]>((cb) => client.getChildren(`${path}-meta`, cb)), [])
  })
})

describe('lease on ZooKeeper: bad configuration gives one clear error from start()', () => {
  test('an address where nothing listens: STORE_UNAVAILABLE naming it', async () => {
    const [port] = await freePorts(1)
    for (const e of [
      owned(
        new LeaseElection({
          id: 'a',
          backend: new ZooKeeperBackend({ connect: `127.0.0.1:${port}`, path: '/x', connectTimeoutMs: 2000 }),
        }),
      ),
      owned(
        new LeaseFollower({
          backend: new ZooKeeperBackend({ connect: `127.0.0.1:${port}`, path: '/x', connectTimeoutMs: 2000 }),
        }),
      ),
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

  test('a latch path holding foreign nodes: STORE_REFUSED naming them, for candidates and followers', async () => {
    const path = latch()
    const client = await raw()
    await call((cb) => client.mkdirp(`${path}/config`, (e) => cb(e)))
    for (const e of [
      owned(new LeaseElection({ id: 'a', backend: backend(path) })),
      owned(new LeaseFollower({ backend: backend(path) })),
    ]) {
      await assert.rejects(e.start(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'STORE_REFUSED')
        assert.match(err.message, new RegExp(`${path}/config`))
        assert.ok(!err.message.includes('\n'), 'one line')
        return true
      })
      await e.stop()
    }
  })

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
    open.push(good)
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
  test('Curator leads: ballot names it by its id; when it closes its latch, ballot leads; then Curator waits behind ballot and takes over on resign', async () => {
    const path = latch()
    const curator = await CuratorParticipant.start(zk.connectString, path, 'curator-1')
    others.push({ close: () => curator.stop('SIGKILL') })
    await curator.waitLine(/^leader$/)
    const a = candidate(path, 'ballot-a')
    const f = follower(path)
    await a.e.start()
    await f.e.start()
    await waitUntil('ballot to name Curator', () => a.e.leader()?.id === 'curator-1')
    assert.equal(a.e.isLeader(), false)
    assert.equal(f.e.leader()?.id, 'curator-1')
    await waitUntil('Curator to list ballot behind it', async () => {
      const ids = await curator.participants()
      return ids.join() === 'curator-1,ballot-a'
    })
    assert.equal(await curator.closeStdin(), 0)
    await waitUntil('ballot to lead', () => a.e.isLeader(), 10_000)
    await waitUntil('the follower to name ballot', () => f.e.leader()?.id === 'ballot-a')

    const second = await CuratorParticipant.start(zk.connectString, path, 'curator-2')
    others.push({ close: () => second.stop('SIGKILL') })
    await waitUntil('the second Curator to list itself behind ballot', async () => {
      const ids = await second.participants()
      return ids.join() === 'ballot-a,curator-2'
    })
    assert.equal(second.isLeader, false)
    await a.e.resign()
    await second.waitLine(/^leader$/)
    await waitUntil('ballot to name Curator again', () => a.e.leader()?.id === 'curator-2')
    assert.equal(a.e.isLeader(), false)
    assert.equal(await second.closeStdin(), 0)
    await waitUntil('ballot to lead again', () => a.e.isLeader(), 10_000)
    await a.e.stop()
    await f.e.stop()
  })
})

describe('lease on ZooKeeper: the server fails under a leader', () => {
  test('killed and restarted, then frozen and thawed: leadership lost in time, errors reported, recovery by itself, never two leaders', async (t) => {
    const own = await ZooKeeperServer.start()
    const path = '/fail'
    const cs = ['a', 'b', 'c'].map((id) => candidate(path, id, TTL, own))
    try {
      const checker = new ClaimChecker(cs.map((c) => c.e))
      for (const c of cs) await c.e.start()
      const validity = TTL * 0.95 - 200
      const leader = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
      const before = leader.e.leader()?.token as bigint
      // Nobody may claim leadership later than `validity` after the store went away: checked at every look.
      const claimedLate = (since: number) => {
        let late = false
        return () => {
          if (cs.some((c) => c.e.isLeader()) && performance.now() > since + validity) late = true
          return cs.every((c) => !c.e.isLeader()) && { late }
        }
      }
      const t0 = performance.now()
      await own.stop('SIGKILL')
      assert.equal((await waitUntil('nobody to lead', claimedLate(t0))).late, false)
      const lost = performance.now() - t0
      await waitUntil('every candidate to report the store unavailable', () =>
        cs.every((c) => c.errors.some((e) => e.code === 'STORE_UNAVAILABLE')),
      )
      await own.start()
      const next = await waitUntil(
        'a leader after the restart',
        () => cs.find((c) => c.e.isLeader() && (c.e.leader()?.token ?? 0n) > before),
        30_000,
      )
      t.diagnostic(
        `killed: leadership lost after ${lost.toFixed(0)} ms; ${next.e.id} leads after the restart`,
      )

      const tokenBefore = next.e.leader()?.token as bigint
      const t1 = performance.now()
      process.kill(own.pid as number, 'SIGSTOP')
      try {
        assert.equal((await waitUntil('nobody to lead while frozen', claimedLate(t1))).late, false)
        await waitUntil('the frozen store reported', () =>
          cs.some((c) => c.errors.some((e) => e.code === 'STORE_UNAVAILABLE' && e.t > t1)),
        )
      } finally {
        process.kill(own.pid as number, 'SIGCONT')
      }
      const frozen = performance.now() - t1
      await waitUntil(
        'a leader after the thaw',
        () => cs.find((c) => c.e.isLeader() && (c.e.leader()?.token ?? 0n) > tokenBefore),
        30_000,
      )
      t.diagnostic(`frozen: leadership lost within ${frozen.toFixed(0)} ms (validity ${validity} ms)`)
      assert.deepEqual(checker.overlaps, [])
      assert.ok(checker.tokensGrow(), checker.describe())
    } finally {
      await Promise.all(cs.map((c) => c.e.stop().catch(() => undefined)))
      await own.close()
    }
  })
})
