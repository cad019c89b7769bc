/**
 * A node's local clock in the simulation: local = offset + rate × t, where t is the simulated real time.
 * The rate models drift (within the protocol's bound, or beyond it); `jump` models a clock that leaps
 * (a suspended VM, a bad NTP step). Machines are always stepped with local time; the simulator converts
 * their local deadlines back to real time for its event queue.
 */
export class NodeClock {
  constructor(
    private offset: number,
    readonly rate: number,
  ) {}

  local(t: number): number {
    return this.offset + this.rate * t
  }

  /** The earliest real time (not before `now`) at which the local clock reads at least `local`. */
  realAt(local: number, now: number): number {
    if (local === Number.POSITIVE_INFINITY) return local
    let t = (local - this.offset) / this.rate
    // Rounding can land a hair early, and a machine woken before its deadline asks for the same one again.
    for (let i = 0; i < 8 && this.local(t) < local; i++) t += 1e-9 * Math.max(1, Math.abs(t))
    return Math.max(t, now)
  }

  /** The clock of a new process on the same machine: same rate, reading `origin` at real time `now`. */
  restarted(now: number, origin: number): NodeClock {
    return new NodeClock(origin - this.rate * now, this.rate)
  }

  /** Moves the clock by `ms` (negative: backward) at this instant. */
  jump(ms: number): void {
    this.offset += ms
  }
}
