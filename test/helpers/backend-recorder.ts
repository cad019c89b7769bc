/**
 * Records what a LeaseBackend reports (BackendEvents) in order, for store backend tests.
 */
import type { BackendEvents, LineEntry } from '../../src/lease/backend.js'
import { waitUntil } from './services.js'

export type Recorded =
  | { kind: 'line'; entries: LineEntry[]; at: number }
  | { kind: 'suspended'; reason: Error; at: number }
  | { kind: 'resumed'; at: number }
  | { kind: 'sessionLost'; reason: Error; at: number }

export class Recorder implements BackendEvents {
  readonly log: Recorded[] = []

  constructor(readonly name: string) {}

  line(entries: LineEntry[]): void {
    this.log.push({ kind: 'line', entries, at: Date.now() })
  }
  suspended(reason: Error): void {
    this.log.push({ kind: 'suspended', reason, at: Date.now() })
  }
  resumed(): void {
    this.log.push({ kind: 'resumed', at: Date.now() })
  }
  sessionLost(reason: Error): void {
    this.log.push({ kind: 'sessionLost', reason, at: Date.now() })
  }

  /** Every line event so far, each as its ids in order. */
  lines(): string[][] {
    return this.log.flatMap((e) => (e.kind === 'line' ? [e.entries.map((x) => x.id)] : []))
  }

  /** The last line reported. */
  lastLine(): LineEntry[] {
    for (let i = this.log.length - 1; i >= 0; i--) {
      const e = this.log[i]!
      if (e.kind === 'line') return e.entries
    }
    return []
  }

  kinds(): string[] {
    return this.log.map((e) => e.kind)
  }

  /** Waits until the last line's ids are `ids`. */
  async waitLine(ids: string[], timeoutMs = 10_000): Promise<LineEntry[]> {
    return waitUntil(
      `${this.name} to report the line [${ids}] (lines: ${JSON.stringify(this.lines())})`,
      () => {
        const last = this.lastLine()
        return JSON.stringify(last.map((e) => e.id)) === JSON.stringify(ids) ? last : undefined
      },
      timeoutMs,
    )
  }

  /** Waits for an event of `kind` at index >= from; returns its index. */
  async waitKind(kind: Recorded['kind'], from = 0, timeoutMs = 15_000): Promise<number> {
    return waitUntil(
      `${this.name} to report ${kind} (events: ${this.kinds().join(', ')})`,
      () => {
        const i = this.log.findIndex((e, idx) => idx >= from && e.kind === kind)
        return i >= 0 ? i : undefined
      },
      timeoutMs,
    )
  }
}
