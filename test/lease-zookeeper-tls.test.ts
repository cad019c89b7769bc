// The lease driver on a real ZooKeeper 3.8 reached over TLS (its secureClientPort, client certificates
// required) through ZooKeeperBackend's in-process forwarders: every scenario the stores share
// (./helpers/lease-scenarios.ts: leadership, hand-over, followers, a node deleted behind its back, stop,
// bad configuration, the server killed and restarted, frozen and thawed under a leader), so the
// forwarders carry the whole recipe, reconnects included; then one latch shared with Curator's own
// LeaderLatch, Curator too over TLS.
import { describe, test } from 'node:test'
import { latchSharedWithCurator } from './helpers/curator-latch.js'
import { leaseScenarios } from './helpers/lease-scenarios.js'
import { zookeeperTlsStore } from './helpers/lease-stores.js'

const s = leaseScenarios(zookeeperTlsStore)

describe('lease on ZooKeeper over TLS: one latch with Curator LeaderLatch over TLS', () => {
  test('Curator leads and ballot names it; ballot leads once Curator closes its latch; a second Curator waits behind ballot and takes over on resign', () =>
    latchSharedWithCurator(s, {
      path: zookeeperTlsStore.election(),
      connect: s.server.zk.secureConnectString,
      tls: s.server.tlsFiles!,
    }))
})
