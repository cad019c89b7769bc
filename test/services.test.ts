/**
 * The store servers and their harnesses: scripts/install-services.sh has nothing left to do and says
 * where each binary is (the same places the tests look), a missing binary fails loudly, and a harness
 * stops its server by PID, restarts it on the same port, and leaves no process or directory behind.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { after, describe, test } from 'node:test'
import { promisify } from 'node:util'
import { ConsulAgent } from './helpers/consul.js'
import { portOpen, SERVICES, service } from './helpers/services.js'
import { fourLetter, ZooKeeperServer } from './helpers/zookeeper.js'

const run = promisify(execFile)
const cleanup: Array<() => Promise<void>> = []
after(async () => {
  for (const c of cleanup) await c().catch(() => {})
})

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return false
  } catch {
    return true
  }
}

describe('store servers', () => {
  test('install-services.sh is idempotent and names the binaries the tests use', async () => {
    const { stdout, stderr } = await run('bash', ['scripts/install-services.sh'], { timeout: 120_000 })
    assert.doesNotMatch(
      stderr,
      /installing|fetching/,
      `everything is installed already: nothing to do, but:\n${stderr}`,
    )
    const env = new Map(
      stdout
        .trim()
        .split('\n')
        .map((l) => l.replace(/^export /, '').split('=') as [string, string]),
    )
    for (const name of Object.keys(SERVICES) as Array<keyof typeof SERVICES>) {
      assert.equal(env.get(name), service(name), `${name} as the script prints it`)
    }
    const { stdout: version } = await run(service('BALLOT_CONSUL'), ['version'])
    assert.match(version, /^Consul v1\.8\.7/)
  })

  test('a missing binary is an error naming the install script, never a skip', async () => {
    const saved = process.env.BALLOT_CONSUL
    process.env.BALLOT_CONSUL = '/nonexistent/consul'
    try {
      await assert.rejects(
        ConsulAgent.start(),
        /BALLOT_CONSUL: \/nonexistent\/consul is missing: run `bash scripts\/install-services.sh`/,
      )
    } finally {
      if (saved === undefined) delete process.env.BALLOT_CONSUL
      else process.env.BALLOT_CONSUL = saved
    }
  })

  test('ZooKeeper: stopped by PID, restarted on the same port, nothing left behind', async () => {
    const zk = await ZooKeeperServer.start()
    cleanup.push(() => zk.close())
    const pid = zk.pid!
    assert.equal(await fourLetter(zk.port, 'ruok'), 'imok')
    await zk.stop('SIGTERM')
    assert.ok(gone(pid))
    assert.equal(await portOpen(zk.port), false)
    await zk.start()
    assert.match(await fourLetter(zk.port, 'srvr'), /Mode: standalone/)
    const pid2 = zk.pid!
    await zk.close()
    assert.ok(gone(pid2))
    assert.equal(existsSync(zk.dir), false)
  })

  test('Consul: stopped by PID, restarted on the same ports, nothing left behind', async () => {
    const consul = await ConsulAgent.start()
    cleanup.push(() => consul.close())
    const pid = consul.pid!
    const self = JSON.parse((await consul.http('GET', '/v1/agent/self')).text)
    assert.equal(self.Config.Version, '1.8.7')
    for (const port of Object.values(consul.ports)) assert.ok(port > 0)
    await consul.stop('SIGTERM')
    assert.ok(gone(pid))
    assert.equal(await portOpen(consul.ports.http), false)
    await consul.start()
    assert.equal((await consul.http('GET', '/v1/status/leader')).status, 200)
    const pid2 = consul.pid!
    await consul.close()
    assert.ok(gone(pid2))
    assert.equal(existsSync(consul.dir), false)
  })
})
