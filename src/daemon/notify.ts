/**
 * `--notify-url` (the Go daemon's -url): POST a JSON event whenever this node gains or loses leadership
 * (a new token while leading is both: the old leadership deposed, the new one elected), with a timeout
 * per attempt and a few retries with backoff. Events go out in order, one at a time.
 */
import type { DaemonElection } from './elections.js'
import type { Logger } from './log.js'

export interface NotifyEvent {
  event: 'elected' | 'deposed'
  node: string
  leader: string | null
  /** The fencing token of the leadership gained or lost (a string: tokens are 64-bit). */
  token: string | null
  at: string
}

export interface NotifierOptions {
  url: string
  election: DaemonElection
  log: Logger
  timeoutMs?: number
  retries?: number
}

export class Notifier {
  private queue: Promise<void> = Promise.resolve()
  private leading = false
  private lastToken: bigint | undefined

  constructor(private readonly opts: NotifierOptions) {
    opts.election.on('change', () => {
      const leading = opts.election.isLeader()
      const token = leading ? opts.election.leader()?.token : undefined
      // A new token while leading is a new leadership: the old one is deposed, the new one elected.
      if (leading && this.leading && token !== this.lastToken) this.send('deposed', this.lastToken)
      else if (leading === this.leading) return
      this.leading = leading
      if (leading) this.lastToken = token
      this.send(leading ? 'elected' : 'deposed', leading ? token : this.lastToken)
    })
  }

  private send(event: NotifyEvent['event'], token: bigint | undefined): void {
    this.enqueue({
      event,
      node: this.opts.election.id,
      leader: this.opts.election.leader()?.id ?? null,
      token: token === undefined ? null : token.toString(),
      at: new Date().toISOString(),
    })
  }

  /** Resolves once every queued event was delivered or given up on. */
  drain(): Promise<void> {
    return this.queue
  }

  private enqueue(event: NotifyEvent): void {
    this.queue = this.queue.then(() => this.deliver(event))
  }

  private async deliver(event: NotifyEvent): Promise<void> {
    const retries = this.opts.retries ?? 3
    const timeoutMs = this.opts.timeoutMs ?? 2000
    for (let attempt = 0; attempt <= retries; attempt++) {
      try {
        const res = await fetch(this.opts.url, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(event),
          signal: AbortSignal.timeout(timeoutMs),
        })
        if (res.ok) return
        this.opts.log.warn(
          { status: res.status, attempt, event: event.event },
          'notify: webhook refused the event',
        )
      } catch (err) {
        this.opts.log.warn(
          { err: (err as Error).message, attempt, event: event.event },
          'notify: webhook failed',
        )
      }
      if (attempt < retries) await new Promise((r) => setTimeout(r, 200 * 2 ** attempt))
    }
    this.opts.log.error({ event }, 'notify: gave up on the event')
  }
}
