// The lease driver (LeaseElection, LeaseFollower) on a real PostgreSQL 15 started here: the scenarios every
// store shares (./helpers/lease-scenarios.ts: leadership with the leases row checked, hand-over by
// LISTEN/NOTIFY, followers, stop, bad configuration (a database that does not exist, foreign tables, a
// schema not made), the server killed and restarted and frozen (SIGSTOP) longer than the TTL under a
// leader; a candidate row deleted by hand), then PostgreSQL's own: LISTEN connections cut, a late leave, tables
// made on first use by racing candidates in a schema of their own, schema names checked, PgBouncer in
// transaction mode, and postgres:// store URLs.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { PostgresBackend, PostgresBackendOptions } from '../src/lease/stores/postgres.js'
import { postgresSql } from '../src/lease/stores/postgres-sql.js'
import { ClaimChecker, candidateOn } from './helpers/lease.js'
import { leaseScenarios } from './helpers/lease-scenarios.js'
import { postgresStore } from './helpers/lease-stores.js'
import { PgBouncer } from './helpers/postgres.js'
import { waitUntil } from './helpers/services.js'

const TTL = postgresStore.ttlMs
const s = leaseScenarios(postgresStore)
const name = () => postgresStore.election()

/** A recorded candidate (with its backend) on the shared server or `port`, stopped after the file. */
function candidate(election: string, id: string, extra: Partial<PostgresBackendOptions> = {}, port?: number) {
  const b: PostgresBackend = s.server.backend(election, TTL, extra, port)
  const r = Object.assign(candidateOn(b, id, { timing: { ttlMs: TTL } }), { backend: b })
  s.own(r.e)
  return r
}

describe('lease on PostgreSQL: its own', () => {
  test('LISTEN connections cut by the server: they come back by themselves, and hand-over is fast again', async () => {
    const election = name()
    const cs = ['a', 'b'].map((id) => candidate(election, id))
    for (const c of cs) await c.e.start()
    const a = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
    await waitUntil('both in line', () => a.e.clusterState().members.length === 2)
    const cut = await s.server.pg.query<{ pid: number }>(
      'SELECT pg_terminate_backend(pid) AS ok, pid FROM pg_stat_activity WHERE application_name = $1',
      [`ballot listen ${election}`],
    )
    assert.equal(cut.length, 2)
    const old = new Set(cut.map((r) => r.pid))
    await waitUntil('both listening again, on new connections', async () => {
      const now = await s.server.pg.query<{ pid: number }>(
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
    const [before] = await s.server.pg.query<{ joined: string }>(
      'SELECT joined FROM ballot.candidates WHERE session = $1',
      [session],
    )
    // The statement a leave sends, meaning an earlier entry and lease of this same session.
    const stale = [election, session, 'ballot.lease', String(BigInt(before?.joined as string) - 1n), '0']
    await s.server.pg.query(postgresSql('ballot').leave, stale)
    const [row] = await s.server.pg.query<{ holder: string; joined: string }>(
      'SELECT l.holder, c.joined FROM ballot.leases l JOIN ballot.candidates c ON c.session = l.holder WHERE l.election = $1',
      [election],
    )
    assert.deepEqual(row, { holder: session, joined: before?.joined })
    assert.equal(a.e.isLeader(), true)
    await a.e.stop()
  })

  test('the tables are made on first use by candidates racing in a fresh schema; nothing else is touched', async () => {
    await s.server.pg.query('CREATE SCHEMA IF NOT EXISTS app; CREATE TABLE IF NOT EXISTS app.leases (x int)')
    await s.server.pg.query('INSERT INTO app.leases VALUES (1)')
    const schema = `fresh_${process.pid}`
    const election = name()
    const cs = ['a', 'b', 'c', 'd', 'e'].map((id) => candidate(election, id, { schema }))
    await Promise.all(cs.map((c) => c.e.start()))
    await waitUntil('one leader', () => cs.filter((c) => c.e.isLeader()).length === 1)
    const tables = await s.server.pg.query<{ table_name: string }>(
      'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1',
      [schema],
    )
    assert.deepEqual(
      tables.map((r) => r.table_name),
      ['candidates', 'leases'],
    )
    assert.deepEqual(await s.server.pg.query('SELECT x FROM app.leases'), [{ x: 1 }])
    for (const c of cs) await c.e.stop()
  })
})

describe('lease on PostgreSQL: schema names', () => {
  test('a schema name that is not a plain identifier is refused when the backend is made', () => {
    assert.throws(
      () => s.server.backend('x', TTL, { schema: 'no spaces' }),
      /schema: must be a plain identifier/,
    )
  })
})

describe('lease on PostgreSQL through PgBouncer in transaction mode', () => {
  test('elects and hands over; LISTEN found not to work there is turned off, or kept by listening on the server itself', async (t) => {
    const bouncer = s.own(await PgBouncer.start(s.server.pg, 'transaction'))
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
    const direct = { host: '127.0.0.1', port: s.server.pg.port, user: 'postgres', database: 'postgres' }
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
