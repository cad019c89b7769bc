// TLS to the stores, against real servers with certificates from a CA this test makes with openssl:
// etcd (server TLS, then client-certificate auth), Consul's HTTPS API (server TLS, then verified
// clients) and ZooKeeper's secureClientPort (through the backend's in-process TLS forwarders; server TLS,
// then client certificates required). A candidate leads over TLS; a client that does not trust the
// server, or has no certificate (or one from another CA) where one is asked for, fails start() in one
// line; no key or certificate text is ever in a message.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { LeaseBackend } from '../src/lease/backend.js'
import { LeaseElection } from '../src/lease/candidate.js'
import type { LeaseFollower } from '../src/lease/follower.js'
import { ConsulBackend } from '../src/lease/stores/consul.js'
import { EtcdBackend } from '../src/lease/stores/etcd.js'
import type { StoreTls } from '../src/lease/stores/tls.js'
import { ZooKeeperBackend } from '../src/lease/stores/zookeeper.js'
import { ConsulAgent } from './helpers/consul.js'
import { EtcdServer } from './helpers/etcd-server.js'
import { candidateOn, followerOn, type Recorded } from './helpers/lease.js'
import { portOpen, waitUntil } from './helpers/services.js'
import { TestCa } from './helpers/tls.js'
import { ZooKeeperServer } from './helpers/zookeeper.js'

let ca: TestCa
/** Another CA: its client certificate is well formed but not from the CA the servers trust. */
let otherCa: TestCa
const servers: Array<{ close(): Promise<unknown> }> = []
const open: Array<Recorded<LeaseElection | LeaseFollower>> = []

before(() => {
  ca = TestCa.make()
  otherCa = TestCa.make('ballot-other')
})
after(async () => {
  await Promise.allSettled(open.map((r) => r.e.stop()))
  await Promise.allSettled(servers.map((s) => s.close()))
  ca?.close()
  otherCa?.close()
})

/** A candidate and a follower on `make()`'s backends: the candidate leads, the follower names it. */
async function leadsOver(make: () => LeaseBackend, ttlMs: number): Promise<void> {
  const c = candidateOn(make(), 'tls-a', { timing: { ttlMs } })
  const f = followerOn(make())
  open.push(c, f)
  await c.e.start()
  await f.e.start()
  await waitUntil('the candidate to lead over TLS', () => c.e.isLeader(), 20_000)
  await waitUntil('the follower to name it', () => f.e.leader()?.id === 'tls-a', 20_000)
  await c.e.stop()
  await f.e.stop()
}

/** start() fails in one line with `code` (and matching `why`, when given), naming no key or certificate text. */
async function refused(backend: LeaseBackend, code: string, ttlMs: number, why?: RegExp): Promise<string> {
  const e = new LeaseElection({ id: 'x', backend, timing: { ttlMs }, connectTimeoutMs: 3000 })
  let message = ''
  await assert.rejects(e.start(), (err: Error & { code?: string }) => {
    message = err.message
    assert.equal(err.code, code, err.message)
    assert.ok(!err.message.includes('\n'), `one line: ${err.message}`)
    if (why) assert.match(err.message, why)
    for (const secret of [
      ca.client.key.pem,
      ca.server.key.pem,
      otherCa.client.key.pem,
      ca.client.cert.pem,
      otherCa.client.cert.pem,
    ])
      assert.ok(!err.message.includes(secret.trim().split('\n')[1] as string), err.message)
    for (const marker of ['PRIVATE KEY', 'BEGIN CERTIFICATE'])
      assert.ok(!err.message.includes(marker), err.message)
    return true
  })
  await e.stop()
  return message
}

const withCa: () => StoreTls = () => ({ ca: ca.ca.pem })
const withClient: () => StoreTls = () => ({ ca: ca.ca.pem, cert: ca.client.cert.pem, key: ca.client.key.pem })

describe('lease over TLS: etcd', () => {
  test('server TLS: leads with the CA; refused without it (untrusted) and over plain http', async () => {
    const etcd = await EtcdServer.start({
      tls: { ca: ca.ca.file, cert: ca.server.cert.file, key: ca.server.key.file },
    })
    servers.push(etcd)
    const hosts = [etcd.endpoint]
    await leadsOver(() => new EtcdBackend({ hosts, election: 'tls-1', tls: withCa() }), 2000)
    await refused(new EtcdBackend({ hosts, election: 'tls-1', tls: {} }), 'STORE_UNAVAILABLE', 2000)
    await refused(new EtcdBackend({ hosts, election: 'tls-1' }), 'STORE_UNAVAILABLE', 2000)
  })

  test('client-certificate auth: leads with a certificate from the CA; refused without one', async () => {
    const etcd = await EtcdServer.start({
      tls: { ca: ca.ca.file, cert: ca.server.cert.file, key: ca.server.key.file, clientCertAuth: true },
    })
    servers.push(etcd)
    const hosts = [etcd.endpoint]
    await leadsOver(() => new EtcdBackend({ hosts, election: 'tls-2', tls: withClient() }), 2000)
    await refused(new EtcdBackend({ hosts, election: 'tls-2', tls: withCa() }), 'STORE_UNAVAILABLE', 2000)
  })

  test('a certificate without its key, or text that is not PEM: one clear error naming the field', () => {
    assert.throws(
      () =>
        new EtcdBackend({
          hosts: ['127.0.0.1:1'],
          election: 'x',
          tls: { ca: ca.ca.pem, cert: ca.client.cert.pem },
        }),
      (err: Error & { code?: string }) => err.code === 'INVALID_OPTIONS' && /cert and key/.test(err.message),
    )
    assert.throws(
      () => new EtcdBackend({ hosts: ['127.0.0.1:1'], election: 'x', tls: { ca: 'ca.pem' } }),
      (err: Error & { code?: string }) => err.code === 'INVALID_OPTIONS' && /tls\.ca/.test(err.message),
    )
  })
})

