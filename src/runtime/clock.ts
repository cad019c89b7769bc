/**
 * Time as the runtime sees it. Protocols get `now` from here and never read a clock themselves; tests
 * and embedders may pass their own clock instead of patching globals.
 */
import { performance } from 'node:perf_hooks'

/** The time source a driver runs on: monotonic time, wall time and timers. */
export interface Clock {
  /** Monotonic milliseconds (never jumps with wall-clock changes). */
  now(): number
  /** Wall-clock milliseconds since the Unix epoch, for timestamps shown to people. */
  wall(): number
  /** Calls `fn` once after `delayMs`; returns a handle for clearTimer. */
  setTimer(fn: () => void, delayMs: number): unknown
  /** Cancels a timer set with setTimer (a handle already fired or cleared is fine). */
  clearTimer(handle: unknown): void
}

/**
 * The real clock: performance.now(), Date.now() and setTimeout. A timer is rounded up to the next whole
 * millisecond and one more: Node times timers on the event loop's cached millisecond clock, which lags
 * performance.now() by up to a millisecond, so an exact delay often fired a little before the deadline
 * it was set for, found nothing due, and woke the process a second time a millisecond later (twice
 * per heartbeat, at idle).
 */
export const realClock: Clock = {
  now: () => performance.now(),
  wall: () => Date.now(),
  setTimer: (fn, delayMs) => setTimeout(fn, delayMs > 0 ? Math.ceil(delayMs) + 1 : 0),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
}
