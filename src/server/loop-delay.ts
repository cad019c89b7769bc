/**
 * Event-loop stalls of this process, measured with perf_hooks.monitorEventLoopDelay: every timer,
 * socket and heartbeat of the election waits while the loop is blocked (a long garbage collection, a
 * flood of connections), and a stall longer than the leader's lease margin costs the leadership.
 *
 * The monitor samples every `resolutionMs` (a libuv timer in C++, no JavaScript runs) and records the
 * time between two samples: a stall is what exceeds the resolution, and every figure here is that. Every
 * `windowMs` the window's worst stall is recorded in a lifetime histogram (so p50 and p99 are of the
 * worst stall per window) and checked against `warnMs`. A window
 * whose worst stall reached `warnMs` is counted, and said in the log at most once per `logEveryMs`.
 *
 * Sampling can be switched off and on (`sample`): each sample wakes the process, and an idle node's CPU
 * is mostly its wake-ups, so the daemon samples only while a stall could cost something (while it
 * leads). The figures are of the sampled time only.
 */
import {
  createHistogram,
  type IntervalHistogram,
  monitorEventLoopDelay,
  type RecordableHistogram,
} from 'node:perf_hooks'

/** What the monitor reports: stall figures in milliseconds. */
export interface LoopDelaySnapshot {
  /** The median of each window's worst stall (ms): near 0 on an idle loop. */
  p50Ms: number
  /** The 99th percentile of each window's worst stall (ms). */
  p99Ms: number
  /** The worst stall seen since start (ms). */
  maxMs: number
  /** The worst stall of the last completed window and the current one (ms). */
  recentMaxMs: number
  /** Windows in which a stall reached `warnMs`. */
  stalls: number
  /** The stall that counts as close to the lease margin (ms). */
  warnMs: number
  /** How often the loop is sampled (ms). */
  resolutionMs: number
  /** Whether the loop is being sampled now. */
  sampling: boolean
}

export interface LoopDelayOptions {
  /** A stall this long or longer is counted and warned about (ms). */
  warnMs: number
  /** Called (at most once per `logEveryMs`) when a window's worst stall reached `warnMs`. */
  warn: (stallMs: number, stallsSoFar: number) => void
  /**
   * Sampling interval (ms). Default `warnMs`: every sample wakes the process (the main cost of an idle
   * node), and a stall S is still recorded as at least S - resolutionMs.
   */
  resolutionMs?: number
  /** How often the window is folded and checked (ms). Default 2000. */
  windowMs?: number
  /** Least time between two warnings (ms). Default 60 000. */
  logEveryMs?: number
  /** Whether to sample from the start. Default true. */
  sampling?: boolean
}

const NS_PER_MS = 1e6

export class LoopDelayMonitor {
  private readonly window: IntervalHistogram
  private readonly lifetime: RecordableHistogram = createHistogram()
  private timer: NodeJS.Timeout | undefined
  private readonly opts: Required<LoopDelayOptions>
  private lastWindowMaxNs = 0
  private stalls = 0
  private lastWarnAt = Number.NEGATIVE_INFINITY

  constructor(opts: LoopDelayOptions) {
    this.opts = { resolutionMs: opts.warnMs, windowMs: 2000, logEveryMs: 60_000, sampling: true, ...opts }
    this.window = monitorEventLoopDelay({ resolution: this.opts.resolutionMs })
    this.sample(this.opts.sampling)
  }

  /** Whether the loop is being sampled now. */
  get sampling(): boolean {
    return this.timer !== undefined
  }

  /**
   * Starts or stops sampling. Stopping folds the current window first, so nothing sampled is lost; while
   * stopped the process is never woken for this monitor.
   */
  sample(on: boolean): void {
    if (on === this.sampling) return
    if (on) {
      this.window.enable()
      this.timer = setInterval(() => this.fold(), this.opts.windowMs)
      this.timer.unref()
    } else {
      clearInterval(this.timer)
      this.timer = undefined
      this.fold()
      this.window.disable()
    }
  }

  private fold(): void {
    const maxNs = this.window.count > 0 ? this.window.max : 0
    if (this.window.count > 0) this.lifetime.record(Math.max(1, Math.round(maxNs)))
    this.window.reset()
    this.lastWindowMaxNs = maxNs
    const maxMs = maxNs / NS_PER_MS - this.opts.resolutionMs
    if (maxMs >= this.opts.warnMs) {
      this.stalls++
      const now = performance.now()
      if (now - this.lastWarnAt >= this.opts.logEveryMs) {
        this.lastWarnAt = now
        this.opts.warn(Math.round(maxMs), this.stalls)
      }
    }
  }

  /** The figures so far (the current window included). */
  snapshot(): LoopDelaySnapshot {
    const all = createHistogram()
    all.add(this.lifetime)
    if (this.window.count > 0) all.record(Math.max(1, Math.round(this.window.max)))
    // Each sample is the time between two ticks of the monitor's timer: the stall is what exceeds the
    // resolution.
    const ms = (ns: number) => Math.max(0, Math.round((ns / NS_PER_MS - this.opts.resolutionMs) * 10) / 10)
    const currentMax = this.window.count > 0 ? this.window.max : 0
    return {
      p50Ms: all.count > 0 ? ms(all.percentile(50)) : 0,
      p99Ms: all.count > 0 ? ms(all.percentile(99)) : 0,
      maxMs: all.count > 0 ? ms(all.max) : 0,
      recentMaxMs: ms(Math.max(this.lastWindowMaxNs, currentMax)),
      stalls: this.stalls,
      warnMs: this.opts.warnMs,
      resolutionMs: this.opts.resolutionMs,
      sampling: this.sampling,
    }
  }

  close(): void {
    clearInterval(this.timer)
    this.timer = undefined
    this.window.disable()
  }
}
