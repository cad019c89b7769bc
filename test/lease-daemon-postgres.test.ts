// The built CLI on a real PostgreSQL: `ballot run --store postgres://` with its HTTP API, metrics and
// events, `ballot leader|watch --store` reading the lease directly, `ballot exec --store` never running two
// children at once, `ballot migrate` making the tables for a role that may not, a password that never
// appears in any output, and bad settings refused in one line.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { waitForAsync } from './helpers/daemon.js'
import { LeaseCli } from './helpers/lease-cli.js'
import { PgBouncer, PostgresServer } from './helpers/postgres.js'
import { freePorts } from './helpers/services.js'

let pg: PostgresServer
let url: string
const cli = new LeaseCli()

before(async () => {
  pg = await PostgresServer.start()
  url = pg.url
})
after(async () => {
  await cli.close()
  await pg?.close()
})

test('ballot run --store postgres://: one leader, its address on /leader, the line on /status, metrics, events; leader and watch read the lease', async () => {
  await cli.runScenario(
    ['--store', url, '--election', 'daemon-run', '--ttl', '2s'],
    ['--store', url, '--election', 'daemon-run'],
  )
})

test('ballot exec --store postgres://: never two children at once, across kill -9 and SIGTERM; tokens grow', async () => {
  await cli.execScenario(['--store', url, '--election', 'daemon-exec', '--ttl', '2s'], 2000 + 1500)
})

test('ballot migrate makes the tables for a role that may not; the password is never printed', async () => {
  await pg.query("CREATE ROLE lease_app LOGIN PASSWORD 'app-s3cret'")
  const schema = 'leases_m'
  const admin = url.replace('postgres://postgres@', 'postgres://postgres:adm1n-pw@')
  const made = await cli.cli(['migrate', '--store', admin, '--schema', schema])
  assert.equal(made.code, 0, made.stderr)
  assert.match(
    made.stdout,
    /^ballot: schema "leases_m" is ready in postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/postgres\n$/,
  )
  // Again: nothing to do, still fine.
  assert.equal((await cli.cli(['migrate', '--store', admin, '--schema', schema])).code, 0)
  await pg.query(`GRANT USAGE ON SCHEMA ${schema} TO lease_app;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${schema} TO lease_app;
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA ${schema} TO lease_app`)
  const appUrl = url.replace('postgres://postgres@', 'postgres://lease_app:app-s3cret@')
  const a = await cli.daemon('m1', [
    '--store',
    appUrl,
    '--election',
    'migrated',
    '--schema',
    schema,
    '--ttl',
    '2s',
  ])
  await waitForAsync('the app role to lead', async () => (await a.leader())?.status === 200)
  const leader = await cli.cli([
    'leader',
    '--store',
    appUrl,
    '--election',
    'migrated',
    '--schema',
    schema,
    '--json',
  ])
  assert.equal(JSON.parse(leader.stdout).id, 'm1', leader.stderr)
  // The app role may not create a schema: one line naming `ballot migrate`.
  await cli.oneLine(
    [
      [
        ['run', '--store', appUrl, '--election', 'x', '--id', 'b', '--schema', 'unmade'],
        1,
        /^ballot: postgres 127\.0\.0\.1:\d+\/postgres refused creating schema "unmade": permission denied for database postgres \(SQLSTATE 42501\)$/,
      ],
    ],
    ['app-s3cret'],
  )
  a.kill('SIGTERM')
  await a.waitExit()
  const everything = [made.stdout, made.stderr, leader.stdout, leader.stderr, JSON.stringify(a.logs)].join(
    '\n',
  )
  assert.ok(!everything.includes('app-s3cret') && !everything.includes('adm1n-pw'), 'a password was printed')
})

test('through PgBouncer in transaction mode: it leads, and the log says LISTEN does not work there', async () => {
  const bouncer = await PgBouncer.start(pg, 'transaction')
  try {
    const a = await cli.daemon('pb', ['--store', bouncer.url, '--election', 'bounced', '--ttl', '2s'])
    await waitForAsync('a to lead through PgBouncer', async () => (await a.leader())?.status === 200)
    const warned = (p: typeof a) => p.logs.some((l) => /LISTEN\/NOTIFY does not work/.test(String(l.msg)))
    await waitForAsync('the warning', async () => warned(a))
    const direct = await cli.daemon('pd', ['--store', url, '--election', 'bounced', '--ttl', '2s'])
    await waitForAsync('the direct one to name pb', async () => (await direct.leaderJson())?.id === 'pb')
    assert.equal(warned(direct), false)
    for (const p of [a, direct]) {
      p.kill('SIGTERM')
      await p.waitExit()
    }
  } finally {
    await bouncer.close()
  }
})

test('bad settings: one line naming the setting or the store', async () => {
  const [closed] = await freePorts(1)
  await cli.oneLine(
    [
      [
        ['run', '--store', `postgres://u:s3cret@127.0.0.1:${closed}/db`, '--election', 'x', '--id', 'a'],
        1,
        new RegExp(
          `^ballot: postgres 127\\.0\\.0\\.1:${closed}/db unavailable \\(schema check\\): .*ECONNREFUSED`,
        ),
      ],
      [
        ['leader', '--store', url.replace(/\/postgres$/, '/nosuchdb'), '--election', 'x'],
        1,
        /^ballot: postgres 127\.0\.0\.1:\d+\/nosuchdb refused schema check: database "nosuchdb" does not exist/,
      ],
      [
        ['run', '--store', url, '--election', 'x', '--id', 'a', '--schema', 'bad name'],
        2,
        /^ballot: --schema: expected a plain SQL identifier such as ballot, got "bad name"$/,
      ],
      [
        ['run', '--store', 'etcd://127.0.0.1:2379', '--election', 'x', '--id', 'a', '--schema', 'x'],
        2,
        /^ballot: --schema: applies to postgres:\/\/ stores only$/,
      ],
      [
        ['leader', '--store', `${url.replace(/\/postgres$/, '')},127.0.0.1:1`, '--election', 'x'],
        2,
        /^ballot: --store: give one PostgreSQL server/,
      ],
      [
        ['migrate', '--store', 'etcd://127.0.0.1:2379'],
        2,
        /^ballot: --store: migrate applies to postgres:\/\/ stores only, got etcd:\/\/$/,
      ],
    ],
    ['s3cret'],
  )
})
