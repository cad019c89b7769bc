/** ballot: leader election for Node.js. */
export * from './election.js'
export * from './errors.js'
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
