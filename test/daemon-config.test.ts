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
