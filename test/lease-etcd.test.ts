// The lease driver against a real etcd started here: leadership, hand-over by watch, followers,
// sessions lost and keys deleted behind the driver's back, etcd stopped and restarted, bad
// configuration, and the same elections as `etcdctl elect`, both ways.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { after, before, describe, test } from 'node:test'
import { LeaseElection } from '../src/lease/candidate.js'
import { LeaseFollower } from '../src/lease/follower.js'
import { EtcdBackend } from '../src/lease/stores/etcd.js'
import { waitForAsync } from './helpers/daemon.js'
import { EtcdServer, Tracked } from './helpers/etcd-server.js'
import { ClaimChecker, candidate, follower, type Recorded } from './helpers/lease.js'
import { freePorts, waitFor } from './helpers/raft-cluster.js'

let etcd: EtcdServer
const open: Array<Recorded<LeaseElection | LeaseFollower>> = []
let n = 0
const name = () => `ballot-test-${process.pid}-${++n}`

before(async () => {
  etcd = await EtcdServer.start()
})
after(async () => {
  await Promise.all(open.map((r) => r.e.stop().catch(() => undefined)))
  await etcd?.close()
})

function track<T extends Recorded<LeaseElection | LeaseFollower>>(r: T): T {
  open.push(r)
  return r
}

