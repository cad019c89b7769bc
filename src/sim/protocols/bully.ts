/**
 * Bully in the simulator: the pure BullyMachine with node nK ranked K (pid = K), its timing profiles,
 * and what it promises. Bully promises no lease and not one leader per epoch under partitions, so those
 * checks are off; the simulator instead measures how long two leaders coexist. It does promise that
 * once the network heals the highest live node leads and everyone names it, and that nothing is
 * elected when nothing fails.
 *
 * Its fencing promise is that no two leaderships share a token and each token is above every token its
 * claimer could know of. A partition legitimately lets a side that never heard of the other's larger
 * token claim below it, so the checker runs 'fencing' in its 'unique' form (no token led by two nodes,
 * each node's tokens grow); test/bully-sim.test.ts also audits the "could know of" half from outside.
 */
import { InvalidOptionsError } from '../../errors.js'
import { BullyMachine } from '../../protocol/bully/machine.js'
import type { BullyHardState, BullyMessage } from '../../protocol/bully/messages.js'
import {
  BULLY_TIMING_PROFILES,
  type BullyTiming,
  type BullyTimingProfile,
  peerExpiryMs,
} from '../../protocol/bully/options.js'
import type { AdapterOptions, CommonInvariant, ProtocolAdapter } from '../adapter.js'

/** The rank the simulator gives node `nK`. */
export const simPid = (id: string): number => Number(id.slice(1))

/**
 * After the heal, the highest live node leads within: one leader timeout to notice a dead or lost
 * leader (plus a heartbeat of phase), a claim step per node above, the start-up listening of a
 * restarted node, and, for a node that a crash left counted as live, the peer expiry; doubled for
 * message delays and a counter-claim; plus the hold of a node that resigned.
 */
export function bullyLivenessBoundMs(t: BullyTiming, nodes = 9): number {
  return (
    2 * (2 * t.leaderTimeoutMs + t.heartbeatIntervalMs + nodes * t.claimStepMs) +
    peerExpiryMs(t) +
    t.resignHoldMs
  )
}

export function bullyAdapter(opts: AdapterOptions = {}): ProtocolAdapter<BullyMessage, BullyHardState> {
  const profile = opts.timing ?? 'default'
  if (!(profile in BULLY_TIMING_PROFILES)) {
    throw new InvalidOptionsError(
      '--timing',
      `must be one of ${Object.keys(BULLY_TIMING_PROFILES).join(', ')}, got ${profile}`,
    )
  }
  if (opts.unsafe) throw new InvalidOptionsError('--unsafe-skip-vote-checks', 'applies to raft only')
  const timing: BullyTiming = { ...BULLY_TIMING_PROFILES[profile as BullyTimingProfile] }
  const invariants = new Set<CommonInvariant>(['liveness', 'stability', 'fencing'])
  return {
    name: 'bully',
    timing: {
      heartbeatIntervalMs: timing.heartbeatIntervalMs,
      electionTimeoutMinMs: timing.leaderTimeoutMs,
      electionTimeoutMaxMs: timing.leaderTimeoutMs + timing.heartbeatIntervalMs,
      maxClockDrift: 0.05,
    },
    livenessBoundMs: bullyLivenessBoundMs(timing),
    invariants,
    agreement: 'any',
    fencing: 'unique',
    expectedLeader: (live) =>
      live.reduce<string | undefined>(
        (best, id) => (best === undefined || simPid(id) > simPid(best) ? id : best),
        undefined,
      ),
    create: (node) => {
      if (node.members.some((m) => m.kind === 'observer'))
        throw new InvalidOptionsError('--observers', 'bully has no observers')
      return new BullyMachine({
        id: node.id,
        pid: simPid(node.id),
        address: node.id,
        timing,
        peers: node.members.map((m) => ({ id: m.id })),
        hardState: node.persisted,
      })
    },
    isElectionMessage: (msg) => msg.t === 'claim',
    describe: (msg) =>
      `${msg.t} pid=${msg.pid} e${msg.epoch}${(msg.t === 'claim' || msg.t === 'hb') && msg.max !== undefined ? ` max=${msg.max}` : ''}${msg.resigned ? ' resigned' : ''}${msg.t === 'bye' && msg.leaving ? ' leaving' : ''}`,
  }
}
