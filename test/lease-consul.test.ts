// The lease driver (LeaseElection, LeaseFollower) on a real Consul started here: leadership, hand-over
// by blocking query, followers, a persistent server killed and restarted or frozen under a leader, bad
// configuration, ACL tokens, and mutual exclusion with `consul lock`.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { LeaseElection } from '../src/lease/candidate.js'
import { LeaseFollower } from '../src/lease/follower.js'
import { ConsulBackend, type ConsulBackendOptions } from '../src/lease/stores/consul.js'
import { ConsulAgent } from './helpers/consul.js'
import { ClaimChecker, candidateOn, followerOn, type Recorded, taken } from './helpers/lease.js'
import { freePorts, type OwnedProcess, removeTempDir, sleep, tempDir, waitUntil } from './helpers/services.js'

/** Consul's shortest session TTL. */
const TTL = 10_000
let agent: ConsulAgent
let scratch: string
const agents: ConsulAgent[] = []
const open: Array<Recorded<LeaseElection | LeaseFollower>> = []
const others: Array<{ close(): Promise<unknown> | unknown }> = []
let n = 0
const prefix = () => `ballot-lease-test/e${process.pid}-${++n}`

before(async () => {
  agent = await ConsulAgent.start()
  agents.push(agent)
  scratch = tempDir('consul-lease')
})
after(async () => {
  await Promise.all(open.map((r) => r.e.stop().catch(() => undefined)))
  await Promise.allSettled(others.map((o) => o.close()))
  await Promise.allSettled(agents.map((a) => a.close()))
  removeTempDir(scratch)
})

function backend(p: string, extra: Partial<ConsulBackendOptions> = {}, on = agent) {
  return new ConsulBackend({ address: on.address, prefix: p, lockDelayMs: 1000, retryMs: 200, ...extra })
}

function candidate(p: string, id: string, extra: Partial<ConsulBackendOptions> = {}, on = agent) {
  const r = candidateOn(backend(p, extra, on), id, { timing: { ttlMs: TTL } })
  open.push(r)
  return r
}

function follower(p: string, on = agent): Recorded<LeaseFollower> {
  const r = followerOn(backend(p, {}, on))
  open.push(r)
  return r
}

/** An election or follower that the after() hook stops even when a test fails half-way. */
function owned<E extends LeaseElection | LeaseFollower>(e: E): E {
  open.push({ e } as Recorded<E>)
  return e
}

function lockProcess(p: string, script: string, on = agent): OwnedProcess {
  const proc = on.lock(p, script)
  others.push({ close: () => proc.stop('SIGKILL') })
  return proc
}

