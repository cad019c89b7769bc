// The lease driver on a real ZooKeeper 3.8 reached over TLS (its secureClientPort, client certificates
// required) through ZooKeeperBackend's in-process forwarders: every scenario the stores share
// (./helpers/lease-scenarios.ts: leadership, hand-over, followers, a node deleted behind its back, stop,
// bad configuration, the server killed and restarted, frozen and thawed under a leader), so the
// forwarders carry the whole recipe, reconnects included; then one latch shared with Curator's own
// LeaderLatch, Curator too over TLS.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { CuratorParticipant } from './helpers/curator.js'
import { leaseScenarios } from './helpers/lease-scenarios.js'
import { zookeeperTlsStore } from './helpers/lease-stores.js'
import { waitUntil } from './helpers/services.js'

const s = leaseScenarios(zookeeperTlsStore)

describe('lease on ZooKeeper over TLS: one latch with Curator LeaderLatch over TLS', () => {
  test('Curator leads and ballot names it; ballot leads once Curator closes its latch; a second Curator waits behind ballot and takes over on resign', async () => {
    const path = zookeeperTlsStore.election()
    const files = s.server.tlsFiles!
    const curator = (id: string) =>
      CuratorParticipant.start(s.server.zk.secureConnectString, path, id, 4000, files).then((c) => {
        s.own({ close: () => c.stop('SIGKILL') })
        return c
      })
    const first = await curator('curator-1')
    await first.waitLine(/^leader$/)
    const a = s.candidate(path, 'ballot-a')
    const f = s.follower(path)
    await a.e.start()
    await f.e.start()
    await waitUntil('ballot to name Curator', () => a.e.leader()?.id === 'curator-1')
    assert.equal(a.e.isLeader(), false)
    await waitUntil('the follower to name Curator', () => f.e.leader()?.id === 'curator-1')
    await waitUntil(
      'Curator to list ballot behind it',
      async () => (await first.participants()).join() === 'curator-1,ballot-a',
    )
    assert.equal(await first.closeStdin(), 0)
    await waitUntil('ballot to lead', () => a.e.isLeader(), 10_000)
    await waitUntil('the follower to name ballot', () => f.e.leader()?.id === 'ballot-a')

    const second = await curator('curator-2')
    await waitUntil(
      'the second Curator to list itself behind ballot',
      async () => (await second.participants()).join() === 'ballot-a,curator-2',
    )
    assert.equal(second.isLeader, false)
    await a.e.resign()
    await second.waitLine(/^leader$/)
    await waitUntil('ballot to name Curator again', () => a.e.leader()?.id === 'curator-2')
    assert.equal(a.e.isLeader(), false)
    assert.equal(await second.closeStdin(), 0)
    await waitUntil('ballot to lead again', () => a.e.isLeader(), 10_000)
    await a.e.stop()
    await f.e.stop()
  })
})
