/**
 * A clock that moves only when told: the fuzzer freezes time while it feeds a frame, so that any change
 * in a machine's view comes from the frame and nothing else.
 */
import type { Clock } from '../../src/runtime/clock.js'

interface Timer {
  at: number
  fn: () => void
  live: boolean
}

/** A manual clock: `advance()` moves time and fires the timers that fall due, in order. */
export class ManualClock implements Clock {
  private t = 0
  private readonly timers: Timer[] = []

  constructor(private readonly wallBase = Date.UTC(2026, 0, 1)) {}

  now(): number {
    return this.t
  }

  wall(): number {
    return this.wallBase + this.t
  }

  setTimer(fn: () => void, delayMs: number): unknown {
    const timer: Timer = { at: this.t + Math.max(0, delayMs), fn, live: true }
    this.timers.push(timer)
    return timer
  }

  clearTimer(handle: unknown): void {
    if (handle) (handle as Timer).live = false
  }

  /** Moves time forward by `ms`, firing every timer due on the way (and any they set that fall due). */
  advance(ms: number, between?: () => void): void {
    const end = this.t + ms
    for (;;) {
      let next: Timer | undefined
      for (const timer of this.timers) if (timer.live && (!next || timer.at < next.at)) next = timer
      if (!next || next.at > end) break
      this.t = Math.max(this.t, next.at)
      next.live = false
      next.fn()
      between?.()
    }
    this.t = end
    // Forget fired and cleared timers so the list stays small over a long run.
    for (let i = this.timers.length - 1; i >= 0; i--) if (!this.timers[i]?.live) this.timers.splice(i, 1)
  }
}
