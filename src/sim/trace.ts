/**
 * The run's last events, for the report of a violation: a ring buffer of compact records that are only
 * turned into text when someone reads them (most runs never are). With `--trace` every event is also
 * handed to a sink as it happens.
 */
export interface TraceRecord {
  /** Real (simulated) time, ms. */
  t: number
  /** The node's local clock at `t`, when the event is about one node. */
  local: number | undefined
  node: string
  what: string
  /** Built lazily: only formatted traces pay for describing messages. */
  detail: (() => string) | string
}

export function formatRecord(r: TraceRecord): string {
  const local = r.local === undefined ? '' : `(local ${r.local.toFixed(3)})`
  const detail = typeof r.detail === 'function' ? r.detail() : r.detail
  return `${r.t.toFixed(3).padStart(11)} ms  ${r.node.padEnd(4)} ${local.padEnd(24)} ${r.what.padEnd(12)} ${detail}`
}

export class TraceRing {
  private readonly buf: Array<TraceRecord | undefined>
  private next = 0
  private count = 0

  constructor(
    readonly capacity: number,
    private readonly sink?: (line: string) => void,
  ) {
    this.buf = new Array(capacity)
  }

  add(r: TraceRecord): void {
    this.buf[this.next] = r
    this.next = (this.next + 1) % this.capacity
    if (this.count < this.capacity) this.count++
    if (this.sink) this.sink(formatRecord(r))
  }

  /** The kept records, oldest first, as readable lines. */
  lines(): string[] {
    const out: string[] = []
    const start = (this.next - this.count + this.capacity) % this.capacity
    for (let i = 0; i < this.count; i++) {
      const r = this.buf[(start + i) % this.capacity]
      if (r) out.push(formatRecord(r))
    }
    return out
  }
}
