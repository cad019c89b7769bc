/**
 * Timing options as drivers take them: a profile name, or some fields filled in from the defaults.
 * @module
 */
import { InvalidOptionsError } from '../errors.js'
import { checkOptions, describeValue } from './check-options.js'

/** Some fields of a timing record; a field set to undefined takes its default. */
export type TimingOverrides<T> = { [K in keyof T]?: T[K] | undefined }

export function resolveTimingOption<T extends object>(
  timing: string | TimingOverrides<T> | undefined,
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
        `must be one of ${Object.keys(profiles)
          .map((p) => JSON.stringify(p))
          .join(', ')} or an object of timings, got ${describeValue(timing)}`,
      )
    return { ...profile }
  }
  checkOptions(
    timing,
    Object.fromEntries(Object.keys(defaults).map((k) => [k, true] as const)) as Record<string, true>,
    'timing',
  )
  // An explicit undefined means "the default" (exactOptionalPropertyTypes callers pass env lookups).
  const given = Object.fromEntries(Object.entries(timing).filter(([, v]) => v !== undefined))
  return validate({ ...defaults, ...given } as T)
}

/**
 * The TCP connect timeout for a heartbeat interval: five intervals, at least 250 ms. A dial slower than
 * that is of no use to an election (peers time out first) and is better started afresh.
 */
export function connectTimeoutFor(heartbeatIntervalMs: number): number {
  return Math.max(250, 5 * heartbeatIntervalMs)
}
