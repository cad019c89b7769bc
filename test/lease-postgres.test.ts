// The lease driver (LeaseElection, LeaseFollower) on a real PostgreSQL 15 started here: leadership, hand-over
// by LISTEN/NOTIFY, followers, a session deleted behind the driver's back, the server killed and restarted
// and frozen (SIGSTOP) under a leader, tables made on first use by racing candidates in a schema of their
// own, bad configuration, and PgBouncer in transaction mode.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { LeaseElection } from '../src/lease/candidate.js'
import { LeaseFollower } from '../src/lease/follower.js'
import { PostgresBackend, type PostgresBackendOptions } from '../src/lease/stores/postgres.js'
import { postgresSql } from '../src/lease/stores/postgres-sql.js'
import { ClaimChecker, candidateOn, followerOn, type Recorded, taken } from './helpers/lease.js'
import { PgBouncer, PostgresServer } from './helpers/postgres.js'
import { freePorts, waitUntil } from './helpers/services.js'

const TTL = 2000
let pg: PostgresServer
const servers: Array<{ close(): Promise<void> }> = []
const open: Array<Recorded<LeaseElection | LeaseFollower>> = []
let n = 0
const name = () => `e${process.pid}-${++n}`

before(async () => {
  pg = await PostgresServer.start()
  servers.push(pg)
})
after(async () => {
  await Promise.all(open.map((r) => r.e.stop().catch(() => undefined)))
  await Promise.allSettled(servers.map((s) => s.close()))
})

function backend(election: string, extra: Partial<PostgresBackendOptions> = {}, port = pg.port) {
  return new PostgresBackend({
    connection: { host: '127.0.0.1', port, user: 'postgres', database: 'postgres' },
    election,
    ...extra,
  })
}

function candidate(
  election: string,
  id: string,
  extra: Partial<PostgresBackendOptions> = {},
  port = pg.port,
) {
  const b = backend(election, extra, port)
  const r = Object.assign(candidateOn(b, id, { timing: { ttlMs: TTL } }), { backend: b })
  open.push(r)
  return r
}

function follower(election: string, extra: Partial<PostgresBackendOptions> = {}, port = pg.port) {
  const r = followerOn(backend(election, extra, port))
  open.push(r)
  return r
}

