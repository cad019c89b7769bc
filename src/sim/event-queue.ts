/**
 * A binary min-heap of events ordered by (time, sequence number). The sequence number breaks ties in
 * insertion order, which is what makes a run with many simultaneous events replay exactly.
 */
export interface Queued {
  time: number
  seq: number
}

export class EventQueue<E extends Queued> {
  private readonly heap: E[] = []
  private nextSeq = 0

  get size(): number {
    return this.heap.length
  }

  /** Stamps `event.seq` and queues it. */
  push(event: E): void {
    event.seq = this.nextSeq++
    const h = this.heap
    let i = h.length
    h.push(event)
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = h[parent] as E
      if (!before(event, p)) break
      h[i] = p
      i = parent
    }
    h[i] = event
  }

  pop(): E | undefined {
    const h = this.heap
    const top = h[0]
    const last = h.pop()
    if (top === undefined || last === undefined || h.length === 0) return top
    let i = 0
    const n = h.length
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      let c = l
      if (r < n && before(h[r] as E, h[l] as E)) c = r
      const child = h[c] as E
      if (!before(child, last)) break
      h[i] = child
      i = c
    }
    h[i] = last
    return top
  }

  peekTime(): number {
    return this.heap[0]?.time ?? Number.POSITIVE_INFINITY
  }
}

function before(a: Queued, b: Queued): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq)
}
