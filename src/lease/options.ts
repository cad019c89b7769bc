/**
 * The lease driver's timings, with their defaults and the rules between them. All times in ms.
 *
 * The rule the machine applies: a session is proven alive only by a request the store confirmed, and
 * counts from when that request was *sent* (the store renewed it at or after that instant, so it cannot
 * expire at the store before sentAt + ttl):
 *
 *     validUntil = sentAt + ttl × (1 − maxClockDrift) − safetyMargin
 *
 * With the default TTL of 5 s: keep-alive every 1667 ms, leadership valid for 4500 ms after the send of
 * the last confirmed keep-alive (4750 − 250), so two keep-alives may fail before leadership lapses.
 */
import { InvalidOptionsError } from '../errors.js'

/** The lease driver's timings, in milliseconds; all but `ttlMs` follow from the TTL by default. */
export interface LeaseTiming {
  /** Session TTL asked of the store (ms). The store may grant more (etcd: whole seconds); the granted one is used. */
  ttlMs: number
  /** Bound on how much faster the store's clock may run than ours (0.05 = 5 %); shortens validity. */
  maxClockDrift: number
  /**
   * Subtracted from validity to cover what drift does not: the event loop firing late, and the time
   * between an `isLeader()` check and the action it guards. Default 250 ms, or a tenth of the TTL if less.
   */
  safetyMarginMs: number
  /** First retry delay after a failed request (ms); doubles per failure, with jitter. Default 50. */
  backoffMinMs: number
  /** Largest retry delay (ms). Default 2000, or a third of the TTL if less (a keep-alive period). */
  backoffMaxMs: number
  /** A request not answered by then counts as failed (store unavailable). Default ttl/3, from 500 to 5000 ms. */
  requestTimeoutMs: number
}

/** The session TTL asked of the store unless `timing.ttlMs` says otherwise: 5 s. */
export const DEFAULT_LEASE_TTL_MS = 5000

/** Fills in every field from `ttlMs` (default 5 s) and checks the rules between them. */
export function resolveLeaseTiming(partial: Partial<LeaseTiming> = {}): LeaseTiming {
  const ttlMs = partial.ttlMs ?? DEFAULT_LEASE_TTL_MS
  if (!Number.isFinite(ttlMs) || ttlMs <= 0)
    throw new InvalidOptionsError('ttl', `must be > 0 ms, got ${ttlMs}`)
  const timing: LeaseTiming = {
    ttlMs,
    maxClockDrift: partial.maxClockDrift ?? 0.05,
    safetyMarginMs: partial.safetyMarginMs ?? Math.min(250, ttlMs / 10),
    backoffMinMs: partial.backoffMinMs ?? 50,
    backoffMaxMs: partial.backoffMaxMs ?? Math.min(2000, ttlMs / 3),
    requestTimeoutMs: partial.requestTimeoutMs ?? Math.max(500, Math.min(5000, ttlMs / 3)),
  }
  return validateLeaseTiming(timing)
}

export function validateLeaseTiming(t: LeaseTiming): LeaseTiming {
  if (!(t.maxClockDrift >= 0 && t.maxClockDrift < 0.5))
    throw new InvalidOptionsError('maxClockDrift', `must be from 0 to 0.5, got ${t.maxClockDrift}`)
  if (!(t.safetyMarginMs >= 0))
    throw new InvalidOptionsError('safetyMarginMs', `must be >= 0, got ${t.safetyMarginMs}`)
  if (!(t.backoffMinMs > 0 && t.backoffMaxMs >= t.backoffMinMs))
    throw new InvalidOptionsError('backoffMaxMs', 'must be >= backoffMinMs > 0')
  if (!(t.requestTimeoutMs > 0))
    throw new InvalidOptionsError('requestTimeoutMs', `must be > 0, got ${t.requestTimeoutMs}`)
  if (validityMs(t, t.ttlMs) <= keepAliveIntervalMs(t.ttlMs))
    throw new InvalidOptionsError(
      'ttl',
      `${t.ttlMs} ms leaves no room: ttl × (1 − maxClockDrift) − safetyMarginMs must exceed the keep-alive period ttl/3`,
    )
  return t
}

/** How long a session counts as alive after the send of a confirmed request, for a granted TTL. */
export function validityMs(t: Pick<LeaseTiming, 'maxClockDrift' | 'safetyMarginMs'>, grantedTtlMs: number) {
  return grantedTtlMs * (1 - t.maxClockDrift) - t.safetyMarginMs
}

/** Keep-alive period for a granted TTL: a third of it, so idle load is one request per TTL/3. */
export function keepAliveIntervalMs(grantedTtlMs: number): number {
  return grantedTtlMs / 3
}