describe('lease on etcd', () => {
  test('one leader among three; the others follow it and list the line in order', async () => {
    const election = name()
    const cs = ['a', 'b', 'c'].map((id) => track(candidate(etcd.endpoint, election, id)))
    for (const c of cs) await c.e.start()
    const leader = await waitFor('a leader', () => cs.find((c) => c.e.isLeader()))
    assert.equal(leader.e.id, 'a', 'the first to join leads')
    await waitFor('all follow a', () => cs.every((c) => c.e.leader()?.id === 'a'))
    const info = cs[1]?.e.leader()
    assert.equal(info?.address, 'a.example:80')
    assert.deepEqual(info?.tags, { name: 'a' })
    assert.equal(cs.filter((c) => c.e.isLeader()).length, 1)
    // The leader watches the whole line; the last to join read all of it when it joined.
    for (const c of [cs[0], cs[2]]) {
      await waitFor(`${c?.e.id} to list the line`, () => c?.e.clusterState().members.length === 3)
      const state = c?.e.clusterState()
      assert.deepEqual(
        state?.members.map((m) => m.id),
        ['a', 'b', 'c'],
      )
      assert.equal(state?.members.find((m) => m.self)?.id, c?.e.id)
      assert.deepEqual(
        state?.members.map((m) => m.role),
        ['leader', 'follower', 'follower'],
      )
    }
    for (const c of cs) await c.e.stop()
  })

  test('resign hands over by watch, well within a keep-alive period, never two leaders at once', async () => {
    const election = name()
    // TTL 5 s: anything waiting on the TTL or a poll would take seconds.
    const cs = ['a', 'b', 'c'].map((id) =>
      track(candidate(etcd.endpoint, election, id, { timing: { ttlMs: 5000 } })),
    )
    for (const c of cs) await c.e.start()
    const checker = new ClaimChecker(cs.map((c) => c.e))
    {
      const handovers: number[] = []
      for (let i = 0; i < 6; i++) {
        const from = await waitFor('a leader', () => cs.find((c) => c.e.isLeader()))
        const t0 = performance.now()
        await from.e.resign()
        const to = await waitFor('the next leader', () => cs.find((c) => c !== from && c.e.isLeader()))
        handovers.push(performance.now() - t0)
        assert.notEqual(to, from)
      }
      assert.ok(Math.max(...handovers) < 5000 / 3, `hand-overs took ${handovers.map((h) => h.toFixed(0))} ms`)
    }
    assert.deepEqual(checker.overlaps, [])
    assert.ok(checker.tokensGrow(), checker.describe())
    assert.ok(checker.claims.length >= 6, checker.describe())
    for (const c of cs) await c.e.stop()
  })

  test('a follower sees every change of leader, in order, with growing tokens', async () => {
    const election = name()
    const f = track(follower(etcd.endpoint, election))
    await f.e.start()
    const cs = ['a', 'b', 'c'].map((id) => track(candidate(etcd.endpoint, election, id)))
    for (const c of cs) await c.e.start()
    for (let i = 0; i < 5; i++) {
      const from = await waitFor('a leader', () => cs.find((c) => c.e.isLeader()))
      await from.e.resign()
      await waitFor('the next leader', () => cs.find((c) => c !== from && c.e.isLeader()))
    }
    // Leaderships as the candidates took them, in time order.
    const taken = cs
      .flatMap((c) =>
        c.seen.filter((s) => s.change.role === 'leader').map((s) => ({ t: s.t, l: s.change.leader })),
      )
      .sort((a, b) => a.t - b.t)
      .map((x) => `${x.l?.id}@${x.l?.token}`)
      .filter((x, i, all) => all[i - 1] !== x)
    await waitFor('the follower to catch up', () => f.leaders().at(-1) === taken.at(-1))
    assert.deepEqual(f.leaders(), taken)
    const tokens = f.leaders().map((x) => BigInt(x.split('@')[1] as string))
    assert.ok(tokens.every((t, i) => i === 0 || t > (tokens[i - 1] as bigint)))
    assert.equal(f.e.leader()?.address, `${taken.at(-1)?.split('@')[0]}.example:80`)
    for (const c of cs) await c.e.stop()
    await waitFor('the follower to see nobody lead', () => f.e.leader() === undefined)
    await f.e.stop()
  })

  test('a follower whose event loop is held up still reports every head, in order', async () => {
    const election = name()
    const keys: string[] = []
    for (let i = 0; i < 4; i++) {
      const grant = await etcd.etcdctl('lease', 'grant', '60')
      const id = /lease ([0-9a-f]+) granted/.exec(grant.stdout)?.[1] as string
      keys.push(`${election}/${id}`)
      assert.equal((await etcd.etcdctl('put', `--lease=${id}`, `${election}/${id}`, `p${i}`)).code, 0)
    }
    const f = track(follower(etcd.endpoint, election))
    await f.e.start()
    assert.equal(f.e.leader()?.id, 'p0')
    // Three heads go while this process is stuck: their events then arrive together.
    const script = keys
      .slice(0, 3)
      .map((k) => `etcdctl --endpoints ${etcd.endpoint} del ${k} >/dev/null`)
      .join(' && ')
    const done = new Tracked(spawn('sh', ['-c', script], { stdio: 'ignore' }))
    const until = Date.now() + 1500
    while (Date.now() < until) {} // hold the event loop: the deletions happen meanwhile
    await done.exit
    await waitFor('the last head', () => f.e.leader()?.id === 'p3')
    assert.deepEqual(
      f.leaders().map((l) => l.split('@')[0]),
      ['p0', 'p1', 'p2', 'p3'],
    )
    await f.e.stop()
  })

  test('a session revoked behind its back: a new session, the line joined again, a larger token', async () => {
    const election = name()
    const a = track(candidate(etcd.endpoint, election, 'a'))
    await a.e.start()
    await waitFor('a leads', () => a.e.isLeader())
    const first = a.e.leader()?.token as bigint
    const lease = a.e.view().session?.id as string
    const r = await etcd.etcdctl('lease', 'revoke', lease)
    assert.equal(r.code, 0, r.stderr)
    await waitFor('a to lead again', () => a.e.isLeader() && (a.e.leader()?.token ?? 0n) > first)
    const lost = a.seen.findIndex(
      (s) => s.change.role !== 'leader' && a.seen.some((p) => p.t < s.t && p.leading),
    )
    assert.ok(lost > 0, 'it stopped leading in between')
    assert.notEqual(a.e.view().session?.id, lease)
    assert.ok(
      a.errors.some((e) => e.code === 'SESSION_LOST'),
      JSON.stringify(a.errors),
    )
    await a.e.stop()
  })

  test('its key deleted by hand: leadership ends and the candidate joins again', async () => {
    const election = name()
    const a = track(candidate(etcd.endpoint, election, 'a'))
    await a.e.start()
    await waitFor('a leads', () => a.e.isLeader())
    const first = a.e.leader()?.token as bigint
    const key = a.e.view().self?.key as string
    assert.equal((await etcd.etcdctl('del', key)).stdout.trim(), '1')
    await waitFor('a to lead on a new entry', () => a.e.isLeader() && (a.e.leader()?.token ?? 0n) > first)
    assert.ok(
      a.seen.some((s) => s.change.role !== 'leader' && s.t > 0),
      'it stopped leading in between',
    )
    await a.e.stop()
  })

  test('stop leaves nothing behind in etcd: the entry, its metadata and the lease are gone', async () => {
    const election = name()
    const a = track(candidate(etcd.endpoint, election, 'a'))
    await a.e.start()
    await waitFor('a leads', () => a.e.isLeader())
    const lease = a.e.view().session?.id as string
    await a.e.stop()
    assert.equal((await etcd.etcdctl('get', '--prefix', `${election}`, '--keys-only')).stdout.trim(), '')
    const ttl = await etcd.etcdctl('lease', 'timetolive', lease)
    assert.match(ttl.stdout, /already expired|not found/i)
  })
})

