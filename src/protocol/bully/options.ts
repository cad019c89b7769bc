/**
 * Bully timings, with the defaults we ship and the rules between fields. Every duration is in ms.
 */
import { InvalidOptionsError } from '../../errors.js'

/** Bully's timings, in milliseconds (see the README's table); `timing` fills in what is left out. */
export interface BullyTiming {
  /** How often the leader announces itself. Default 100 ms; 20 ms in the fast profile. */
  heartbeatIntervalMs: number
  /**
   * A follower that hears nothing from its leader for this long holds an election. Default 350 ms;
   * 100 ms fast. (A starting node listens for two heartbeat intervals before it claims.)
   */
  leaderTimeoutMs: number
  /**
   * After a leader is lost, the highest live node claims at once and each lower one waits this much
   * longer per live node ranked above it, so exactly one claims when the network is quiet.
   * Default 30 ms; 10 ms fast.
   */
  claimStepMs: number
  /** How often a follower says it is alive, so others rank only live nodes. Default 1000 ms; 250 ms fast. */
  aliveIntervalMs: number
  /**
   * After resign(), how long a node leaves leadership to the next one before bully's rule (the highest
   * live node leads) lets it take over again. Default 3000 ms; 1000 ms fast.
   */
  resignHoldMs: number
}

/** Defaults for a LAN (multicast or TCP): a dead leader is replaced within about 0.4 s. */
export const DEFAULT_BULLY_TIMING: Readonly<BullyTiming> = Object.freeze({
  heartbeatIntervalMs: 100,
  leaderTimeoutMs: 350,
  claimStepMs: 30,
  aliveIntervalMs: 1000,
  resignHoldMs: 3000,
})

/** For loopback and one rack. */
export const FAST_BULLY_TIMING: Readonly<BullyTiming> = Object.freeze({
  heartbeatIntervalMs: 20,
  leaderTimeoutMs: 100,
  claimStepMs: 10,
  aliveIntervalMs: 250,
  resignHoldMs: 1000,
})

/** The bully timing profiles by name, as `timing: 'fast'` picks them. */
export const BULLY_TIMING_PROFILES: {
  /** For a LAN. */
  readonly default: Readonly<BullyTiming>
  /** For loopback and one rack. */
  readonly fast: Readonly<BullyTiming>
} = { default: DEFAULT_BULLY_TIMING, fast: FAST_BULLY_TIMING }
/** A bully timing profile's name: 'default' (a LAN) or 'fast' (loopback, one rack). */
export type BullyTimingProfile = keyof typeof BULLY_TIMING_PROFILES

/**
 * How long a starting node listens before it claims: two heartbeats, enough to hear a running leader
 * (which also answers a newcomer's hello at once) and the hellos of nodes starting alongside.
 */
export function startListenMs(t: BullyTiming): number {
  return Math.min(t.leaderTimeoutMs, 2 * t.heartbeatIntervalMs)
}

/** A peer counts as live for ranking while heard within this long. */
export function peerExpiryMs(t: BullyTiming): number {
  return 3 * t.aliveIntervalMs + t.leaderTimeoutMs
}

/** Checks each field and the rules between them; throws InvalidOptionsError naming the field. */
export function validateBullyTiming(t: BullyTiming, prefix = 'timing'): BullyTiming {
  for (const field of [
    'heartbeatIntervalMs',
    'leaderTimeoutMs',
    'claimStepMs',
    'aliveIntervalMs',
    'resignHoldMs',
  ] as const) {
    const v = t[field]
    if (!Number.isFinite(v) || v <= 0)
      throw new InvalidOptionsError(`${prefix}.${field}`, `must be a positive number of ms, got ${v}`)
  }
  if (t.leaderTimeoutMs < 2 * t.heartbeatIntervalMs)
    throw new InvalidOptionsError(
      `${prefix}.leaderTimeoutMs`,
      `must be at least twice heartbeatIntervalMs (${t.heartbeatIntervalMs}), got ${t.leaderTimeoutMs}`,
    )
  return t
}

/** Whether node a outranks node b: higher pid wins, then the larger id. */
export function outranks(a: { pid: number; id: string }, b: { pid: number; id: string }): boolean {
  return a.pid !== b.pid ? a.pid > b.pid : a.id > b.id
}
