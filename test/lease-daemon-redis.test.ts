// The built CLI on a real redis-server: `ballot run --store redis://` with its HTTP API, metrics and
// events, `ballot leader|watch --store` reading the election directly, `ballot exec --store` never running
// two children at once, a password that works and never appears in any output, rediss:// with a CA made
// here, and bad settings refused in one line.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { waitForAsync } from './helpers/daemon.js'
import { LeaseCli } from './helpers/lease-cli.js'
import { RedisSentinelGroup, RedisServer } from './helpers/redis.js'
import { freePorts } from './helpers/services.js'

let redis: RedisServer
let url: string
const servers: Array<{ close(): Promise<void> }> = []
const cli = new LeaseCli()

before(async () => {
  redis = await RedisServer.start()
  servers.push(redis)
  url = `redis://${redis.endpoint}`
})
after(async () => {
  await cli.close()
  await Promise.allSettled(servers.map((s) => s.close()))
})

test('ballot run --store redis://: one leader, its address on /leader, the line on /status, metrics, events; leader and watch read the election', async () => {
  await cli.runScenario(
    ['--store', url, '--election', 'daemon-run', '--ttl', '2s'],
    ['--store', url, '--election', 'daemon-run'],
  )
})

test('ballot exec --store redis://: never two children at once, across kill -9 and SIGTERM; tokens grow', async () => {
  await cli.execScenario(['--store', `${url}/1`, '--election', 'daemon-exec', '--ttl', '2s'], 2000 + 1500)
})

test('a password in the URL or apart works, a wrong one is refused in one line; neither is printed', async () => {
  const secured = await RedisServer.start({ password: 'r3dis-pw' })
  servers.push(secured)
  const good = await cli.daemon('pw-ok', [
    '--store',
    `redis://:r3dis-pw@${secured.endpoint}`,
    '--election',
    'pw',
    '--ttl',
    '2s',
  ])
  await waitForAsync(
    'the daemon to lead with the password',
    async () => (await good.leader())?.status === 200,
  )
  const viaEnv = await cli.cli(['leader', '--store', `redis://${secured.endpoint}`, '--election', 'pw'], {
    BALLOT_STORE_PASSWORD: 'r3dis-pw',
  })
  assert.equal(viaEnv.stdout.trim(), good.http, viaEnv.stderr)
  await cli.oneLine(
    [
      [
        ['run', '--store', `redis://:wr0ng-pw@${secured.endpoint}`, '--election', 'pw', '--id', 'b'],
        1,
        /^ballot: redis 127\.0\.0\.1:\d+ refused connect: WRONGPASS/,
      ],
      [['leader', '--store', `redis://${secured.endpoint}`, '--election', 'pw'], 1, /NOAUTH/],
    ],
    ['wr0ng-pw', 'r3dis-pw'],
  )
  good.kill('SIGTERM')
  await good.waitExit()
  assert.ok(!JSON.stringify(good.logs).includes('r3dis-pw'), 'the password was logged')
})

test('rediss:// with a private CA (NODE_EXTRA_CA_CERTS): leader and watch work over TLS', async () => {
  const secure = await RedisServer.start({ tls: true })
  servers.push(secure)
  const surl = `rediss://localhost:${secure.port}`
  const env = { NODE_EXTRA_CA_CERTS: secure.caFile }
  // The daemon inherits this process's environment.
  process.env.NODE_EXTRA_CA_CERTS = secure.caFile
  const a = await cli.daemon('tls-a', ['--store', surl, '--election', 'tls', '--ttl', '2s']).finally(() => {
    delete process.env.NODE_EXTRA_CA_CERTS
  })
  await waitForAsync('the daemon to lead over TLS', async () => (await a.leader())?.status === 200)
  const leader = await cli.cli(['leader', '--store', surl, '--election', 'tls'], env)
  assert.equal(leader.stdout.trim(), a.http, leader.stderr)
  // Without the CA, the server's certificate is refused.
  const refused = await cli.cli(['leader', '--store', surl, '--election', 'tls'])
  assert.equal(refused.code, 1)
  assert.match(refused.stderr, /certificate/i)
  a.kill('SIGTERM')
  await a.waitExit()
})

test('redis+sentinel://: the daemon finds the master through the Sentinel, leads, and warns what a failover can do', async () => {
  const group = await RedisSentinelGroup.start()
  servers.push(group)
  const surl = `redis+sentinel://${group.sentinelEndpoint}/mymaster`
  const a = await cli.daemon('sentinel-a', ['--store', surl, '--election', 'sentinel', '--ttl', '2s'])
  await waitForAsync('the daemon to lead', async () => (await a.leader())?.status === 200)
  assert.ok(
    a.logs.some((l) => l.level === 40 && /a failover to a replica that lacks the lock/.test(String(l.msg))),
    JSON.stringify(a.logs.map((l) => l.msg)),
  )
  const leader = await cli.cli(['leader', '--store', surl, '--election', 'sentinel'])
  assert.equal(leader.stdout.trim(), a.http, leader.stderr)
  a.kill('SIGTERM')
  await a.waitExit()
})

test('bad settings: one line naming the setting or the store', async () => {
  const [closed] = await freePorts(1)
  redis.cli('SET', 'ballot:{daemon-foreign}:line', 'x')
  await cli.oneLine([
    [
      ['run', '--store', `redis://127.0.0.1:${closed}`, '--election', 'x', '--id', 'a'],
      1,
      new RegExp(`^ballot: redis 127\\.0\\.0\\.1:${closed} unavailable \\(connect\\): .*ECONNREFUSED`),
    ],
    [
      ['leader', '--store', url, '--election', 'daemon-foreign'],
      1,
      /^ballot: redis 127\.0\.0\.1:\d+: ballot:\{daemon-foreign\}:line is a string, not the sorted set of a line/,
    ],
    [
      ['leader', '--store', `${url},127.0.0.1:1`, '--election', 'x'],
      2,
      /^ballot: --store: give one Redis server/,
    ],
    [
      ['leader', '--store', `${url}/db2`, '--election', 'x'],
      2,
      /^ballot: --store: expected a database number/,
    ],
    [
      ['run', '--store', url, '--election', 'x', '--id', 'a', '--lock-delay', '1s'],
      2,
      /^ballot: --lock-delay: applies to consul:\/\/ stores only$/,
    ],
  ])
})
