/**
 * Where a driver keeps the little state its protocol must never forget across a crash (raft's term and
 * vote, bully's highest epoch). The default is a file in the data directory; embedders and
 * tests may pass their own store (another durable medium, or one that fails on demand).
 */
export interface HardStateStore<P> {
  /** The last state saved, or undefined when none was saved yet. Throws a PersistenceError when unsure. */
  load(): P | undefined
  /**
   * Writes `state` durably before returning (a crash right after must not lose it). Throws when it
   * cannot; the driver then sends nothing that depended on it and rebuilds its protocol machine from the
   * last state that was saved.
   */
  save(state: P): void
}

/** What a raft node keeps across a crash (`stateStore`), so that it never votes twice in one term. */
export interface RaftHardState {
  /** The highest term this node knows. */
  term: number
  /** Whom it voted for in `term`, if anyone. */
  votedFor?: string | undefined
}

/** What a bully node keeps across a crash (`stateStore`), so that a restart never reuses a fencing token. */
export interface BullyHardState {
  /** The highest epoch this node knows. */
  epoch: number
}
