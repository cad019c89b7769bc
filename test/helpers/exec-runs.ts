/** Reads the log that test/fixtures/exec-child.mjs writes: one interval of running per child. */
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'

export interface ChildRun {
  pid: number
  token: number
  leader: string
  start: number
  end: number
}

export function readRuns(file: string): ChildRun[] {
  if (!existsSync(file)) return []
  const byPid = new Map<number, ChildRun>()
  // Children append while this reads: a line not yet ended by a newline may be cut short (a token of
  // "1" for "12"), so only whole lines count.
  const lines = readFileSync(file, 'utf8').split('\n')
  lines.pop()
  for (const line of lines) {
    const [kind, pidText, ...rest] = line.split(' ')
    const pid = Number(pidText)
    if (kind === 'start') {
      const t = Number(rest[2])
      byPid.set(pid, { pid, token: Number(rest[0]), leader: rest[1] as string, start: t, end: t })
    } else if (kind === 'tick' || kind === 'stop') {
      const r = byPid.get(pid)
      if (r) r.end = Math.max(r.end, Number(rest[0]))
    }
  }
  return [...byPid.values()].sort((a, b) => a.start - b.start)
}

/** Pairs of children whose running intervals overlap (must be none). */
export function overlaps(runs: ChildRun[]): Array<[ChildRun, ChildRun]> {
  const out: Array<[ChildRun, ChildRun]> = []
  for (let i = 1; i < runs.length; i++) {
    const [a, b] = [runs[i - 1] as ChildRun, runs[i] as ChildRun]
    if (b.start <= a.end) out.push([a, b])
  }
  return out
}

/** Each child started after the one before it ended, on a larger token (children of lease leaders). */
export function assertInTurn(runs: ChildRun[]): void {
  for (let i = 1; i < runs.length; i++) {
    const [a, b] = [runs[i - 1] as ChildRun, runs[i] as ChildRun]
    assert.ok(b.start > a.end, `child ${b.pid} started at ${b.start} before ${a.pid} ended at ${a.end}`)
    assert.ok(b.token > a.token, `tokens grow: ${a.token} then ${b.token}`)
  }
}