describe('lease over TLS: Consul HTTPS', () => {
  const TTL = 10_000
  test('server TLS: leads over https with the CA; refused without it', async () => {
    const agent = await ConsulAgent.start({
      tls: { ca: ca.ca.file, cert: ca.server.cert.file, key: ca.server.key.file },
    })
    servers.push(agent)
    const backend = (tls?: StoreTls) =>
      new ConsulBackend({
        address: agent.httpsAddress,
        prefix: 'tls/one',
        lockDelayMs: 0,
        ...(tls ? { tls } : {}),
      })
    await leadsOver(() => backend(withCa()), TTL)
    await refused(backend(), 'STORE_UNAVAILABLE', TTL)
  })

  test('verified clients: leads with a client certificate from the CA; refused without one', async () => {
    const agent = await ConsulAgent.start({
      tls: { ca: ca.ca.file, cert: ca.server.cert.file, key: ca.server.key.file, verifyClients: true },
    })
    servers.push(agent)
    const backend = (tls: StoreTls) =>
      new ConsulBackend({ address: agent.httpsAddress, prefix: 'tls/two', lockDelayMs: 0, tls })
    await leadsOver(() => backend(withClient()), TTL)
    await refused(backend(withCa()), 'STORE_UNAVAILABLE', TTL)
  })

  test('TLS options with an http:// address: one clear error', () => {
    assert.throws(
      () => new ConsulBackend({ address: 'http://127.0.0.1:8500', prefix: 'x', tls: withCa() }),
      (err: Error & { code?: string }) => err.code === 'INVALID_OPTIONS' && /https:\/\//.test(err.message),
    )
  })
})

describe('lease over TLS: ZooKeeper secureClientPort', () => {
  // The server's minimum session timeout is 2 × tickTime (200 ms): 2 s is granted as asked.
  const TTL = 2000
  const backend = (zk: ZooKeeperServer, path: string, tls?: StoreTls) =>
    new ZooKeeperBackend({
      connect: zk.secureConnectString,
      path,
      sessionTimeoutMs: TTL,
      connectTimeoutMs: 3000,
      ...(tls ? { tls } : {}),
    })

  test('server TLS: leads with the CA; refused without it (untrusted) and in plain TCP', async () => {
    const zk = await ZooKeeperServer.start({
      tls: { ca: ca.ca.file, cert: ca.server.cert.file, key: ca.server.key.file },
    })
    servers.push(zk)
    await leadsOver(() => backend(zk, '/tls/one', withCa()), TTL)
    // The system's roots do not know the test CA: the tunnel says why, in the one line start() fails with.
    await refused(
      backend(zk, '/tls/one', {}),
      'STORE_UNAVAILABLE',
      TTL,
      /TLS to 127\.0\.0\.1:\d+: .*certificate/i,
    )
    // Plain TCP to the TLS port: no session, a timeout (the election's or the backend's, whichever first).
    await refused(backend(zk, '/tls/one'), 'STORE_UNAVAILABLE', TTL, /no answer to connect|cannot reach/)
  })

  test('client certificates required: leads with one from the CA; refused without one, or with one from another CA', async () => {
    const zk = await ZooKeeperServer.start({
      tls: { ca: ca.ca.file, cert: ca.server.cert.file, key: ca.server.key.file, clientAuth: true },
    })
    servers.push(zk)
    await leadsOver(() => backend(zk, '/tls/two', withClient()), TTL)
    const refusedHandshake = /TLS to 127\.0\.0\.1:\d+: the server refused the handshake \(.*alert/
    await refused(backend(zk, '/tls/two', withCa()), 'STORE_UNAVAILABLE', TTL, refusedHandshake)
    const foreign: StoreTls = { ca: ca.ca.pem, cert: otherCa.client.cert.pem, key: otherCa.client.key.pem }
    const line = await refused(backend(zk, '/tls/two', foreign), 'STORE_UNAVAILABLE', TTL, refusedHandshake)
    console.log(`refused client certificate from another CA: ${line}`)
  })

  test('the forwarders close with the backend; a certificate without its key is refused when made', async () => {
    const zk = await ZooKeeperServer.start({
      tls: { ca: ca.ca.file, cert: ca.server.cert.file, key: ca.server.key.file },
    })
    servers.push(zk)
    const b = backend(zk, '/tls/three', withCa())
    const e = new LeaseElection({ id: 'c', backend: b, timing: { ttlMs: TTL } })
    await e.start()
    await waitUntil('the candidate to lead over TLS', () => e.isLeader(), 20_000)
    const locals = (b as unknown as { dialString: string }).dialString.split(',')
    assert.ok(
      locals.every((l) => l.startsWith('127.0.0.1:') && l !== zk.secureConnectString),
      locals.join(),
    )
    await e.stop()
    await b.close()
    for (const l of locals) {
      const port = Number(l.split(':')[1])
      await waitUntil(`the forwarder on ${l} to stop listening`, async () => !(await portOpen(port)), 10_000)
    }
    assert.throws(
      () => backend(zk, '/x', { ca: ca.ca.pem, cert: ca.client.cert.pem }),
      (err: Error & { code?: string }) => err.code === 'INVALID_OPTIONS' && /cert and key/.test(err.message),
    )
    // Each host gets a forwarder of its own: a host without a port is refused when the backend is made.
    assert.throws(
      () => new ZooKeeperBackend({ connect: '127.0.0.1:2281,zk2/apps', path: '/x', tls: withCa() }),
      (err: Error & { code?: string }) =>
        err.code === 'INVALID_OPTIONS' && /connect.*host:port.*"zk2"/.test(err.message),
    )
  })
})
