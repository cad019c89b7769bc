/** Raft in the simulator: the pure RaftMachine, its timing profiles, and its message-level checks. */

import { InvalidOptionsError } from '../../errors.js'
import { RaftMachine } from '../../protocol/raft/machine.js'
import { type RaftHardState, type RaftMessage, raftMessageSchema } from '../../protocol/raft/messages.js'
import { type RaftTiming, TIMING_PROFILES, type TimingProfile } from '../../protocol/raft/options.js'
import type { AdapterOptions, CommonInvariant, ProtocolAdapter } from '../adapter.js'

/**
 * After the network heals, a leader is agreed within this bound: a stale leader steps down within one
 * minimum timeout (check-quorum) or at the first reply from a newer term; a follower campaigns within
 * one maximum timeout; each split vote costs at most one more maximum timeout (plus the quick pre-vote
 * retry, under two heartbeats). Eight rounds make a miss vanishingly rare with randomized timeouts.
 */
export function raftLivenessBoundMs(t: RaftTiming): number {
  return t.electionTimeoutMinMs + 8 * (t.electionTimeoutMaxMs + 2 * t.heartbeatIntervalMs)
}

/** What a `forge` fault sends a raft node, given the target's term. */
function forgedMessage(what: string, term: number): RaftMessage | undefined {
  switch (what) {
    case 'ack':
      // An ack of a heartbeat the target never sent (or sent in another incarnation).
      return { t: 'hb-resp', term, seq: 1_000_000_000, ack: true }
    case 'term-max':
      // The frame that stopped every election: a term whose successor no schema accepts.
      return { t: 'hb-resp', term: Number.MAX_SAFE_INTEGER, seq: 0, ack: false }
    default:
      return undefined
  }
}

const ELECTION_MESSAGES = new Set(['prevote', 'prevote-resp', 'vote', 'vote-resp', 'timeout-now'])

export interface RaftAdapterOptions extends AdapterOptions {
  /** Test-only: run without pre-vote, which the pre-vote check must then catch. Default true. */
  preVote?: boolean
  /** Test-only: new leaders do not wait out broken promises, which the lease check must then catch. */
  unsafeSkipPromiseWait?: boolean
}

export function raftAdapter(opts: RaftAdapterOptions = {}): ProtocolAdapter<RaftMessage, RaftHardState> {
  const profile = opts.timing ?? 'default'
  if (!(profile in TIMING_PROFILES)) {
    throw new InvalidOptionsError(
      '--timing',
      `must be one of ${Object.keys(TIMING_PROFILES).join(', ')}, got ${profile}`,
    )
  }
  const timing: RaftTiming = { ...TIMING_PROFILES[profile as TimingProfile] }
  const unsafe = opts.unsafe ?? false
  const invariants = new Set<CommonInvariant>([
    'one-leader-per-term',
    'fencing',
    'lease',
    'liveness',
    'stability',
    'observer',
    'pre-vote',
  ])
  return {
    name: unsafe ? 'raft (unsafe: vote checks skipped)' : 'raft',
    timing,
    livenessBoundMs: raftLivenessBoundMs(timing),
    invariants,
    create: (node) =>
      new RaftMachine({
        id: node.id,
        members: node.members.map((m) => ({ id: m.id, kind: m.kind })),
        timing,
        random: node.random,
        hardState: node.persisted,
        unsafeSkipVoteChecks: unsafe,
        unsafeSkipPromiseWait: opts.unsafeSkipPromiseWait ?? false,
        preVote: opts.preVote ?? true,
      }),
    checkMessage: (from, _to, msg) => {
      if (from.kind === 'observer' && (msg.t === 'vote-resp' || msg.t === 'prevote-resp') && msg.granted) {
        return {
          invariant: 'observer',
          message: `observer ${from.id} granted a ${msg.t === 'vote-resp' ? 'vote' : 'pre-vote'} in term ${msg.term}`,
        }
      }
      return undefined
    },
    forge: (what, target) => {
      const forged = forgedMessage(what, target.term)
      // The codec checks every message against the schema before a machine sees it.
      return forged === undefined
        ? undefined
        : raftMessageSchema.safeParse(forged).success
          ? forged
          : undefined
    },
    isElectionMessage: (msg) => ELECTION_MESSAGES.has(msg.t),
    describe: (msg) => {
      switch (msg.t) {
        case 'hello':
          return `hello t${msg.term} ${msg.kind}`
        case 'prevote':
        case 'vote':
          return `${msg.t} t${msg.term}${msg.t === 'vote' && msg.transfer ? ' transfer' : ''}`
        case 'timeout-now':
          return `timeout-now t${msg.term} wait=${msg.waitMs.toFixed(1)}`
        case 'prevote-resp':
        case 'vote-resp':
          return `${msg.t} t${msg.term} ${msg.granted ? 'granted' : 'refused'}${msg.t === 'vote-resp' && msg.promiseMs ? ` promise=${msg.promiseMs.toFixed(1)}` : ''}`
        case 'hb':
          return `hb t${msg.term} #${msg.seq}`
        case 'hb-resp':
          return `hb-resp t${msg.term} #${msg.seq}${msg.ack ? '' : ' refused'}`
        case 'handover':
          return `handover t${msg.term} to=${msg.to}`
      }
    },
  }
}
