/**
 * The simulator's one source of randomness. Every delay, fault and node's `random` draws from a single
 * seeded generator, in the order the (deterministic) event loop asks, so a run replays exactly from its
 * seed.
 */
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus'

/** Spreads nearby seeds (1, 2, 3...) over the generator's state: xoroshiro seeds its state almost raw. */
function mixSeed(seed: number): number {
  let h = seed >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) | 0
}

export class SimRandom {
  private readonly gen: ReturnType<typeof xoroshiro128plus>

  constructor(readonly seed: number) {
    this.gen = xoroshiro128plus(mixSeed(seed))
    for (let i = 0; i < 8; i++) this.gen.next() // leave the lightly mixed start of the sequence behind
  }

  /** Uniform in [0, 1). */
  next(): number {
    return (this.gen.next() >>> 0) / 4294967296
  }

  /** Uniform integer in [lo, hi] (both included). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1))
  }

  /** Uniform in [lo, hi). */
  between(lo: number, hi: number): number {
    return lo + this.next() * (hi - lo)
  }

  chance(p: number): boolean {
    return p > 0 && this.next() < p
  }

  /** Exponentially distributed with the given mean. */
  exponential(mean: number): number {
    return -mean * Math.log(1 - this.next())
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T
  }

  /** A `Random` for a protocol machine, drawing from this same source. */
  asRandom(): () => number {
    return () => this.next()
  }
}
