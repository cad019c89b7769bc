// The lease driver against a real etcd started here: the scenarios every store shares
// (./helpers/lease-scenarios.ts: leadership, hand-over by watch, followers, an entry deleted behind its
// back, its lease revoked behind its back, stop, bad configuration, the server killed and frozen under a
// leader), then etcd's own: a follower whose event loop is held up, and the same elections as
// `etcdctl elect`, both ways.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { describe, test } from 'node:test'
import { waitForAsync } from './helpers/daemon.js'
import { Tracked } from './helpers/etcd-server.js'
import { leaseScenarios } from './helpers/lease-scenarios.js'
import { etcdStore } from './helpers/lease-stores.js'
import { waitFor } from './helpers/raft-cluster.js'

const s = leaseScenarios(etcdStore)
const name = () => etcdStore.election()

describe('lease on etcd: its own', () => {
  test('a follower whose event loop is held up still reports every head, in order', async () => {
    const election = name()
    const keys: string[] = []
    for (let i = 0; i < 4; i++) {
      const grant = await s.server.etcd.etcdctl('lease', 'grant', '60')
      const id = /lease ([0-9a-f]+) granted/.exec(grant.stdout)?.[1] as string
      keys.push(`${election}/${id}`)
      assert.equal(
        (await s.server.etcd.etcdctl('put', `--lease=${id}`, `${election}/${id}`, `p${i}`)).code,
        0,
      )
    }
    const f = s.follower(election)
    await f.e.start()
    assert.equal(f.e.leader()?.id, 'p0')
    // Three heads go while this process is stuck: their events then arrive together.
    const script = keys
      .slice(0, 3)
      .map((k) => `etcdctl --endpoints ${s.server.etcd.endpoint} del ${k} >/dev/null`)
      .join(' && ')
    const done = new Tracked(spawn('sh', ['-c', script], { stdio: 'ignore' }))
    const until = Date.now() + 1500
    while (Date.now() < until) {} // hold the event loop: the deletions happen meanwhile
    await done.exit
    await waitFor('the last head', () => f.e.leader()?.id === 'p3')
    assert.deepEqual(
      f.leaders().map((l) => l.split('@')[0]),
      ['p0', 'p1', 'p2', 'p3'],
    )
    await f.e.stop()
  })
})

describe('lease on etcd: the same elections as etcdctl elect', () => {
  test('etcdctl holds: ballot follows and names it by its proposal; when it quits, ballot leads', async () => {
    const election = name()
    const holder = s.server.etcd.spawnEtcdctl('elect', election, 'proposal-x')
    await waitFor('etcdctl to be elected', () => holder.stdout.includes('proposal-x'))
    const a = s.candidate(election, 'a')
    const f = s.follower(election)
    await a.e.start()
    await f.e.start()
    await waitFor('ballot to name etcdctl', () => a.e.leader()?.id === 'proposal-x')
    assert.equal(a.e.isLeader(), false)
    assert.equal(a.e.state(), 'follower')
    assert.equal(f.e.leader()?.id, 'proposal-x')
    // etcdctl deletes its key on SIGINT: ballot is next in line, and sees it by watch.
    holder.kill('SIGINT')
    await waitFor('ballot to lead', () => a.e.isLeader(), 10_000)
    await waitFor('the follower to name ballot', () => f.e.leader()?.id === 'a')
    await a.e.stop()
    await f.e.stop()
  })

  test('ballot leads: etcdctl elect -l prints its id; etcdctl waiting behind it takes over on resign', async () => {
    const election = name()
    const a = s.candidate(election, 'ballot-a')
    await a.e.start()
    await waitFor('ballot leads', () => a.e.isLeader())
    const observer = s.server.etcd.spawnEtcdctl('elect', '-l', election)
    await waitFor('etcdctl elect -l to print', () => observer.stdout.split('\n').length > 2)
    assert.deepEqual(observer.stdout.split('\n').slice(0, 2), [a.e.view().self?.key, 'ballot-a'])
    await observer.stop('SIGINT')

    const waiter = s.server.etcd.spawnEtcdctl('elect', election, 'etcd-waiter')
    await waitForAsync('the etcdctl entry in the line', async () => {
      const r = await s.server.etcd.etcdctl('get', '--prefix', `${election}/`, '--keys-only')
      return r.stdout.split('\n').filter(Boolean).length === 2
    })
    assert.equal(waiter.stdout, '', 'etcdctl waits while ballot leads')
    await a.e.resign()
    await waitFor('etcdctl to be elected', () => waiter.stdout.includes('etcd-waiter'), 10_000)
    await waitFor('ballot to follow etcdctl', () => a.e.leader()?.id === 'etcd-waiter')
    assert.equal(a.e.isLeader(), false)
    await waiter.stop('SIGINT')
    await waitFor('ballot to lead again', () => a.e.isLeader(), 10_000)
    await a.e.stop()
  })
})