describe('lease on PostgreSQL', () => {
  test('one leader among three; the others name it; the leader lists the line in order', async () => {
    const election = name()
    const cs = ['a', 'b', 'c'].map((id) => candidate(election, id))
    for (const c of cs) await c.e.start()
    const leader = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
    assert.equal(leader.e.id, 'a', 'the first to join leads')
    await waitUntil('all name a', () => cs.every((c) => c.e.leader()?.id === 'a'))
    assert.equal(cs[2]?.e.leader()?.address, 'a.example:80')
    assert.deepEqual(cs[2]?.e.leader()?.tags, { name: 'a' })
    assert.equal(cs.filter((c) => c.e.isLeader()).length, 1)
    assert.equal(leader.e.view().session?.ttlMs, TTL)
    for (const c of cs) {
      await waitUntil(`${c.e.id} to list the line`, () => c.e.clusterState().members.length === 3)
      const state = c.e.clusterState()
      assert.deepEqual(
        state.members.map((m) => m.id),
        ['a', 'b', 'c'],
      )
      assert.deepEqual(
        state.members.map((m) => m.role),
        ['leader', 'follower', 'follower'],
      )
      assert.equal(state.members.find((m) => m.self)?.id, c.e.id)
    }
    const [row] = await pg.query<{ holder_id: string; token: string }>(
      'SELECT holder_id, token FROM ballot.leases WHERE election = $1',
      [election],
    )
    assert.equal(row?.holder_id, 'a')
    assert.equal(BigInt(row?.token as string), leader.e.leader()?.token)
    for (const c of cs) await c.e.stop()
  })

  test('resign hands over by NOTIFY, in milliseconds, never two leaders at once; tokens grow', async (t) => {
    const election = name()
    const cs = ['a', 'b', 'c'].map((id) => candidate(election, id))
    for (const c of cs) await c.e.start()
    await waitUntil('all three in line', () => cs.every((c) => c.e.clusterState().members.length === 3))
    const checker = new ClaimChecker(cs.map((c) => c.e))
    const handovers: number[] = []
    for (let i = 0; i < 8; i++) {
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
    t.diagnostic(`hand-overs (ms): ${handovers.map((h) => h.toFixed(1)).join(', ')}`)
    // A keep-alive period is TTL/3: anything waiting on a keep-alive or the expiry would take that long.
    assert.ok(Math.max(...handovers) < TTL / 3, `hand-overs took ${handovers.map((h) => h.toFixed(0))} ms`)
    assert.deepEqual(checker.overlaps, [])
    assert.ok(checker.tokensGrow(), checker.describe())
    assert.ok(checker.claims.length >= 8, checker.describe())
    // A hand-over never shows the next in line as a leader before it took the lease (a token 0 refused).
    for (const c of cs)
      assert.deepEqual(
        c.errors.filter((e) => e.code === 'TOKEN_NOT_NEWER'),
        [],
        `${c.e.id} reported a refused token`,
      )
    for (const c of cs) await c.e.stop()
  })

  test('a follower sees every change of leader, in order, with growing tokens; nobody once all left', async () => {
    const election = name()
    const f = follower(election)
    await f.e.start()
    assert.equal(f.e.leader(), undefined)
    const cs = ['a', 'b', 'c'].map((id) => candidate(election, id))
    for (const c of cs) await c.e.start()
    await waitUntil('all three in line', () => cs.every((c) => c.e.clusterState().members.length === 3))
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

  test('LISTEN connections cut by the server: they come back by themselves, and hand-over is fast again', async () => {
    const election = name()
    const cs = ['a', 'b'].map((id) => candidate(election, id))
    for (const c of cs) await c.e.start()
    const a = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
    await waitUntil('both in line', () => a.e.clusterState().members.length === 2)
    const cut = await pg.query<{ pid: number }>(
      'SELECT pg_terminate_backend(pid) AS ok, pid FROM pg_stat_activity WHERE application_name = $1',
      [`ballot listen ${election}`],
    )
    assert.equal(cut.length, 2)
    const old = new Set(cut.map((r) => r.pid))
    await waitUntil('both listening again, on new connections', async () => {
      const now = await pg.query<{ pid: number }>(
        'SELECT pid FROM pg_stat_activity WHERE application_name = $1',
        [`ballot listen ${election}`],
      )
      return (
        now.length === 2 &&
        now.every((r) => !old.has(r.pid)) &&
        cs.every((c) => c.backend.notifications === 'on')
      )
    })
    const t0 = performance.now()
    await a.e.resign()
    await waitUntil('the other to lead', () => cs.find((c) => c !== a && c.e.isLeader()), 10_000, 1)
    const took = performance.now() - t0
    assert.ok(took < TTL / 3, `hand-over took ${took.toFixed(0)} ms`)
    for (const c of cs) await c.e.stop()
  })

  test('a leave that arrives late (after a rejoin and a take under the same session) changes nothing', async () => {
    const election = name()
    const a = candidate(election, 'a')
    await a.e.start()
    await waitUntil('a leads', () => a.e.isLeader())
    const session = a.e.view().session?.id as string
    const [before] = await pg.query<{ joined: string }>(
      'SELECT joined FROM ballot.candidates WHERE session = $1',
      [session],
    )
    // The statement a leave sends, meaning an earlier entry and lease of this same session.
    const stale = [election, session, 'ballot.lease', String(BigInt(before?.joined as string) - 1n), '0']
    await pg.query(postgresSql('ballot').leave, stale)
    const [row] = await pg.query<{ holder: string; joined: string }>(
      'SELECT l.holder, c.joined FROM ballot.leases l JOIN ballot.candidates c ON c.session = l.holder WHERE l.election = $1',
      [election],
    )
    assert.deepEqual(row, { holder: session, joined: before?.joined })
    assert.equal(a.e.isLeader(), true)
    await a.e.stop()
  })

  test('its session deleted by hand: a new session, the line joined again, a larger token', async () => {
    const election = name()
    const a = candidate(election, 'a')
    await a.e.start()
    await waitUntil('a leads', () => a.e.isLeader())
    const first = a.e.leader()?.token as bigint
    const session = a.e.view().session?.id as string
    await pg.query('DELETE FROM ballot.candidates WHERE session = $1', [session])
    await waitUntil('a to lead again', () => a.e.isLeader() && (a.e.leader()?.token ?? 0n) > first, 10_000)
    assert.ok(
      a.seen.some((s) => s.change.role !== 'leader' && a.seen.some((p) => p.t < s.t && p.leading)),
      'it stopped leading in between',
    )
    assert.notEqual(a.e.view().session?.id, session)
    assert.ok(
      a.errors.some((e) => e.code === 'SESSION_LOST'),
      JSON.stringify(a.errors),
    )
    await a.e.stop()
  })

  test('stop leaves nothing behind: the candidate row is gone, the lease released (its token kept)', async () => {
    const election = name()
    const a = candidate(election, 'a')
    await a.e.start()
    await waitUntil('a leads', () => a.e.isLeader())
    const token = a.e.leader()?.token as bigint
    await a.e.stop()
    assert.deepEqual(await pg.query('SELECT * FROM ballot.candidates WHERE election = $1', [election]), [])
    const [row] = await pg.query<{ holder: string | null; token: string }>(
      'SELECT holder, token FROM ballot.leases WHERE election = $1',
      [election],
    )
    assert.equal(row?.holder, null)
    assert.equal(BigInt(row?.token as string), token)
  })

  test('the tables are made on first use by candidates racing in a fresh schema; nothing else is touched', async () => {
    await pg.query('CREATE SCHEMA IF NOT EXISTS app; CREATE TABLE IF NOT EXISTS app.leases (x int)')
    await pg.query('INSERT INTO app.leases VALUES (1)')
    const schema = `fresh_${process.pid}`
    const election = name()
    const cs = ['a', 'b', 'c', 'd', 'e'].map((id) => candidate(election, id, { schema }))
    await Promise.all(cs.map((c) => c.e.start()))
    await waitUntil('one leader', () => cs.filter((c) => c.e.isLeader()).length === 1)
    const tables = await pg.query<{ table_name: string }>(
      'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1',
      [schema],
    )
    assert.deepEqual(
      tables.map((r) => r.table_name),
      ['candidates', 'leases'],
    )
    assert.deepEqual(await pg.query('SELECT x FROM app.leases'), [{ x: 1 }])
    for (const c of cs) await c.e.stop()
  })
})

describe('lease on PostgreSQL: bad configuration gives one clear error from start()', () => {
  test('an address where nothing listens: STORE_UNAVAILABLE naming it', async () => {
    const [port] = await freePorts(1)
    for (const e of [
      new LeaseElection({ id: 'a', backend: backend('x', {}, port), timing: { ttlMs: TTL } }),
      new LeaseFollower({ backend: backend('x', {}, port) }),
    ]) {
      await assert.rejects(e.start(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'STORE_UNAVAILABLE')
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}/postgres`))
        assert.ok(!err.message.includes('\n'), 'one line')
        return true
      })
      await e.stop()
    }
  })

  test('a database that does not exist, or a schema holding tables that are not ballot’s: STORE_REFUSED', async () => {
    await pg.query('CREATE SCHEMA IF NOT EXISTS foreign_data')
    await pg.query('CREATE TABLE IF NOT EXISTS foreign_data.leases (id int)')
    await pg.query('CREATE TABLE IF NOT EXISTS foreign_data.candidates (id int)')
    await pg.query('CREATE SEQUENCE IF NOT EXISTS foreign_data.lease_tokens')
    await pg.query('CREATE SEQUENCE IF NOT EXISTS foreign_data.line_order')
    const cases: Array<[PostgresBackend, RegExp]> = [
      [
        new PostgresBackend({
          connection: { port: pg.port, user: 'postgres', database: 'nosuchdb' },
          election: 'x',
        }),
        /database "nosuchdb" does not exist/,
      ],
      [backend('x', { schema: 'foreign_data' }), /not ballot's: name another with --schema/],
      [backend('x', { schema: `unmade_${process.pid}`, createSchema: false }), /ballot migrate/],
    ]
    for (const [b, message] of cases) {
      const e = new LeaseElection({ id: 'a', backend: b, timing: { ttlMs: TTL } })
      await assert.rejects(e.start(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'STORE_REFUSED')
        assert.match(err.message, message)
        assert.ok(!err.message.includes('\n'), 'one line')
        return true
      })
      await e.stop()
    }
    assert.throws(() => backend('x', { schema: 'no spaces' }), /schema: must be a plain identifier/)
  })
})

describe('lease on PostgreSQL: the server fails under a leader', () => {
  test('killed and restarted, then frozen longer than the TTL: leadership lost in time, errors reported, recovery by itself, never two leaders', async (t) => {
    const own = await PostgresServer.start()
    servers.push(own)
    const election = 'fail'
    const cs = ['a', 'b', 'c'].map((id) => candidate(election, id, {}, own.port))
    const checker = new ClaimChecker(cs.map((c) => c.e))
    for (const c of cs) await c.e.start()
    const validity = TTL * 0.95 - 200
    const leader = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
    const before = leader.e.leader()?.token as bigint
    // Nobody may claim leadership later than `validity` after the store went away.
    const claimedLate = (since: number) => {
      let late = false
      return () => {
        if (cs.some((c) => c.e.isLeader()) && performance.now() > since + validity) late = true
        return cs.every((c) => !c.e.isLeader()) && { late }
      }
    }

    const t0 = performance.now()
    await own.stop('SIGKILL')
    assert.equal((await waitUntil('nobody to lead', claimedLate(t0), 10_000, 5)).late, false)
    const lost = performance.now() - t0
    await waitUntil('every candidate to report the store unavailable', () =>
      cs.every((c) => c.errors.some((e) => e.code === 'STORE_UNAVAILABLE')),
    )
    await waitUntil('a few retries', () => cs.every((c) => c.e.view().failures >= 2))
    await own.start()
    const next = await waitUntil(
      'a leader after the restart',
      () => cs.find((c) => c.e.isLeader() && (c.e.leader()?.token ?? 0n) > before),
      20_000,
    )
    t.diagnostic(`killed: leadership lost after ${lost.toFixed(0)} ms; ${next.e.id} leads after the restart`)

    const tokenBefore = next.e.leader()?.token as bigint
    const t1 = performance.now()
    own.freeze()
    try {
      assert.equal((await waitUntil('nobody to lead while frozen', claimedLate(t1), 10_000, 5)).late, false)
      const frozen = performance.now() - t1
      await waitUntil('the frozen store reported', () =>
        cs.some((c) => c.errors.some((e) => e.code === 'STORE_UNAVAILABLE' && e.t > t1)),
      )
      // Frozen for longer than the TTL: every lease has run out by the database's clock too.
      await waitUntil('more than a TTL', () => performance.now() > t1 + TTL * 1.5, 10_000)
      assert.equal(cs.filter((c) => c.e.isLeader()).length, 0)
      own.thaw()
      await waitUntil(
        'a leader after the thaw',
        () => cs.find((c) => c.e.isLeader() && (c.e.leader()?.token ?? 0n) > tokenBefore),
        20_000,
      )
      t.diagnostic(`frozen: leadership lost after ${frozen.toFixed(0)} ms (validity ${validity} ms)`)
    } finally {
      own.thaw()
    }
    assert.deepEqual(checker.overlaps, [])
    assert.ok(checker.tokensGrow(), checker.describe())
    for (const c of cs) await c.e.stop()
  })
})

describe('lease on PostgreSQL through PgBouncer in transaction mode', () => {
  test('elects and hands over; LISTEN found not to work there is turned off, or kept by listening on the server itself', async (t) => {
    const bouncer = await PgBouncer.start(pg, 'transaction')
    servers.push(bouncer)
    const election = name()
    // Statements and LISTEN through PgBouncer: LISTEN is found dead; hand-over waits for a keep-alive.
    const cs = ['a', 'b'].map((id) => candidate(election, id, {}, bouncer.port))
    const checker = new ClaimChecker(cs.map((c) => c.e))
    for (const c of cs) await c.e.start()
    for (const c of cs) assert.equal(c.backend.notifications, 'off')
    const a = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
    // Both in line first (start() resolves once connected, before the join): else a would take it back.
    await waitUntil('both in line', () => a.e.clusterState().members.length === 2, 10_000)
    const t0 = performance.now()
    // Not awaited first: without LISTEN, a itself learns who leads only at its own next keep-alive.
    const resigned = a.e.resign()
    await waitUntil('the other to lead', () => cs.find((c) => c !== a && c.e.isLeader()), 10_000, 1)
    const slow = performance.now() - t0
    await resigned
    // Statements through PgBouncer, LISTEN on PostgreSQL itself: hand-over by NOTIFY again.
    const election2 = name()
    const direct = { host: '127.0.0.1', port: pg.port, user: 'postgres', database: 'postgres' }
    const ds = ['c', 'd'].map((id) => candidate(election2, id, { listen: direct }, bouncer.port))
    const checker2 = new ClaimChecker(ds.map((d) => d.e))
    for (const d of ds) await d.e.start()
    for (const d of ds) assert.equal(d.backend.notifications, 'on')
    const c = await waitUntil('a leader', () => ds.find((d) => d.e.isLeader()))
    await waitUntil('both in line', () => c.e.clusterState().members.length === 2, 10_000)
    const t1 = performance.now()
    await c.e.resign()
    await waitUntil('the other to lead', () => ds.find((d) => d !== c && d.e.isLeader()), 10_000, 1)
    const fast = performance.now() - t1
    t.diagnostic(
      `hand-over through PgBouncer: no LISTEN ${slow.toFixed(0)} ms, LISTEN on the server ${fast.toFixed(1)} ms`,
    )
    assert.ok(slow < TTL / 3 + 300, `${slow} ms: the next keep-alive takes over`)
    assert.ok(fast < TTL / 3, `${fast} ms`)
    assert.deepEqual(checker.overlaps, [])
    assert.deepEqual(checker2.overlaps, [])
    for (const x of [...cs, ...ds]) await x.e.stop()
  })
})

describe('postgres:// store URLs', () => {
  test('parsed with user, password, database; postgresql:// too; the password never in a message', async () => {
    const { parseStoreUrl, redactStoreUrl, createBackend } = await import('../src/lease/store-url.js')
    assert.deepEqual(parseStoreUrl('postgres://app:p%40ss@db.example:5433/appdb'), {
      scheme: 'postgres',
      hosts: ['db.example:5433'],
      username: 'app',
      password: 'p@ss',
      database: 'appdb',
    })
    assert.deepEqual(parseStoreUrl('postgresql://127.0.0.1:5432'), {
      scheme: 'postgres',
      hosts: ['127.0.0.1:5432'],
      username: undefined,
      password: undefined,
    })
    assert.equal(redactStoreUrl('postgres://app:s3cret@db:5432/x'), 'postgres://app:***@db:5432/x')
    for (const [url, message] of [
      ['postgres://a:s3cret@h:1,h:2/db', /give one PostgreSQL server/],
      ['postgres://a:s3cret@h:1/db?sslmode=require', /is not a database name/],
      ['postgres://a:s3cret@h/db', /expected host:port/],
    ] as const) {
      assert.throws(
        () => parseStoreUrl(url),
        (err: Error) => message.test(err.message) && !err.message.includes('s3cret'),
      )
    }
    const b = createBackend(parseStoreUrl('postgres://app:s3cret@db:5433/appdb'), {
      election: 'e',
      schema: 'leases',
    }) as PostgresBackend
    assert.equal(b.target, 'db:5433/appdb')
    assert.equal(b.schema, 'leases')
    assert.equal(b.channel, 'leases.lease')
  })
})
