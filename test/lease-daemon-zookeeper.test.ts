// The built CLI on a real ZooKeeper: `ballot run --store zookeeper://` with its HTTP API, metrics and
// events, `ballot leader|watch --store` reading the latch directly, `ballot exec --store` never running
// two children at once, digest credentials that work and never appear in any output, and bad settings
// refused in one line.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, test } from 'node:test'
import zookeeper from 'node-zookeeper-client'
import { waitForAsync } from './helpers/daemon.js'
import { LeaseCli } from './helpers/lease-cli.js'
import { freePorts } from './helpers/services.js'
import { ZooKeeperServer } from './helpers/zookeeper.js'

let zk: ZooKeeperServer
let url: string
const cli = new LeaseCli()

before(async () => {
  zk = await ZooKeeperServer.start() // tickTime 200 ms: session timeouts from 400 ms to 4 s
  url = `zookeeper://${zk.connectString}`
})
after(async () => {
  await cli.close()
  await zk?.close()
})

/** Runs `work` with a plain client (what zkCli would do), closed afterwards. */
async function withClient<T>(work: (c: zookeeper.Client) => Promise<T>): Promise<T> {
  const client = zookeeper.createClient(zk.connectString, { sessionTimeout: 4000 })
  await new Promise<void>((resolve) => {
    client.once('connected', () => resolve())
    client.connect()
  })
  try {
    return await work(client)
  } finally {
    client.close()
  }
}

test('ballot run --store zookeeper://: one leader, its address on /leader, the line on /status, metrics, events; leader and watch read the latch', async () => {
  await cli.runScenario(
    ['--store', url, '--election', '/daemon/run', '--ttl', '2s'],
    ['--store', url, '--election', '/daemon/run'],
  )
})

test('ballot exec --store zookeeper://: never two children at once, across kill -9 and SIGTERM; tokens grow', async () => {
  await cli.execScenario(['--store', url, '--election', '/daemon/exec', '--ttl', '2s'], 2000 + 1500)
})

test('digest credentials: in the URL or apart they work, a wrong password is refused in one line; neither is printed', async () => {
  const path = '/daemon/secure'
  await withClient(
    (c) =>
      new Promise<void>((resolve, reject) =>
        c.mkdirp('/daemon', (e) => {
          if (e) return reject(e)
          const digest = createHash('sha1').update('ops:0ps-pw').digest('base64')
          const acl = [
            new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('digest', `ops:${digest}`)),
          ]
          c.create(path, Buffer.alloc(0), acl, (err) => (err ? reject(err) : resolve()))
        }),
      ),
  )
  const good = await cli.daemon('auth-ok', [
    '--store',
    `zookeeper://ops:0ps-pw@${zk.connectString}`,
    '--election',
    path,
    '--ttl',
    '2s',
  ])
  await waitForAsync('the daemon to lead with credentials', async () => (await good.leader())?.status === 200)
  const apart = await cli.cli(['leader', '--store', url, '--election', path, '--store-user', 'ops'], {
    BALLOT_STORE_PASSWORD: '0ps-pw',
  })
  assert.equal(apart.stdout.trim(), good.http, apart.stderr)
  await cli.oneLine(
    [
      [
        [
          'run',
          '--store',
          `zookeeper://ops:wr0ng-pw@${zk.connectString}`,
          '--election',
          path,
          '--id',
          'b',
          '--ttl',
          '2s',
        ],
        1,
        new RegExp(`^ballot: zookeeper: getChildren ${path}: .*NO_AUTH`),
      ],
      [['leader', '--store', url, '--election', path], 1, /NO_AUTH/],
    ],
    ['0ps-pw', 'wr0ng-pw'],
  )
  good.kill('SIGTERM')
  await good.waitExit()
  assert.ok(!JSON.stringify(good.logs).includes('0ps-pw'), 'a password was logged')
})

test('bad settings: one line naming the setting or the store', async () => {
  const [closed] = await freePorts(1)
  await withClient(
    (c) =>
      new Promise<void>((resolve, reject) =>
        c.mkdirp('/daemon/foreign/config', (e) => (e ? reject(e) : resolve())),
      ),
  )
  await cli.oneLine([
    [
      ['run', '--store', `zookeeper://127.0.0.1:${closed}`, '--election', '/x', '--id', 'a'],
      1,
      new RegExp(`^ballot: zookeeper 127\\.0\\.0\\.1:${closed}: no answer to connect within 5000 ms`),
    ],
    [
      ['leader', '--store', url, '--election', '/daemon/foreign'],
      1,
      /^ballot: zookeeper: \/daemon\/foreign holds nodes that are not LeaderLatch candidates \(\/daemon\/foreign\/config;/,
    ],
    [
      ['run', '--store', url, '--election', '/daemon/ttl', '--id', 'a', '--ttl', '10s'],
      2,
      /^ballot: ttl: zookeeper 127\.0\.0\.1:\d+ grants a session timeout of 4000 ms, not the 10000 ms asked/,
    ],
    [
      ['run', '--store', url, '--election', 'daemon/x', '--id', 'a'],
      2,
      /^ballot: --election: on ZooKeeper, the latch path .* like \/services\/my-service\/leader; got "daemon\/x"/,
    ],
    [
      ['run', '--store', url, '--election', '/x', '--id', 'a', '--lock-delay', '1s'],
      2,
      /^ballot: --lock-delay: applies to consul:\/\/ stores only/,
    ],
    [
      ['leader', '--store', `${url}/bad//chroot`, '--election', '/x'],
      2,
      /^ballot: --store: "\/bad\/\/chroot" is not a ZooKeeper chroot/,
    ],
  ])
})