describe('lease on etcd: bad configuration gives one clear error from start()', () => {
  test('an address where nothing listens: STORE_UNAVAILABLE', async () => {
    const [port] = await freePorts(1)
    const e = new LeaseElection({
      id: 'a',
      backend: new EtcdBackend({ hosts: [`127.0.0.1:${port}`], election: 'x' }),
      connectTimeoutMs: 3000,
    })
    await assert.rejects(e.start(), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'STORE_UNAVAILABLE')
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`))
      assert.ok(!err.message.includes('\n'), 'one line')
      return true
    })
    await e.stop()
  })

  test('an election prefix holding foreign data: STORE_REFUSED naming the key', async () => {
    const election = name()
    await etcd.etcdctl('put', `${election}/config`, 'not-a-candidate')
    for (const make of [
      () => new LeaseElection({ id: 'a', backend: new EtcdBackend({ hosts: [etcd.endpoint], election }) }),
      () => new LeaseFollower({ backend: new EtcdBackend({ hosts: [etcd.endpoint], election }) }),
    ]) {
      const e = make()
      await assert.rejects(e.start(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'STORE_REFUSED')
        assert.match(err.message, new RegExp(`${election}/config.*no lease`))
        return true
      })
      await e.stop()
    }
    await etcd.etcdctl('del', `${election}/config`)
  })
})

describe('lease on etcd: the same elections as etcdctl elect', () => {
  test('etcdctl holds: ballot follows and names it by its proposal; when it quits, ballot leads', async () => {
    const election = name()
    const holder = etcd.spawnEtcdctl('elect', election, 'proposal-x')
    await waitFor('etcdctl to be elected', () => holder.stdout.includes('proposal-x'))
    const a = track(candidate(etcd.endpoint, election, 'a'))
    const f = track(follower(etcd.endpoint, election))
    await a.e.start()
    await f.e.start()
    await waitFor('ballot to name etcdctl', () => a.e.leader()?.id === 'proposal-x')
    assert.equal(a.e.isLeader(), false)
    assert.equal(a.e.state(), 'follower')
    assert.equal(f.e.leader()?.id, 'proposal-x')
    // etcdctl deletes its key on SIGINT: ballot is next in line, and sees it by watch.
    holder.kill('SIGINT')
    await waitFor('ballot to lead', () => a.e.isLeader(), 10_000)
    await waitFor('the follower to name ballot', () => f.e.leader()?.id === 'a')
    await a.e.stop()
    await f.e.stop()
  })

  test('ballot leads: etcdctl elect -l prints its id; etcdctl waiting behind it takes over on resign', async () => {
    const election = name()
    const a = track(candidate(etcd.endpoint, election, 'ballot-a'))
    await a.e.start()
    await waitFor('ballot leads', () => a.e.isLeader())
    const observer = etcd.spawnEtcdctl('elect', '-l', election)
    await waitFor('etcdctl elect -l to print', () => observer.stdout.split('\n').length > 2)
    assert.deepEqual(observer.stdout.split('\n').slice(0, 2), [a.e.view().self?.key, 'ballot-a'])
    await observer.stop('SIGINT')

    const waiter = etcd.spawnEtcdctl('elect', election, 'etcd-waiter')
    await waitForAsync('the etcdctl entry in the line', async () => {
      const r = await etcd.etcdctl('get', '--prefix', `${election}/`, '--keys-only')
      return r.stdout.split('\n').filter(Boolean).length === 2
    })
    assert.equal(waiter.stdout, '', 'etcdctl waits while ballot leads')
    await a.e.resign()
    await waitFor('etcdctl to be elected', () => waiter.stdout.includes('etcd-waiter'), 10_000)
    await waitFor('ballot to follow etcdctl', () => a.e.leader()?.id === 'etcd-waiter')
    assert.equal(a.e.isLeader(), false)
    await waiter.stop('SIGINT')
    await waitFor('ballot to lead again', () => a.e.isLeader(), 10_000)
    await a.e.stop()
  })
})

describe('lease on etcd: the store fails under a leader', () => {
  test('etcd killed and restarted, then frozen and thawed: leadership lost in time, errors reported, recovery by itself, never two leaders', async (t) => {
    const own = await EtcdServer.start()
    const cs = ['a', 'b', 'c'].map((id) => candidate(own.endpoint, 'fail', id)) // TTL 2 s
    try {
      const checker = new ClaimChecker(cs.map((c) => c.e))
      for (const c of cs) await c.e.start()
      const validity = 2000 * 0.95 - 200
      const leader = await waitFor('a leader', () => cs.find((c) => c.e.isLeader()))
      const before = leader.e.leader()?.token as bigint

      // Killed: every request fails, the watches break; the leader stops leading at once.
      // Nobody may claim leadership later than `validity` after the store went away (a keep-alive sent
      // before then proves nothing past it): checked at every look, on the machine's own clock.
      const claimedLate = (since: number) => {
        let late = false
        return () => {
          if (cs.some((c) => c.e.isLeader()) && performance.now() > since + validity) late = true
          return cs.every((c) => !c.e.isLeader()) && { late }
        }
      }
      const t0 = performance.now()
      await own.stop('SIGKILL')
      assert.equal((await waitFor('nobody to lead', claimedLate(t0))).late, false)
      const lost = performance.now() - t0
      await waitFor('every candidate to report the store unavailable', () =>
        cs.every((c) => c.errors.some((e) => e.code === 'STORE_UNAVAILABLE')),
      )
      await waitFor('a few retries', () => cs.every((c) => c.e.view().failures >= 2))
      await own.restart()
      const next = await waitFor(
        'a leader after the restart',
        () => cs.find((c) => c.e.isLeader() && (c.e.leader()?.token ?? 0n) > before),
        20_000,
      )
      t.diagnostic(
        `killed: leadership lost after ${lost.toFixed(0)} ms; ${next.e.id} leads after the restart`,
      )

      // Frozen: requests hang; the leader stops leading within its validity (from the last send).
      const tokenBefore = next.e.leader()?.token as bigint
      const t1 = performance.now()
      own.freeze()
      assert.equal((await waitFor('nobody to lead while etcd is frozen', claimedLate(t1))).late, false)
      const frozen = performance.now() - t1
      await waitFor('the frozen store reported', () =>
        cs.some((c) => c.errors.some((e) => e.code === 'STORE_UNAVAILABLE' && e.t > t1)),
      )
      own.thaw()
      await waitFor(
        'a leader after the thaw',
        () => cs.find((c) => c.e.isLeader() && (c.e.leader()?.token ?? 0n) > tokenBefore),
        20_000,
      )
      t.diagnostic(`frozen: leadership lost after ${frozen.toFixed(0)} ms (validity ${validity} ms)`)
      assert.deepEqual(checker.overlaps, [])
      assert.ok(checker.tokensGrow(), checker.describe())
    } finally {
      await Promise.all(cs.map((c) => c.e.stop().catch(() => undefined)))
      await own.close()
    }
  })
})
