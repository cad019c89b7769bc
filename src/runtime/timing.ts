/** Timing options as drivers take them: a profile name, or some fields filled in from the defaults. */
import { InvalidOptionsError } from '../errors.js'

export function resolveTimingOption<T extends object>(
  timing: string | Partial<T> | undefined,
  profiles: Record<string, Readonly<T>>,
  validate: (full: T) => T,
): T {
  const defaults = profiles.default as Readonly<T>
  if (timing === undefined) return { ...defaults }
  if (typeof timing === 'string') {
    const profile = profiles[timing]
    if (!profile)
      throw new InvalidOptionsError(
        'timing',
        `unknown profile "${timing}" (use ${Object.keys(profiles).join(' or ')})`,
      )
    return { ...profile }
  }
  return validate({ ...defaults, ...timing })
}

/**
 * The TCP connect timeout for a heartbeat interval: five intervals, at least 250 ms. A dial slower than
 * that is of no use to an election (peers time out first) and is better started afresh.
 */
export function connectTimeoutFor(heartbeatIntervalMs: number): number {
  return Math.max(250, 5 * heartbeatIntervalMs)
}