describe('lease on Consul', () => {
  test('one leader among three; the others name it; the TTL is the one Consul granted', async () => {
    const p = prefix()
    const cs = ['a', 'b', 'c'].map((id) => candidate(p, id))
    for (const c of cs) await c.e.start()
    const leader = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
    assert.equal(leader.e.id, 'a', 'the first to join leads')
    await waitUntil('all name a', () => cs.every((c) => c.e.leader()?.id === 'a'))
    assert.equal(cs[2]?.e.leader()?.address, 'a.example:80')
    assert.deepEqual(cs[2]?.e.leader()?.tags, { name: 'a' })
    assert.equal(cs.filter((c) => c.e.isLeader()).length, 1)
    assert.equal(leader.e.view().session?.ttlMs, TTL)
    await waitUntil('the leader to list the line', () => cs[0]?.e.clusterState().members.length === 3)
    assert.deepEqual(
      cs[0]?.e.clusterState().members.map((m) => m.id),
      ['a', 'b', 'c'],
    )
    for (const c of cs) await c.e.stop()
  })

  test('resign hands over by blocking query, well within a keep-alive period, never two leaders at once', async () => {
    const p = prefix()
    const cs = ['a', 'b', 'c'].map((id) => candidate(p, id))
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
    // A resign releases the lock: no lock-delay, and the next in line is woken by its blocking query.
    assert.ok(Math.max(...handovers) < TTL / 3, `hand-overs took ${handovers.map((h) => h.toFixed(0))} ms`)
    assert.deepEqual(checker.overlaps, [])
    assert.ok(checker.tokensGrow(), checker.describe())
    assert.ok(checker.claims.length >= 6, checker.describe())
    for (const c of cs) await c.e.stop()
  })

  test('a follower sees every change of leader, in order, with growing tokens; nobody while the lock is free', async () => {
    const p = prefix()
    const f = follower(p)
    await f.e.start()
    assert.equal(f.e.leader(), undefined)
    const cs = ['a', 'b', 'c'].map((id) => candidate(p, id))
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

  test('stop leaves nothing behind: lock key, line key and session are gone', async () => {
    const p = prefix()
    const a = candidate(p, 'a')
    await a.e.start()
    await waitUntil('a leads', () => a.e.isLeader())
    const session = a.e.view().session?.id as string
    await a.e.stop()
    assert.equal((await agent.http('GET', `/v1/kv/${p}?recurse=true`)).status, 404)
    assert.equal((await agent.http('GET', `/v1/kv/${p}.ballot/?recurse=true`)).status, 404)
    assert.equal((await agent.http('GET', `/v1/session/info/${session}`)).text.trim(), '[]')
  })
})

describe('lease on Consul: bad configuration gives one clear error from start()', () => {
  test('an address where nothing listens: STORE_UNAVAILABLE naming it', async () => {
    const [port] = await freePorts(1)
    for (const e of [
      owned(
        new LeaseElection({
          id: 'a',
          backend: new ConsulBackend({ address: `http://127.0.0.1:${port}`, prefix: 'x' }),
          timing: { ttlMs: TTL },
        }),
      ),
      owned(
        new LeaseFollower({
          backend: new ConsulBackend({ address: `http://127.0.0.1:${port}`, prefix: 'x' }),
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

  test('foreign data: a lock key of another kind, or a stranger in the line: STORE_REFUSED naming the key', async () => {
    const semaphore = prefix()
    assert.equal((await agent.http('PUT', `/v1/kv/${semaphore}/.lock?flags=42`, 'x')).status, 200)
    // A live session's key in ballot's line that is not a candidate entry (a key whose session ended is
    // ballot's own leftover, and tidied away).
    const stranger = prefix()
    const session = JSON.parse((await agent.http('PUT', '/v1/session/create', '{"TTL":"60s"}')).text).ID
    const put = await agent.http('PUT', `/v1/kv/${stranger}.ballot/line/oops?acquire=${session}`, 'not json')
    assert.equal(put.text.trim(), 'true')
    for (const [p, key] of [
      [semaphore, `${semaphore}/.lock has flags 42`],
      [stranger, `${stranger}.ballot/line/oops`],
    ] as const) {
      for (const e of [
        owned(new LeaseElection({ id: 'a', backend: backend(p), timing: { ttlMs: TTL } })),
        owned(new LeaseFollower({ backend: backend(p) })),
      ]) {
        await assert.rejects(e.start(), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'STORE_REFUSED')
          assert.ok(err.message.includes(key), err.message)
          assert.ok(!err.message.includes('\n'), 'one line')
          return true
        })
        await e.stop()
      }
    }
  })

  test('ACLs: the token works; without it (or with a wrong one) start() is refused in one line', async () => {
    const secured = await ConsulAgent.start({ aclMasterToken: 'b2f7e0c4-1111-4222-8333-944455556666' })
    agents.push(secured)
    const p = prefix()
    const good = candidate(p, 'good', { token: 'b2f7e0c4-1111-4222-8333-944455556666' }, secured)
    await good.e.start()
    await waitUntil('good leads', () => good.e.isLeader())
    for (const token of [undefined, 'b2f7e0c4-0000-4000-8000-000000000000']) {
      const e = owned(
        new LeaseElection({
          id: 'bad',
          backend: backend(p, token ? { token } : {}, secured),
          timing: { ttlMs: TTL },
        }),
      )
      await assert.rejects(e.start(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'STORE_REFUSED')
        assert.match(err.message, /HTTP 403/)
        assert.ok(!err.message.includes('\n') && !err.message.includes('b2f7e0c4'), err.message)
        return true
      })
      await e.stop()
    }
    await good.e.stop()
  })
})

describe('lease on Consul: consul lock and ballot exclude each other', () => {
  test('consul lock holds: ballot names its session and waits; when it exits, ballot leads', async () => {
    const p = prefix()
    const marker = join(scratch, 'held-by-consul-lock')
    const lock = lockProcess(p, `touch ${marker}; sleep 60`)
    await waitUntil('consul lock to run its command', () => existsSync(marker), 15_000)
    const a = candidate(p, 'ballot-a')
    const f = follower(p)
    await a.e.start()
    await f.e.start()
    const holder = await waitUntil('ballot to name the holder', () => a.e.leader())
    const sessions = JSON.parse((await agent.http('GET', '/v1/session/list')).text) as Array<{
      ID: string
      Name: string
    }>
    assert.equal(holder.id, sessions.find((s) => s.Name.startsWith('Consul lock'))?.ID)
    assert.equal(f.e.leader()?.id, holder.id)
    await sleep(1000)
    assert.equal(a.e.isLeader(), false, 'ballot must not lead while consul lock holds')
    await lock.stop('SIGINT', 10_000)
    assert.equal(lock.exitCode, 0, lock.tail())
    await waitUntil('ballot to lead', () => a.e.isLeader(), 15_000)
    assert.ok((a.e.leader()?.token ?? 0n) > holder.token)
    await waitUntil('the follower to name ballot', () => f.e.leader()?.id === 'ballot-a')
    await a.e.stop()
    await f.e.stop()
  })

  test('ballot leads: consul lock waits, and runs its command only once ballot has stopped leading', async () => {
    const p = prefix()
    const a = candidate(p, 'ballot-a')
    await a.e.start()
    await waitUntil('ballot leads', () => a.e.isLeader())
    const marker = join(scratch, 'ran-after-ballot')
    const lock = lockProcess(p, `touch ${marker}; sleep 1`)
    await sleep(2000)
    assert.equal(existsSync(marker), false, 'consul lock must not run its command while ballot leads')
    assert.ok(lock.running, lock.tail())
    let stoppedLeading = 0
    a.e.on('change', (c) => {
      if (c.role !== 'leader' && !stoppedLeading) stoppedLeading = Date.now()
    })
    await a.e.stop()
    await waitUntil('consul lock to run its command', () => existsSync(marker), 15_000)
    assert.ok(stoppedLeading > 0)
    await lock.waitExit()
    assert.equal(lock.exitCode, 0, lock.tail())
  })
})

describe('lease on Consul: the server fails under a leader', () => {
  test('a persistent server killed and restarted, then frozen and thawed: leadership lost in time, errors reported, recovery, never two leaders', async (t) => {
    const own = await ConsulAgent.start({ persistent: true })
    agents.push(own)
    const p = 'fail'
    const cs = ['a', 'b', 'c'].map((id) => candidate(p, id, {}, own))
    try {
      const checker = new ClaimChecker(cs.map((c) => c.e))
      for (const c of cs) await c.e.start()
      const validity = TTL * 0.95 - 250
      const leader = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
      const before = leader.e.leader()?.token as bigint
      const claimedLate = (since: number) => {
        let late = false
        return () => {
          if (cs.some((c) => c.e.isLeader()) && performance.now() > since + validity) late = true
          return cs.every((c) => !c.e.isLeader()) && { late }
        }
      }
      const t0 = performance.now()
      await own.stop('SIGKILL')
      assert.equal((await waitUntil('nobody to lead', claimedLate(t0), 30_000)).late, false)
      const lost = performance.now() - t0
      await waitUntil('every candidate to report the store unavailable', () =>
        cs.every((c) => c.errors.some((e) => e.code === 'STORE_UNAVAILABLE')),
      )
      await own.start()
      const next = await waitUntil(
        'a leader after the restart',
        () => cs.find((c) => c.e.isLeader() && (c.e.leader()?.token ?? 0n) > before),
        60_000,
      )
      t.diagnostic(
        `killed: leadership lost after ${lost.toFixed(0)} ms; ${next.e.id} leads after the restart`,
      )

      const tokenBefore = next.e.leader()?.token as bigint
      const t1 = performance.now()
      process.kill(own.pid as number, 'SIGSTOP')
      try {
        assert.equal((await waitUntil('nobody to lead while frozen', claimedLate(t1), 30_000)).late, false)
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
        60_000,
      )
      t.diagnostic(`frozen: leadership lost within ${frozen.toFixed(0)} ms (validity ${validity} ms)`)
      assert.deepEqual(checker.overlaps, [])
      assert.ok(checker.tokensGrow(), checker.describe())
    } finally {
      await Promise.all(cs.map((c) => c.e.stop().catch(() => undefined)))
    }
  })
})
