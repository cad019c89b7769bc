// Lease settings in-process: --store and its URL, durations, credentials apart from the URL, and the
// rule between the timings.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { loadDaemonConfig, parseDuration } from '../src/daemon/config.js'
import { resolveLeaseTiming } from '../src/lease/options.js'
import { createBackend, defaultStoreTtlMs, parseStoreUrl, redactStoreUrl } from '../src/lease/store-url.js'

test('--store implies the lease driver; --ttl takes 500ms, 2s, 1m; BALLOT_* variables work too', () => {
  const c = loadDaemonConfig({ store: 'etcd://127.0.0.1:2379', election: 'e', id: 'a', ttl: '500ms' }, {})
  assert.equal(c.algo, 'lease')
  assert.equal(c.ttl, 500)
  assert.equal(loadDaemonConfig({ store: 'etcd://h:1', election: 'e', id: 'a', ttl: '2s' }, {}).ttl, 2000)
  const env = {
    BALLOT_STORE: 'etcd://h:1',
    BALLOT_ELECTION: 'e',
    BALLOT_ID: 'a',
    BALLOT_TTL: '1m',
    BALLOT_STORE_PASSWORD: 'pw',
  }
  const fromEnv = loadDaemonConfig({}, env)
  assert.equal(fromEnv.ttl, 60_000)
  assert.equal(fromEnv.storePassword, 'pw')
  for (const bad of ['5', '5x', '-1s', 'soon', '0s'])
    assert.throws(
      () => loadDaemonConfig({ store: 'etcd://h:1', election: 'e', id: 'a', ttl: bad }, {}),
      /^InvalidOptionsError: --ttl: expected a duration such as 500ms, 2s or 1m$|--ttl: expected a duration/,
      bad,
    )
  assert.ok(Number.isNaN(parseDuration('12')))
  assert.throws(
    () => loadDaemonConfig({ algo: 'raft', store: 'etcd://h:1', nodes: 'h:1' }, {}),
    /--store: applies to --algo lease only/,
  )
  assert.throws(() => loadDaemonConfig({ algo: 'lease' }, {}), /--store: required with --algo lease/)
})

test('store URLs: several hosts, credentials, one-line errors, passwords redacted', () => {
  assert.deepEqual(parseStoreUrl('etcd://u:p%40ss@10.0.0.1:2379,10.0.0.2:2379'), {
    scheme: 'etcd',
    hosts: ['10.0.0.1:2379', '10.0.0.2:2379'],
    username: 'u',
    password: 'p@ss',
  })
  assert.deepEqual(parseStoreUrl('etcd://[::1]:2379').hosts, ['[::1]:2379'])
  assert.throws(() => parseStoreUrl('etcd://h'), /--store: expected host:port in etcd:\/\/\.\.\., got "h"/)
  assert.throws(() => parseStoreUrl('mysql://h:1'), /unknown store "mysql:\/\/"/)
  assert.throws(
    () => parseStoreUrl('u:secret@h:1'),
    (err: Error) => !err.message.includes('secret'),
  )
  assert.equal(redactStoreUrl('etcd://u:secret@h:1'), 'etcd://u:***@h:1')
})

test('timings: everything follows from the TTL, and the rule between them is checked', () => {
  const t = resolveLeaseTiming({ ttlMs: 5000 })
  assert.deepEqual(t, {
    ttlMs: 5000,
    maxClockDrift: 0.05,
    safetyMarginMs: 250,
    backoffMinMs: 50,
    backoffMaxMs: 1666.6666666666667,
    requestTimeoutMs: 1666.6666666666667,
  })
  assert.equal(resolveLeaseTiming({ ttlMs: 1000 }).safetyMarginMs, 100)
  assert.throws(() => resolveLeaseTiming({ ttlMs: 1000, safetyMarginMs: 700 }), /ttl: 1000 ms leaves no room/)
  assert.throws(() => resolveLeaseTiming({ ttlMs: 0 }), /ttl: must be > 0/)
})

test('zookeeper:// and consul:// URLs: hosts, digest credentials, a chroot, https; tokens never in the URL', () => {
  assert.deepEqual(parseStoreUrl('zookeeper://ops:pw@z1:2181,z2:2181/apps/x'), {
    scheme: 'zookeeper',
    hosts: ['z1:2181', 'z2:2181'],
    username: 'ops',
    password: 'pw',
    chroot: '/apps/x',
  })
  assert.deepEqual(parseStoreUrl('consul://127.0.0.1:8500'), {
    scheme: 'consul',
    hosts: ['127.0.0.1:8500'],
    username: undefined,
    password: undefined,
  })
  assert.equal(parseStoreUrl('consul+https://c:8501').tls, true)
  assert.deepEqual(parseStoreUrl('zookeeper+https://z1:2281,z2:2281/apps'), {
    scheme: 'zookeeper',
    hosts: ['z1:2281', 'z2:2281'],
    username: undefined,
    password: undefined,
    tls: true,
    chroot: '/apps',
  })
  // The TLS settings reach the backend only with a TLS URL.
  assert.throws(
    () =>
      createBackend(parseStoreUrl('zookeeper://z1:2181'), {
        election: '/x',
        tls: { ca: '-----BEGIN CERTIFICATE-----' },
      }),
    /TLS settings need a TLS store URL \(zookeeper\+https:\/\/host:port\)/,
  )
  assert.equal(
    createBackend(parseStoreUrl('zookeeper+https://z1:2281/apps'), { election: '/x' }).target,
    'z1:2281/apps',
  )
  assert.throws(
    () => parseStoreUrl('consul://secret@c:8500'),
    (err: Error) => {
      assert.match(err.message, /--store: a Consul ACL token goes in --store-token/)
      return !err.message.includes('secret')
    },
  )
  assert.throws(() => parseStoreUrl('consul://a:1,b:2'), /give one Consul agent/)
  assert.throws(() => parseStoreUrl('etcd://h:1/x'), /expected host:port in etcd/)
  assert.equal(redactStoreUrl('zookeeper://ops:secret@z:2181/apps'), 'zookeeper://ops:***@z:2181/apps')
})

