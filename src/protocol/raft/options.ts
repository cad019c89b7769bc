/**
 * Raft election timings and membership, with the defaults we ship and the rules between fields.
 * Every duration is in milliseconds.
 */
import { InvalidOptionsError } from '../../errors.js'

/** Raft's timings, in milliseconds (see the README's table); `timing` fills in what is left out. */
export interface RaftTiming {
  /** How often a leader sends heartbeats. Default 100 ms (LAN); 20 ms in the fast profile. */
  heartbeatIntervalMs: number
  /**
   * Election timeouts are drawn uniformly from [min, max). A follower that hears no leader for this long
   * campaigns; a leader that hears from no majority for `min` steps down (check-quorum). Defaults
   * 500–1000 ms (LAN); 100–200 ms in the fast profile.
   */
  electionTimeoutMinMs: number
  /** Upper bound of the randomized election timeout (see `electionTimeoutMinMs`). */
  electionTimeoutMaxMs: number
  /**
   * Bound on how much two nodes' clocks may disagree in rate, as a fraction (0.05 = 5 %). The leader's
   * lease is `electionTimeoutMin × (1 − 2 × maxClockDrift)`: it ends before any follower that acked the
   * leader can vote for someone else, as long as clocks drift less than this. Default 0.05.
   */
  maxClockDrift: number
}

/** Defaults for a LAN: a silent leader is replaced within 0.5–1 s. */
export const DEFAULT_TIMING: Readonly<RaftTiming> = Object.freeze({
  heartbeatIntervalMs: 100,
  electionTimeoutMinMs: 500,
  electionTimeoutMaxMs: 1000,
  maxClockDrift: 0.05,
})

/** For loopback and one rack: a silent leader is replaced within 100–200 ms. */
export const FAST_TIMING: Readonly<RaftTiming> = Object.freeze({
  heartbeatIntervalMs: 20,
  electionTimeoutMinMs: 100,
  electionTimeoutMaxMs: 200,
  maxClockDrift: 0.05,
})

/** The raft timing profiles by name. */
export const TIMING_PROFILES = { default: DEFAULT_TIMING, fast: FAST_TIMING } as const
/** A raft timing profile's name: 'default' (a LAN) or 'fast' (loopback, one rack). */
export type TimingProfile = keyof typeof TIMING_PROFILES

/** A member as the raft machine knows it (RaftPeer adds its address). */
export interface RaftMember {
  /** The member's id. */
  id: string
  /** Observers follow and know the leader but never vote or lead (goelect's NoVote). Default 'voter'. */
  kind?: 'voter' | 'observer'
  /** Among healthy voters, the highest priority ends up leading (through a hand-over). Default 0. */
  priority?: number
}

/** The lease a leader holds after a majority acknowledged a heartbeat it sent. */
export function leaseDurationMs(t: RaftTiming): number {
  return t.electionTimeoutMinMs * (1 - 2 * t.maxClockDrift)
}

/** Checks each field and the rules between them; throws InvalidOptionsError naming the field. */
export function validateTiming(t: RaftTiming, prefix = 'timing'): RaftTiming {
  const positive = (field: keyof RaftTiming) => {
    const v = t[field]
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new InvalidOptionsError(
        `${prefix}.${field}`,
        `must be a positive number of milliseconds, got ${v}`,
      )
    }
  }
  positive('heartbeatIntervalMs')
  positive('electionTimeoutMinMs')
  positive('electionTimeoutMaxMs')
  if (!(t.maxClockDrift >= 0 && t.maxClockDrift < 0.5)) {
    throw new InvalidOptionsError(`${prefix}.maxClockDrift`, `must be in [0, 0.5), got ${t.maxClockDrift}`)
  }
  if (t.electionTimeoutMaxMs <= t.electionTimeoutMinMs) {
    throw new InvalidOptionsError(
      `${prefix}.electionTimeoutMaxMs`,
      `must be greater than electionTimeoutMinMs (${t.electionTimeoutMinMs}), got ${t.electionTimeoutMaxMs}`,
    )
  }
  // A leader must be able to renew its lease before it runs out, more than once, or one lost heartbeat
  // costs leadership.
  if (t.heartbeatIntervalMs * 2 > leaseDurationMs(t)) {
    throw new InvalidOptionsError(
      `${prefix}.heartbeatIntervalMs`,
      `must be at most half the leader lease (electionTimeoutMinMs × (1 − 2 × maxClockDrift) = ${leaseDurationMs(t)} ms), got ${t.heartbeatIntervalMs}`,
    )
  }
  return t
}

export function validateMembers(self: string, members: RaftMember[]): RaftMember[] {
  const seen = new Set<string>()
  for (const m of members) {
    if (typeof m.id !== 'string' || m.id.length === 0 || m.id.length > 128) {
      throw new InvalidOptionsError(
        'members',
        `each member needs an id of 1 to 128 characters, got ${JSON.stringify(m.id)}`,
      )
    }
    if (seen.has(m.id)) throw new InvalidOptionsError('members', `member ${m.id} is listed twice`)
    seen.add(m.id)
    if (m.priority !== undefined && !Number.isFinite(m.priority)) {
      throw new InvalidOptionsError('members', `priority of ${m.id} must be a number`)
    }
  }
  if (!seen.has(self)) throw new InvalidOptionsError('id', `this node (${self}) is not in the member list`)
  if (!members.some((m) => (m.kind ?? 'voter') === 'voter')) {
    throw new InvalidOptionsError('members', 'at least one member must be a voter')
  }
  return members
}
