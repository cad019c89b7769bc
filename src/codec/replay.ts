/**
 * Replay protection for authenticated messages, per sender.
 *
 * Each sender numbers its messages (`seq`, from 1) within an incarnation (a number that grows with each
 * start of the process: a boot counter kept in the data directory, or the boot time without one). A
 * receiver accepts a sequence number once, within a sliding window of the newest 64 (as IPsec does), so
 * datagrams may arrive out of order but never twice, and refuses every incarnation older than the newest
 * it has seen from that sender. A receiver that has just started knows nothing yet; messages whose
 * wall-clock stamp is more than `maxAgeMs` away from its own clock, in the past or in the future, are
 * refused, so no capture (an old one, or one stamped ahead) can be replayed into it later.
 */

const WINDOW = 64n

interface SenderWindow {
  incarnation: number
  highest: bigint
  /** Bit i set: sequence number highest − i was seen. */
  seen: bigint
}

export type ReplayVerdict = 'ok' | 'replay' | 'stale'

export class ReplayGuard {
  private readonly senders = new Map<string, SenderWindow>()

  constructor(private readonly maxAgeMs: number) {}

  check(
    from: string,
    incarnation: number,
    seq: number,
    sentWallMs: number,
    nowWallMs: number,
  ): ReplayVerdict {
    // Both ways: a message stamped far ahead would otherwise stay replayable into fresh receivers.
    if (Math.abs(nowWallMs - sentWallMs) > this.maxAgeMs) return 'stale'
    const s = BigInt(seq)
    const w = this.senders.get(from)
    if (!w || incarnation > w.incarnation) {
      this.senders.set(from, { incarnation, highest: s, seen: 1n })
      return 'ok'
    }
    if (incarnation < w.incarnation) return 'replay'
    if (s > w.highest) {
      const shift = s - w.highest
      w.seen = shift >= WINDOW ? 1n : ((w.seen << shift) | 1n) & ((1n << WINDOW) - 1n)
      w.highest = s
      return 'ok'
    }
    const back = w.highest - s
    if (back >= WINDOW) return 'replay'
    const bit = 1n << back
    if (w.seen & bit) return 'replay'
    w.seen |= bit
    return 'ok'
  }

  forget(from: string): void {
    this.senders.delete(from)
  }
}
