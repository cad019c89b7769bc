/**
 * The dashboard's timeline: the leaderships one observer has seen, in order, each with how it followed
 * the one before (an election after the old leader fell silent, or a hand-over from a live one) and how
 * long there was no leader in between. Bounded: the oldest records go first.
 */
import type { LeadershipRecord, Succession } from './types.js'

/** How the leadership in force ended, when the observer can tell better than "when it saw the change". */
export interface LeadershipEnd {
  /** 'hand-over': the old leader was alive and gave way; 'election': it fell silent or died. */
  how: Exclude<Succession, 'first'>
  /** When it really ended (ms), if earlier than the change was observed: last heard from, killed at. */
  at?: number
}

/** The leaderships one observer has seen; see the module comment. */
export class LeadershipHistory {
  private readonly records: LeadershipRecord[] = []
  private endedHow: Exclude<Succession, 'first'> | undefined

  /** @param max most records kept (default 100). */
  constructor(private readonly max = 100) {}

  /** The leadership now in force, if any. */
  get current(): LeadershipRecord | undefined {
    const last = this.records.at(-1)
    return last && last.to === undefined ? last : undefined
  }

  /**
   * The observer now knows `leader` to lead (undefined: nobody). Returns whether the history changed.
   * `end` says how the leadership in force ended, when it just did; without it, an election.
   */
  observe(
    at: number,
    leader: { id: string; token: bigint | string; since?: number } | undefined,
    end?: LeadershipEnd,
  ): boolean {
    const token = leader === undefined ? undefined : String(leader.token)
    const current = this.current
    if (current && leader && current.leader === leader.id && current.token === token) return false
    if (!current && !leader) return false
    if (current) {
      current.to = Math.max(current.from, Math.min(at, end?.at ?? at))
      this.endedHow = end?.how ?? 'election'
    }
    if (leader && token !== undefined) {
      const previous = this.records.at(-1)
      const from = leader.since !== undefined && leader.since <= at ? leader.since : at
      this.records.push({
        leader: leader.id,
        token,
        from,
        after: previous ? (this.endedHow ?? 'election') : 'first',
        gapMs: previous?.to === undefined ? undefined : Math.max(0, from - previous.to),
      })
      this.endedHow = undefined
      if (this.records.length > this.max) this.records.splice(0, this.records.length - this.max)
    }
    return true
  }

  /** A copy of the records, oldest first. */
  list(): LeadershipRecord[] {
    return this.records.map((r) => ({ ...r }))
  }
}