test('redis:// rediss:// redis+sentinel:// URLs: one server or sentinels, a database, a password alone, TLS', () => {
  assert.deepEqual(parseStoreUrl('redis://127.0.0.1:6379'), {
    scheme: 'redis',
    hosts: ['127.0.0.1:6379'],
    username: undefined,
    password: undefined,
  })
  assert.deepEqual(parseStoreUrl('rediss://app:p%40ss@r:6380/2'), {
    scheme: 'redis',
    hosts: ['r:6380'],
    username: 'app',
    password: 'p@ss',
    tls: true,
    db: 2,
  })
  assert.deepEqual(parseStoreUrl('redis://:pw@r:6379'), {
    scheme: 'redis',
    hosts: ['r:6379'],
    username: undefined,
    password: 'pw',
  })
  assert.deepEqual(parseStoreUrl('redis+sentinel://s1:26379,s2:26379/mymaster/1'), {
    scheme: 'redis',
    hosts: ['s1:26379', 's2:26379'],
    username: undefined,
    password: undefined,
    db: 1,
    sentinelMaster: 'mymaster',
  })
  assert.equal(parseStoreUrl('rediss+sentinel://s1:26379/m').tls, true)
  assert.throws(() => parseStoreUrl('redis://a:1,b:2'), /--store: give one Redis server/)
  assert.throws(
    () => parseStoreUrl('redis://a:1/x'),
    /--store: expected a database number after the host, got "\/x"/,
  )
  assert.throws(() => parseStoreUrl('redis+sentinel://s1:26379'), /--store: name the master/)
  assert.equal(redactStoreUrl('redis://:secret@r:6379/0'), 'redis://:***@r:6379/0')
  assert.equal(defaultStoreTtlMs('redis'), 5000)
})

test('per-store settings: Consul TTLs 10s to 24h (default 10s), lock-delay and token for Consul only, ZooKeeper paths', () => {
  const base = { election: 'svc', id: 'a' }
  const consul = loadDaemonConfig({ ...base, store: 'consul://c:8500', lockDelay: '0s', storeToken: 't' }, {})
  assert.equal(consul.lockDelay, 0)
  assert.equal(consul.ttl, undefined)
  assert.equal(defaultStoreTtlMs('consul'), 10_000)
  assert.equal(defaultStoreTtlMs('zookeeper'), 5000)
  assert.equal(loadDaemonConfig({ ...base, store: 'consul://c:8500', ttl: '15s' }, {}).ttl, 15_000)
  assert.equal(
    loadDaemonConfig({ ...base, store: 'consul://c:8500' }, { BALLOT_STORE_TOKEN: 't' }).storeToken,
    't',
  )
  for (const [flags, message] of [
    [
      { store: 'consul://c:8500', ttl: '9s' },
      /--ttl: Consul grants session TTLs from 10s to 24h, not 9000 ms$/,
    ],
    [{ store: 'consul://c:8500', ttl: '25h' }, /--ttl: Consul grants/],
    [{ store: 'etcd://e:2379', lockDelay: '1s' }, /--lock-delay: applies to consul:\/\/ stores only$/],
    [
      { store: 'zookeeper://z:2181', election: '/svc', storeToken: 't' },
      /--store-token: applies to consul:\/\/ stores only$/,
    ],
    [{ store: 'consul://c:8500', storePassword: 'p' }, /--store-password: Consul takes an ACL token/],
    [{ store: 'zookeeper://z:2181', election: 'svc' }, /--election: on ZooKeeper, the latch path/],
    [{ algo: 'raft', nodes: 'h:1', lockDelay: '1s' }, /--lock-delay: applies to --algo lease only/],
  ] as const)
    assert.throws(() => loadDaemonConfig({ ...base, ...flags }, {}), message, JSON.stringify(flags))
  assert.throws(
    () => loadDaemonConfig({ ...base, store: 'consul://c:8500', ttl: '5s' }, {}),
    (err: Error & { code?: string }) => err.code === 'INVALID_OPTIONS',
  )
  assert.equal(
    loadDaemonConfig({ ...base, store: 'zookeeper://z:2181', election: '/svc/leader' }, {}).election,
    '/svc/leader',
  )
})
