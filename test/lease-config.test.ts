// Lease settings in-process: --store and its URL, durations, credentials apart from the URL, and the
// rule between the timings.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { loadDaemonConfig, parseDuration } from '../src/daemon/config.js'
import { resolveLeaseTiming } from '../src/lease/options.js'
import { parseStoreUrl, redactStoreUrl } from '../src/lease/store-url.js'

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
  assert.throws(() => parseStoreUrl('consul://h:1'), /unknown store "consul:\/\/"/)
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
