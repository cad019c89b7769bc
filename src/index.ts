/** ballot: leader election for Node.js. */
export * from './election.js'
export * from './errors.js'
export type { BackendEvents, BackendSession, LeaseBackend, LineEntry } from './lease/backend.js'
export { LeaseElection, type LeaseElectionOptions } from './lease/candidate.js'
export { LeaseFollower, type LeaseFollowerOptions } from './lease/follower.js'
export {
  type LeaseInput,
  LeaseMachine,
  type LeaseReady,
  type LeaseRequest,
  type LeaseView,
} from './lease/machine.js'
export { DEFAULT_LEASE_TTL_MS, type LeaseTiming, resolveLeaseTiming } from './lease/options.js'
export {
  type BackendFactoryOptions,
  CONSUL_TTL_RANGE_MS,
  createBackend,
  defaultStoreTtlMs,
  parseStoreUrl,
  redactStoreUrl,
  type StoreScheme,
  type StoreUrl,
  storeTtlProblem,
} from './lease/store-url.js'
export { CONSUL_LOCK_FLAGS, ConsulBackend, type ConsulBackendOptions } from './lease/stores/consul.js'
export { EtcdBackend, type EtcdBackendOptions } from './lease/stores/etcd.js'
export { ZooKeeperBackend, type ZooKeeperBackendOptions } from './lease/stores/zookeeper.js'
export {
  BULLY_TIMING_PROFILES,
  type BullyTiming,
  DEFAULT_BULLY_TIMING,
  FAST_BULLY_TIMING,
} from './protocol/bully/options.js'
export {
  DEFAULT_TIMING,
  FAST_TIMING,
  type RaftMember,
  type RaftTiming,
  TIMING_PROFILES,
} from './protocol/raft/options.js'
export { BullyElection, type BullyElectionOptions } from './runtime/bully-election.js'
export { type Clock, realClock } from './runtime/clock.js'
export type { HardStateStore } from './runtime/hard-state-store.js'
export { RaftElection, type RaftElectionOptions, type RaftPeer } from './runtime/raft-election.js'
export { DEFAULT_MULTICAST_GROUP } from './transport/multicast.js'
