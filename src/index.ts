/** ballot: leader election for Node.js. */
export * from './election.js'
export * from './errors.js'
export {
  DEFAULT_TIMING,
  FAST_TIMING,
  type RaftMember,
  type RaftTiming,
  TIMING_PROFILES,
} from './protocol/raft/options.js'
export { type Clock, realClock } from './runtime/clock.js'
export { RaftElection, type RaftElectionOptions, type RaftPeer } from './runtime/raft-election.js'
