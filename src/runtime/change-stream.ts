/**
 * The async iterator behind `Election.changes()`: it subscribes when iteration begins (the
 * `[Symbol.asyncIterator]()` call that `for await` makes), unsubscribes when iteration ends (break,
 * return, the signal, or the election stopping), and holds a bounded queue, so a caller that asks for
 * the stream and never reads it, or reads too slowly, cannot grow memory without end.
 *
 * On overflow the oldest queued changes are dropped and the next change yielded carries `skipped`, the
 * number dropped just before it. Dropping the oldest (rather than ending the stream with an error) is
 * what a watcher of leadership wants: the newest change says who leads now, and `previous` on it still
 * says who led before.
 */
import type { ChangesOptions, LeadershipChange } from '../election.js'

/** How many changes an iterator holds when its reader falls behind, unless told otherwise. */
export const DEFAULT_MAX_QUEUED_CHANGES = 1024

/** Adds a listener for every change; returns the function that removes it. */
export type Subscribe = (push: (change: LeadershipChange) => void) => () => void

export function changeStream(
  subscribe: Subscribe,
  options?: AbortSignal | ChangesOptions,
): AsyncIterable<LeadershipChange> {
  const opts: ChangesOptions = options instanceof AbortSignal ? { signal: options } : (options ?? {})
  const maxQueued = Math.max(1, Math.floor(opts.maxQueued ?? DEFAULT_MAX_QUEUED_CHANGES))
  return { [Symbol.asyncIterator]: () => new ChangeIterator(subscribe, opts.signal, maxQueued) }
}

type Result = IteratorResult<LeadershipChange, undefined>

class ChangeIterator implements AsyncIterator<LeadershipChange, undefined> {
  private readonly queue: LeadershipChange[] = []
  /** Changes dropped just before the head of the queue. */
  private droppedBeforeHead = 0
  private readonly waiting: Array<(result: Result) => void> = []
  private finished = false
  private readonly unsubscribe: () => void
  private readonly onAbort = () => {
    // An aborted reader wants nothing more, queued or not.
    this.queue.length = 0
    this.finish()
  }

  constructor(
    subscribe: Subscribe,
    private readonly signal: AbortSignal | undefined,
    private readonly maxQueued: number,
  ) {
    this.unsubscribe = subscribe((change) => this.push(change))
    if (signal?.aborted) this.onAbort()
    else signal?.addEventListener('abort', this.onAbort, { once: true })
  }

  next(): Promise<Result> {
    const change = this.take()
    if (change) return Promise.resolve({ done: false, value: change })
    if (this.finished) return Promise.resolve({ done: true, value: undefined })
    return new Promise((resolve) => this.waiting.push(resolve))
  }

  return(): Promise<Result> {
    this.queue.length = 0
    this.finish()
    return Promise.resolve({ done: true, value: undefined })
  }

  private push(change: LeadershipChange): void {
    if (this.finished) return
    const reader = this.waiting.shift()
    if (reader) {
      reader({ done: false, value: change })
    } else {
      this.queue.push(change)
      if (this.queue.length > this.maxQueued) {
        this.queue.shift()
        this.droppedBeforeHead++
      }
    }
    // A stopped election has nothing more to say: stop listening; what is queued is still delivered.
    if (change.role === 'stopped') this.finish()
  }

  private take(): LeadershipChange | undefined {
    const change = this.queue.shift()
    if (!change) return undefined
    const skipped = this.droppedBeforeHead
    this.droppedBeforeHead = 0
    return skipped > 0 ? { ...change, skipped } : change
  }

  private finish(): void {
    if (this.finished) return
    this.finished = true
    this.unsubscribe()
    this.signal?.removeEventListener('abort', this.onAbort)
    this.settleWaiting()
  }

  private settleWaiting(): void {
    // Readers wait only on an empty queue, so nothing queued is lost here.
    for (const reader of this.waiting.splice(0)) reader({ done: true, value: undefined })
  }
}
