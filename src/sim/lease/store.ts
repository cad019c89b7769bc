/**
 * The coordination store of the lease simulation: one linearizable copy of an election's state, the
 * shape every store recipe of src/lease/backend.ts has in common (etcd's election, ZooKeeper's latch):
 *
 *   - sessions with a TTL, counted on the store's own clock (which drifts against the candidates'); a
 *     keep-alive renews a session from when the store *receives* it;
 *   - an ordered line of entries, each created under a session at a new revision of the store (a
 *     compare-and-set: created only if absent); the lowest live entry leads, and its revision is the
 *     fencing token, so tokens grow across the whole store;
 *   - delete (leave: a compare-and-set on the entry's revision, so a leave that arrives late, after its
 *     sender joined again under the same key, deletes nothing), revoke (close), and expiry: a session whose TTL ran out is gone, with its entries,
 *     as soon as the store looks (its expiry loop runs every `expiryCheckMs`, as etcd's does every
 *     500 ms) or a request touches the store, whichever comes first;
 *   - watches: a candidate's connection registers one; every change of the line is sent to each
 *     watcher as a notification with the whole line and its revision (delayed, reordered and lost like
 *     any message: the candidate keeps the newest).
 *
 * Every request is applied atomically when it arrives, one at a time, so the store is linearizable by
 * construction; whether its reply arrives is up to the network (a request may be applied while its
 * reply is lost). It is a pure machine like the candidates: no clock, timer or I/O of its own.
 */
import type { Outgoing, Random } from '../../protocol/machine.js'
import type { ServiceInput, ServiceMachine } from '../adapter.js'
import { isRequest, type LeaseWire, type StoreReply, type StoreRequest, type WireEntry } from './wire.js'

export interface StoreModelOptions {
  /** How often the store's expiry loop runs, on its clock (ms). */
  expiryCheckMs: number
  /** Draws the phase of the expiry loop from the run's source. */
  random: Random
}

interface Session {
  id: number
  ttlMs: number
  /** On the store's clock. */
  expiresAt: number
  owner: string
}

interface Entry extends WireEntry {
  session: number
}

export class StoreModel implements ServiceMachine<LeaseWire> {
  private rev = 0
  private nextSession = 1
  private readonly sessions = new Map<number, Session>()
  /** The line, lowest revision (the leader) first; new entries have the highest revision, so go last. */
  private line: Entry[] = []
  /** Candidates whose current connection has a watch on the line. */
  private readonly watchers = new Set<string>()
  private readonly phase: number
  private messages: Outgoing<LeaseWire>[] = []
  private notes: string[] = []

  constructor(private readonly opts: StoreModelOptions) {
    this.phase = opts.random() * opts.expiryCheckMs
  }

  step(now: number, input: ServiceInput<LeaseWire>): void {
    this.expire(now)
    switch (input.kind) {
      case 'tick':
        return
      case 'peerConnected':
      case 'peerUnreachable':
        // A watch lives on one connection: a new one (a restarted process) must ask again.
        this.watchers.delete(input.peer)
        return
      case 'receive':
        if (isRequest(input.msg)) this.apply(now, input.from, input.msg)
        return
    }
  }

  ready(): { messages: Outgoing<LeaseWire>[]; deadline: number; notes: string[] } {
    const out = { messages: this.messages, deadline: this.deadline(), notes: this.notes }
    this.messages = []
    this.notes = []
    return out
  }

  private apply(now: number, from: string, req: StoreRequest): void {
    this.messages.push({ to: from, msg: this.answer(now, from, req) })
  }

  /** Applies one request and returns its reply. */
  private answer(now: number, from: string, req: StoreRequest): StoreReply {
    const seq = req.seq
    switch (req.t) {
      case 'open': {
        const id = this.nextSession++
        this.sessions.set(id, { id, ttlMs: req.ttlMs, expiresAt: now + req.ttlMs, owner: from })
        return { t: 'opened', seq, rev: this.rev, session: id, ttlMs: req.ttlMs }
      }
      case 'keepAlive': {
        const s = this.sessions.get(req.session)
        if (!s) return { t: 'sessionLost', seq, rev: this.rev }
        s.expiresAt = now + s.ttlMs
        return { t: 'done', seq, rev: this.rev }
      }
      case 'join': {
        if (!this.sessions.has(req.session)) return { t: 'sessionLost', seq, rev: this.rev }
        let entry = this.line.find((e) => e.key === req.key)
        if (!entry) {
          entry = { id: req.id, key: req.key, rev: ++this.rev, session: req.session }
          this.line.push(entry)
          this.notify()
        }
        return { t: 'joined', seq, rev: this.rev, entry: wire(entry), entries: this.entries() }
      }
      case 'leave': {
        const before = this.line.length
        this.line = this.line.filter((e) => e.key !== req.key || (req.rev !== undefined && e.rev !== req.rev))
        if (this.line.length !== before) {
          this.rev++
          this.notify()
        }
        return { t: 'done', seq, rev: this.rev }
      }
      case 'close': {
        const s = this.sessions.get(req.session)
        if (s) this.revoke(s)
        return { t: 'done', seq, rev: this.rev }
      }
      case 'watch':
        this.watchers.add(from)
        return { t: 'line', seq, rev: this.rev, entries: this.entries() }
    }
  }

  /** Every session whose TTL ran out by `now` is gone, with its entries. */
  private expire(now: number): void {
    for (const s of this.sessions.values()) {
      if (s.expiresAt > now) continue
      const keys = this.line.filter((e) => e.session === s.id).map((e) => `${e.key}@${e.rev}`)
      this.notes.push(
        `session s${s.id} of ${s.owner} expired (TTL ${s.ttlMs} ms ran out at ${s.expiresAt.toFixed(3)} on the store's clock)${keys.length > 0 ? `, deleting ${keys.join(' ')}` : ''}`,
      )
      this.revoke(s)
    }
  }

  private revoke(s: Session): void {
    this.sessions.delete(s.id)
    const before = this.line.length
    this.line = this.line.filter((e) => e.session !== s.id)
    if (this.line.length !== before) {
      this.rev++
      this.notify()
    }
  }

  private notify(): void {
    if (this.watchers.size === 0) return
    const msg: StoreReply = { t: 'line', rev: this.rev, entries: this.entries() }
    for (const to of this.watchers) this.messages.push({ to, msg })
  }

  private entries(): WireEntry[] {
    return this.line.map(wire)
  }

  /** The expiry loop's next run after the earliest expiry (store clock). */
  private deadline(): number {
    let first = Number.POSITIVE_INFINITY
    for (const s of this.sessions.values()) if (s.expiresAt < first) first = s.expiresAt
    if (first === Number.POSITIVE_INFINITY) return first
    const every = this.opts.expiryCheckMs
    return this.phase + Math.ceil((first - this.phase) / every) * every
  }
}

function wire(e: Entry): WireEntry {
  return { id: e.id, key: e.key, rev: e.rev }
}
