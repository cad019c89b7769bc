/**
 * CPU time and resident memory of processes, read from /proc (Linux): for the cost of a node at rest.
 */
import { readFileSync } from 'node:fs'

const TICKS_PER_S = 100 // USER_HZ on Linux

/** CPU time (user + system, ms) the process has used so far; undefined once it is gone. */
export function cpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const utime = Number(fields[11])
    const stime = Number(fields[12])
    return ((utime + stime) * 1000) / TICKS_PER_S
  } catch {
    return undefined
  }
}

/** Resident set size (MiB) of the process; undefined once it is gone. */
export function rssMiB(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1])
    return Number.isFinite(kb) ? Math.round((kb / 1024) * 10) / 10 : undefined
  } catch {
    return undefined
  }
}

/** CPU used by `pids` over a window: call `start()`, wait, then `percent()` (of one core, per process). */
export function cpuWindow(pids: number[]) {
  const t0 = performance.now()
  const before = pids.map((p) => cpuMs(p) ?? 0)
  return {
    /** Mean CPU per process over the window, as % of one core. */
    percent(): number {
      const elapsed = performance.now() - t0
      const used = pids.map((p, i) => (cpuMs(p) ?? 0) - (before[i] as number))
      const mean = used.reduce((a, b) => a + b, 0) / Math.max(1, used.length)
      return Math.round((mean / elapsed) * 1000) / 10
    },
  }
}
