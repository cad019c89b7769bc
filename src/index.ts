/**
 * ballot: leader election for Node.js. Raft and bully peer-to-peer, and lease candidates on a
 * coordination store, behind one `Election` interface with fencing tokens.
 *
 * This entry point is the library: it needs only `zod` and `write-file-atomic` at run time (and, for a
 * store, that store's optional client package). The `ballot` command is a separate bundle.
 * @packageDocumentation
 */
import type { RaftTimingProfile } from './runtime/raft-election.js'
import { DEFAULT_RAFT_TIMING, FAST_RAFT_TIMING, RAFT_TIMING_PROFILES } from './runtime/raft-election.js'

export type { DropReason } from './codec/envelope.js'
export * from './election.js'
export * from './errors.js'
export type { BackendEvents, BackendSession, LeaseBackend, LineEntry } from './lease/backend.js'
export { LeaseElection, type LeaseElectionOptions } from './lease/candidate.js'
export { LeaseFollower, type LeaseFollowerOptions } from './lease/follower.js'
export {
  type FailureReason,
  type LeaseInput,
  LeaseMachine,
  type LeaseMachineOptions,
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
  type BullyTimingProfile,
  DEFAULT_BULLY_TIMING,
  FAST_BULLY_TIMING,
} from './protocol/bully/options.js'
export type { Random } from './protocol/machine.js'
export type { RaftMember, RaftTiming } from './protocol/raft/options.js'
export {
  BullyElection,
  type BullyElectionOptions,
  type BullyMulticastOptions,
  type BullyPeer,
  type BullyTimingOptions,
} from './runtime/bully-election.js'
export { type Clock, realClock } from './runtime/clock.js'
export type { BullyHardState, HardStateStore, RaftHardState } from './runtime/hard-state-store.js'
export {
  DEFAULT_RAFT_TIMING,
  FAST_RAFT_TIMING,
  RAFT_TIMING_PROFILES,
  RaftElection,
  type RaftElectionOptions,
  type RaftPeer,
  type RaftTimingOptions,
  type RaftTimingProfile,
} from './runtime/raft-election.js'
export type { TimingOverrides } from './runtime/timing.js'
export {
  type LocalBullyClusterOptions,
  type LocalCluster,
  type LocalRaftClusterOptions,
  localBullyCluster,
  localRaftCluster,
} from './testing/local-cluster.js'
export { DEFAULT_MULTICAST_GROUP } from './transport/multicast.js'
export type { TlsOptions } from './transport/tls.js'
export {
  CONNECTION_DROP_REASONS,
  type ConnectionDropReason,
  type TransportStatsSnapshot,
} from './transport/transport.js'

/** @deprecated Use {@link DEFAULT_RAFT_TIMING} (named like DEFAULT_BULLY_TIMING). */
export const DEFAULT_TIMING = DEFAULT_RAFT_TIMING
/** @deprecated Use {@link FAST_RAFT_TIMING} (named like FAST_BULLY_TIMING). */
export const FAST_TIMING = FAST_RAFT_TIMING
/** @deprecated Use {@link RAFT_TIMING_PROFILES} (named like BULLY_TIMING_PROFILES). */
export const TIMING_PROFILES = RAFT_TIMING_PROFILES
/** @deprecated Use {@link RaftTimingProfile} (named like BullyTimingProfile). */
export type TimingProfile = RaftTimingProfile
