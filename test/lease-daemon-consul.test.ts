// The built CLI on a real Consul: `ballot run --store consul://` with its HTTP API, metrics and events,
// `ballot leader|watch --store` reading the lock directly, `ballot exec --store` never running two
// children at once (with a lock-delay of 1 s set by the test), ACL tokens that work and never appear in
// any output, and bad settings refused in one line.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { ConsulAgent } from './helpers/consul.js'
import { waitForAsync } from './helpers/daemon.js'
import { LeaseCli } from './helpers/lease-cli.js'
import { freePorts } from './helpers/services.js'

let agent: ConsulAgent
let url: string
const agents: ConsulAgent[] = []
const cli = new LeaseCli()

before(async () => {
  agent = await ConsulAgent.start()
  agents.push(agent)
  url = agent.address.replace('http://', 'consul://')
})
after(async () => {
  await cli.close()
  await Promise.allSettled(agents.map((a) => a.close()))
})

test('ballot run --store consul://: one leader, its address on /leader, the line on /status, metrics, events; leader and watch read the lock', async () => {
  await cli.runScenario(
    ['--store', url, '--election', 'daemon/run'],
    ['--store', url, '--election', 'daemon/run'],
  )
})

test('ballot exec --store consul://: never two children at once, across kill -9 and SIGTERM; tokens grow', async () => {
  // kill -9: Consul invalidates the session TTL to 2 × TTL after its last renew, then the lock-delay.
  await cli.execScenario(
    ['--store', url, '--election', 'daemon/exec', '--lock-delay', '1s'],
    2 * 10_000 + 1000 + 3000,
  )
})

test('ACL token: --store-token and BALLOT_STORE_TOKEN work, a wrong or missing one is refused in one line; never printed', async () => {
  const token = '5e1d0c7a-1111-4222-8333-944455556666'
  const secured = await ConsulAgent.start({ aclMasterToken: token })
  agents.push(secured)
  const surl = secured.address.replace('http://', 'consul://')
  const good = await cli.daemon('acl-ok', ['--store', surl, '--election', 'acl', '--store-token', token])
  await waitForAsync('the daemon to lead with the token', async () => (await good.leader())?.status === 200)
  const viaEnv = await cli.cli(['leader', '--store', surl, '--election', 'acl'], {
    BALLOT_STORE_TOKEN: token,
  })
  assert.equal(viaEnv.stdout.trim(), good.http, viaEnv.stderr)
  await cli.oneLine(
    [
      [
        [
          'run',
          '--store',
          surl,
          '--election',
          'acl',
          '--id',
          'b',
          '--store-token',
          '5e1d0c7a-0000-4000-8000-000000000000',
        ],
        1,
        /^ballot: consul: read (lock|line) at http:\/\/127\.0\.0\.1:\d+\/v1: HTTP 403/,
      ],
      [
        ['leader', '--store', surl, '--election', 'acl'],
        1,
        /^ballot: consul: read (lock|line) at .*HTTP 403/,
      ],
    ],
    ['5e1d0c7a'],
  )
  good.kill('SIGTERM')
  await good.waitExit()
  assert.ok(!JSON.stringify(good.logs).includes('5e1d0c7a'), 'the token was logged')
})

test('bad settings: one line naming the setting or the store', async () => {
  const [closed] = await freePorts(1)
  assert.equal((await agent.http('PUT', '/v1/kv/daemon/foreign/.lock?flags=7', 'x')).status, 200)
  await cli.oneLine(
    [
      [
        ['run', '--store', `consul://127.0.0.1:${closed}`, '--election', 'x', '--id', 'a'],
        1,
        new RegExp(
          `^ballot: consul: read (lock|line) at http://127\\.0\\.0\\.1:${closed}/v1: .*ECONNREFUSED`,
        ),
      ],
      [
        ['leader', '--store', url, '--election', 'daemon/foreign'],
        1,
        /^ballot: consul: daemon\/foreign\/\.lock has flags 7, not 3304740253564472344: Existing key does not match lock use/,
      ],
      [
        ['run', '--store', url, '--election', 'x', '--id', 'a', '--ttl', '2s'],
        2,
        /^ballot: --ttl: Consul grants session TTLs from 10s to 24h, not 2000 ms$/,
      ],
      [
        ['run', '--store', url, '--election', 'x', '--id', 'a', '--lock-delay', 'soon'],
        2,
        /^ballot: --lock-delay: expected a duration/,
      ],
      [
        [
          'run',
          '--store',
          url.replace('consul://', 'consul://t0ken-in-url@'),
          '--election',
          'x',
          '--id',
          'a',
        ],
        2,
        /^ballot: --store: a Consul ACL token goes in --store-token or BALLOT_STORE_TOKEN, not in the URL$/,
      ],
      [
        ['run', '--store', url, '--election', 'x', '--id', 'a', '--store-user', 'u'],
        2,
        /^ballot: --store-user: Consul takes an ACL token/,
      ],
      [
        ['leader', '--store', `${url},127.0.0.1:1`, '--election', 'x'],
        2,
        /^ballot: --store: give one Consul agent/,
      ],
    ],
    ['t0ken-in-url'],
  )
})
