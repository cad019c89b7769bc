// The built CLI over TLS to the stores, with a CA this test makes with openssl: `ballot run|leader|watch
// --store etcd+https://` with --store-ca/--store-cert/--store-key against an etcd that asks for client
// certificates, `zookeeper+https://` against a ZooKeeper whose secureClientPort asks for them, and
// `consul+https://` with BALLOT_STORE_CA against Consul's HTTPS API; key text never in any output; TLS
// settings a store cannot use refused in one line.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { ConsulAgent } from './helpers/consul.js'
import { EtcdServer } from './helpers/etcd-server.js'
import { LeaseCli } from './helpers/lease-cli.js'
import { TestCa } from './helpers/tls.js'
import { ZooKeeperServer } from './helpers/zookeeper.js'

let ca: TestCa
const cli = new LeaseCli()
const servers: Array<{ close(): Promise<unknown> }> = []

before(() => {
  ca = TestCa.make()
})
after(async () => {
  await cli.close()
  await Promise.allSettled(servers.map((s) => s.close()))
  ca?.close()
})

/** A line of the client key (base64 body): must appear in no output. */
const keyText = () => ca.client.key.pem.trim().split('\n')[1] as string

/** The flags of a client that proves itself with this run's CA's client certificate. */
const clientTls = () => [
  '--store-ca',
  ca.ca.file,
  '--store-cert',
  ca.client.cert.file,
  '--store-key',
  ca.client.key.file,
]

function assertKeyNeverLogged(): void {
  for (const p of cli.procs)
    assert.ok(!JSON.stringify(p.logs).includes(keyText()), `${p.name} logged the key`)
}

test('ballot run|leader|watch --store etcd+https:// with a client certificate: the whole run scenario; the key never printed', async () => {
  const etcd = await EtcdServer.start({
    tls: { ca: ca.ca.file, cert: ca.server.cert.file, key: ca.server.key.file, clientCertAuth: true },
  })
  servers.push(etcd)
  const store = ['--store', `etcd+https://${etcd.endpoint}`, '--election', 'tls-run', ...clientTls()]
  await cli.runScenario([...store, '--ttl', '2s'], store)
  assertKeyNeverLogged()
  // Without a client certificate etcd refuses the handshake: ballot leader says so in one line.
  await cli.oneLine(
    [
      [
        [
          'leader',
          '--store',
          `etcd+https://${etcd.endpoint}`,
          '--election',
          'tls-run',
          '--store-ca',
          ca.ca.file,
          '--timeout',
          '2s',
        ],
        1,
        /^ballot: etcd .*bad certificate/,
      ],
    ],
    [keyText()],
  )
})

test('ballot run|leader|watch --store zookeeper+https:// with a client certificate: the whole run scenario; the key never printed', async () => {
  const zk = await ZooKeeperServer.start({
    tls: { ca: ca.ca.file, cert: ca.server.cert.file, key: ca.server.key.file, clientAuth: true },
  })
  servers.push(zk)
  const url = `zookeeper+https://${zk.secureConnectString}`
  const store = ['--store', url, '--election', '/tls/run', ...clientTls()]
  await cli.runScenario([...store, '--ttl', '2s'], store)
  assertKeyNeverLogged()
  // Without a client certificate ZooKeeper refuses the handshake: ballot leader says so in one line.
  await cli.oneLine(
    [
      [
        ['leader', '--store', url, '--election', '/tls/run', '--store-ca', ca.ca.file, '--timeout', '3s'],
        1,
        /^ballot: zookeeper: cannot reach .*TLS to 127\.0\.0\.1:\d+: the server refused the handshake/,
      ],
    ],
    [keyText()],
  )
})

test('ballot run|leader|watch --store consul+https:// with BALLOT_STORE_CA: the whole run scenario', async () => {
  const agent = await ConsulAgent.start({
    tls: { ca: ca.ca.file, cert: ca.server.cert.file, key: ca.server.key.file },
  })
  servers.push(agent)
  const store = [
    '--store',
    agent.httpsAddress.replace('https://', 'consul+https://'),
    '--election',
    'tls/run',
  ]
  const prev = process.env.BALLOT_STORE_CA
  process.env.BALLOT_STORE_CA = ca.ca.file
  try {
    await cli.runScenario([...store, '--lock-delay', '0s'], store)
  } finally {
    if (prev === undefined) delete process.env.BALLOT_STORE_CA
    else process.env.BALLOT_STORE_CA = prev
  }
})

test('TLS settings a store cannot use: one line naming the setting', async () => {
  const key = ca.client.key.file
  await cli.oneLine(
    [
      [
        ['leader', '--store', 'etcd://127.0.0.1:2379', '--election', 'x', '--store-ca', ca.ca.file],
        2,
        /--store-ca.*etcd\+https:\/\//,
      ],
      [
        ['leader', '--store', 'zookeeper://127.0.0.1:2181', '--election', '/x', '--store-ca', ca.ca.file],
        2,
        /--store-ca.*zookeeper\+https:\/\//,
      ],
      [
        ['leader', '--store', 'etcd+https://127.0.0.1:2379', '--election', 'x', '--store-key', key],
        2,
        /--store-cert.*come together/,
      ],
      [
        [
          'leader',
          '--store',
          'etcd+https://127.0.0.1:2379',
          '--election',
          'x',
          '--store-ca',
          '/nonexistent/ca.pem',
        ],
        2,
        /--store-ca.*cannot read \/nonexistent\/ca\.pem/,
      ],
      [
        [
          'run',
          '--store',
          'zookeeper://127.0.0.1:2181',
          '--election',
          '/x',
          '--id',
          'a',
          '--store-key',
          key,
          '--store-cert',
          key,
        ],
        2,
        /--store-(cert|key).*zookeeper\+https:\/\//,
      ],
    ],
    [keyText()],
  )
})
