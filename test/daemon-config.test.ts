// The daemon's configuration in-process: precedence of flags, environment and file, and how a node finds
// itself in a shared --nodes list.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { loadDaemonConfig } from '../src/daemon/config.js'
import { findSelf, parseMembers } from '../src/daemon/elections.js'

const dir = mkdtempSync(join(tmpdir(), 'ballot-config-'))
after(() => rmSync(dir, { recursive: true, force: true }))

test('flags win over BALLOT_* variables, which win over the config file, which wins over defaults', () => {
  const file = join(dir, 'ballot.json')
  writeFileSync(
    file,
    JSON.stringify({ nodes: ['127.0.0.1:9001'], timing: 'fast', cluster: 'from-file', port: 9001 }),
  )
  const env = { BALLOT_CLUSTER: 'from-env', BALLOT_PORT: '9002' }
  const c = loadDaemonConfig({ config: file, port: '9003' }, env)
  assert.equal(c.port, 9003)
  assert.equal(c.cluster, 'from-env')
  assert.equal(c.timing, 'fast')
  assert.deepEqual(c.nodes, ['127.0.0.1:9001'])
  assert.equal(c.algo, 'raft')
  assert.equal(loadDaemonConfig({ nodes: 'a=127.0.0.1:1, b=127.0.0.1:2' }, {}).nodes.length, 2)
})

test('the same --nodes on every node: each finds itself by its port on a local address, or by --id', () => {
  const members = parseMembers(['127.0.0.1:9001', '127.0.0.1:9002', 'far=192.0.2.10:9001'])
  assert.deepEqual(findSelf(members, { port: 9002 }), { id: '127.0.0.1:9002', address: '127.0.0.1:9002' })
  assert.equal(findSelf(members, { port: 9001, id: 'far' }).address, '192.0.2.10:9001')
  assert.throws(
    () => findSelf(members, { port: 9999 }),
    /--id: no entry of --nodes is this host on port 9999/,
  )
  const twice = parseMembers(['a=127.0.0.1:9001', 'b=localhost:9001'])
  assert.throws(() => findSelf(twice, { port: 9001 }), /several entries/)
})

test('--key takes a comma-separated list (the first signs), from a flag, BALLOT_KEY or a file list', () => {
  const nodes = '127.0.0.1:9001'
  assert.deepEqual(loadDaemonConfig({ nodes, key: 'new-key-1,old-key-1' }, {}).key, [
    'new-key-1',
    'old-key-1',
  ])
  assert.deepEqual(loadDaemonConfig({ nodes }, { BALLOT_KEY: 'only-one-key' }).key, ['only-one-key'])
  const file = join(dir, 'keys.json')
  writeFileSync(file, JSON.stringify({ nodes: [nodes], key: ['new-key-1', 'old-key-1'] }))
  assert.deepEqual(loadDaemonConfig({ config: file }, {}).key, ['new-key-1', 'old-key-1'])
  // A short key anywhere in the list is refused, and no key is ever echoed.
  assert.throws(
    () => loadDaemonConfig({ nodes, key: 'new-key-1,short' }, {}),
    (err: Error) => err.message === '--key: must be at least 8 characters, got (not shown)',
  )
  assert.throws(
    () => loadDaemonConfig({ nodes }, { BALLOT_KEY: 'long-enough,' }),
    /BALLOT_KEY: must be at least 8/,
  )
})

test('--tls-cert, --tls-key and --tls-ca come together, and not with multicast or a store', () => {
  const nodes = '127.0.0.1:9001'
  const tls = { tlsCert: 'c.pem', tlsKey: 'k.pem', tlsCa: 'ca.pem' }
  assert.equal(loadDaemonConfig({ nodes, ...tls }, {}).tlsCa, 'ca.pem')
  assert.throws(
    () => loadDaemonConfig({ nodes, tlsCert: 'c.pem', tlsCa: 'ca.pem' }, {}),
    /--tls-key: required/,
  )
  assert.throws(
    () => loadDaemonConfig({ algo: 'bully', multicast: '239.255.41.17:9999', ...tls }, {}),
    /--tls-cert: multicast cannot use TLS/,
  )
  assert.throws(
    () => loadDaemonConfig({ store: 'etcd://127.0.0.1:2379', election: 'e', id: 'a', ...tls }, {}),
    /--tls-cert: applies to raft and bully over TCP only/,
  )
})
