// The lease driver on a real ZooKeeper 3.8 reached over TLS (its secureClientPort, client certificates
// required) through ZooKeeperBackend's in-process forwarders: every scenario the stores share
// (./helpers/lease-scenarios.ts: leadership, hand-over, followers, a node deleted behind its back, stop,
// bad configuration, the server killed and restarted, frozen and thawed under a leader), so the
// forwarders carry the whole recipe, reconnects included.
import { leaseScenarios } from './helpers/lease-scenarios.js'
import { zookeeperTlsStore } from './helpers/lease-stores.js'

leaseScenarios(zookeeperTlsStore)
