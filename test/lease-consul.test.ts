// The lease driver (LeaseElection, LeaseFollower) on a real Consul started here: the scenarios every
// store shares (./helpers/lease-scenarios.ts: leadership, hand-over by blocking query, followers, stop,
// bad configuration, a persistent server killed and frozen under a leader), then Consul's own: ACL
// tokens, and mutual exclusion with `consul lock`.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { LeaseElection } from '../src/lease/candidate.js'
import { ConsulBackend, type ConsulBackendOptions } from '../src/lease/stores/consul.js'
import { ConsulAgent } from './helpers/consul.js'
import { candidateOn } from './helpers/lease.js'
import { leaseScenarios } from './helpers/lease-scenarios.js'
import { CONSUL_TEST_LOCK_DELAY_MS, consulStore } from './helpers/lease-stores.js'
import { type OwnedProcess, removeTempDir, sleep, tempDir, waitUntil } from './helpers/services.js'

/** Consul's shortest session TTL. */
const TTL = consulStore.ttlMs
const s = leaseScenarios(consulStore)
const prefix = () => consulStore.election()
let scratch: string
before(() => {
  scratch = tempDir('consul-lease')
})
after(() => removeTempDir(scratch))

function backend(p: string, extra: Partial<ConsulBackendOptions> = {}, on: ConsulAgent = s.server.agent) {
  return new ConsulBackend({
    address: on.address,
    prefix: p,
    lockDelayMs: CONSUL_TEST_LOCK_DELAY_MS,
    retryMs: 200,
    ...extra,
  })
}

function candidate(p: string, id: string, extra: Partial<ConsulBackendOptions> = {}, on?: ConsulAgent) {
  const r = candidateOn(backend(p, extra, on), id, { timing: { ttlMs: TTL } })
  s.own(r.e)
  return r
}

function lockProcess(p: string, script: string): OwnedProcess {
  const proc = s.server.agent.lock(p, script)
  s.own({ close: () => proc.stop('SIGKILL') })
  return proc
}

describe('lease on Consul: ACL tokens', () => {
  test('ACLs: the token works; without it (or with a wrong one) start() is refused in one line', async () => {
    const secured = s.own(await ConsulAgent.start({ aclMasterToken: 'b2f7e0c4-1111-4222-8333-944455556666' }))
    const p = prefix()
    const good = candidate(p, 'good', { token: 'b2f7e0c4-1111-4222-8333-944455556666' }, secured)
    await good.e.start()
    await waitUntil('good leads', () => good.e.isLeader())
    for (const token of [undefined, 'b2f7e0c4-0000-4000-8000-000000000000']) {
      const e = s.own(
        new LeaseElection({
          id: 'bad',
          backend: backend(p, token ? { token } : {}, secured),
          timing: { ttlMs: TTL },
        }),
      )
      await assert.rejects(e.start(), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'STORE_REFUSED')
        assert.match(err.message, /HTTP 403/)
        assert.ok(!err.message.includes('\n') && !err.message.includes('b2f7e0c4'), err.message)
        return true
      })
      await e.stop()
    }
    await good.e.stop()
  })
})

describe('lease on Consul: consul lock and ballot exclude each other', () => {
  test('consul lock holds: ballot names its session and waits; when it exits, ballot leads', async () => {
    const p = prefix()
    const marker = join(scratch, 'held-by-consul-lock')
    const lock = lockProcess(p, `touch ${marker}; sleep 60`)
    await waitUntil('consul lock to run its command', () => existsSync(marker), 15_000)
    const a = candidate(p, 'ballot-a')
    const f = s.follower(p)
    await a.e.start()
    await f.e.start()
    const holder = await waitUntil('ballot to name the holder', () => a.e.leader())
    const sessions = JSON.parse((await s.server.agent.http('GET', '/v1/session/list')).text) as Array<{
      ID: string
      Name: string
    }>
    assert.equal(holder.id, sessions.find((s) => s.Name.startsWith('Consul lock'))?.ID)
    assert.equal(f.e.leader()?.id, holder.id)
    await sleep(1000)
    assert.equal(a.e.isLeader(), false, 'ballot must not lead while consul lock holds')
    await lock.stop('SIGINT', 10_000)
    assert.equal(lock.exitCode, 0, lock.tail())
    await waitUntil('ballot to lead', () => a.e.isLeader(), 15_000)
    assert.ok((a.e.leader()?.token ?? 0n) > holder.token)
    await waitUntil('the follower to name ballot', () => f.e.leader()?.id === 'ballot-a')
    await a.e.stop()
    await f.e.stop()
  })

  test('ballot leads: consul lock waits, and runs its command only once ballot has stopped leading', async () => {
    const p = prefix()
    const a = candidate(p, 'ballot-a')
    await a.e.start()
    await waitUntil('ballot leads', () => a.e.isLeader())
    const marker = join(scratch, 'ran-after-ballot')
    const lock = lockProcess(p, `touch ${marker}; sleep 1`)
    await sleep(2000)
    assert.equal(existsSync(marker), false, 'consul lock must not run its command while ballot leads')
    assert.ok(lock.running, lock.tail())
    let stoppedLeading = 0
    a.e.on('change', (c) => {
      if (c.role !== 'leader' && !stoppedLeading) stoppedLeading = Date.now()
    })
    await a.e.stop()
    await waitUntil('consul lock to run its command', () => existsSync(marker), 15_000)
    assert.ok(stoppedLeading > 0)
    await lock.waitExit()
    assert.equal(lock.exitCode, 0, lock.tail())
  })
})
