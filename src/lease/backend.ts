/**
 * The contract between the lease driver and one coordination store (etcd, ZooKeeper, Consul, later
 * Redis and PostgreSQL). Each store runs *its own* election recipe here, the one its own tools use, so
 * ballot candidates and the store's tools take part in the same elections:
 *
 *   - etcd: the v3 concurrency election (what `etcdctl elect` runs): a key `<name>/<lease id hex>` put
 *     with the session's lease; the lowest create revision under the prefix leads; each candidate waits
 *     for the deletion of the key just before its own. Token: the leader key's create revision.
 *   - ZooKeeper: Curator's LeaderLatch: an ephemeral sequential node under the latch path; the lowest
 *     sequence leads; each candidate watches the node just before its own. Token: the node's czxid.
 *   - Consul: `consul lock`'s recipe: a session with a TTL, `acquire` of `<prefix>/.lock` with that
 *     session; waiting candidates block on the key. Token: the key's ModifyIndex after the acquire.
 *   - Redis (no recipe of its own; ballot's, ./stores/redis.ts): a session hash with a PX expiry, a sorted
 *     set as the line, the first live candidate takes `SET leader <session> NX PX`; changes are published.
 *     Token: a counter INCRed in the script that takes the lock.
 *
 * A backend does I/O only. It decides nothing about time: it reports *when each request that proves the
 * session alive was sent* (on the driver's monotonic clock, read just before the request left), and the
 * pure lease machine (./machine.ts) decides from that whether this candidate may still call itself
 * leader. Nothing a store says about time (a TTL left, a timestamp in a record) is trusted.
 */

/** One candidate or leader in a store's line, as the store shows it. */
export interface LineEntry {
  /** The candidate's ballot id (or, for an entry made by a store's own tool, its value as text). */
  id: string
  /** The store's key or path of the entry (etcd key, ZooKeeper node path, Consul lock key). */
  key: string
  /** Position key in the line: lower leads (etcd create revision, ZooKeeper sequence, Consul: 0 for the holder). */
  order: bigint
  /**
   * The fencing token this entry leads with, once it leads (see the store notes above); always above 0.
   * 0 marks an entry that holds nothing (a waiting candidate of a lock-based store): never a leader,
   * wherever it stands in the line.
   */
  token: bigint
  /** Metadata the candidate published with its entry (address, tags); absent for foreign entries. */
  address?: string
  /** Tags the candidate published with its entry. */
  tags?: Record<string, string>
}

/**
 * The line's head if it holds the lock, else undefined: an entry with token 0 holds nothing (a waiting
 * candidate of a lock-based store, listed first while the lock is free) and nobody leads on it. The one
 * rule by which a candidate's machine, a follower and `clusterState()` pick the leader from a line
 * (sorted head first).
 */
export function lineHead(line: readonly LineEntry[]): LineEntry | undefined {
  const first = line[0]
  return first && first.token > 0n ? first : undefined
}

/** What a backend tells the driver as it happens. All callbacks run on the driver's event loop. */
export interface BackendEvents {
  /**
   * The line changed (a candidate joined or left, the head changed); entries head first (the head is
   * the leader, if any). Reports come in the store's order: never a line older than one already
   * reported, nor older than the answer of a join that already resolved (the machine would take this
   * candidate's entry for deleted).
   */
  line(entries: LineEntry[]): void
  /**
   * The connection to the store is in doubt (ZooKeeper: disconnected/SUSPENDED; others: a request
   * failed with a transport error). The machine treats leadership as lost at once, as Curator advises.
   */
  suspended(reason: Error): void
  /** The connection is back and the session is still the same. */
  resumed(): void
  /** The session is gone for good at the store (expired, revoked, deleted): a new one is needed. */
  sessionLost(reason: Error): void
}

/** The session a backend opened. */
export interface BackendSession {
  /** The store's id of the session (etcd lease id, ZooKeeper session id, Consul session id) as text. */
  id: string
  /** The TTL the store granted, in ms (may differ from the one asked for; the machine uses this one). */
  ttlMs: number
}

/**
 * One store's election recipe for one election name. Every method may reject with a StoreError from
 * ../errors.js (StoreUnavailableError, code 'STORE_UNAVAILABLE': unreachable or no answer; or
 * StoreRefusedError, 'STORE_REFUSED': the store answered no) or SessionLostError ('SESSION_LOST'); the
 * driver retries with backoff, and bounds every call with its own timeout (a late answer is ignored).
 * `connect` rejecting is what `start()` reports for a bad configuration (unreachable address, foreign
 * data under the election's prefix): connect should make one round trip and check what it finds.
 */
export interface LeaseBackend {
  /** 'etcd', 'zookeeper', 'consul', ... for logs, metrics and errors. */
  readonly store: string
  /** Where the store is (hosts, agent URL), for messages; never with credentials. */
  readonly target?: string
  /** Connects and starts reporting to `events`; `watchOnly` for a follower that never joins the line. */
  connect(events: BackendEvents, opts: { watchOnly: boolean }): Promise<void>
  /** Opens a new session with about `ttlMs`; the caller noted the send time before calling. */
  openSession(ttlMs: number): Promise<BackendSession>
  /**
   * Proves the session alive once (etcd: one lease keep-alive; Consul: one session renew; ZooKeeper: a
   * round trip on the session, such as a sync or exists). Resolves when the store confirmed; the caller
   * noted the send time before calling. Rejects with SessionLostError when the session is gone.
   */
  keepAlive(): Promise<void>
  /** Joins the line under the current session (idempotent while the session lives). */
  join(self: { id: string; address?: string; tags?: Record<string, string> }): Promise<LineEntry>
  /** Leaves the line (deletes this candidate's entry) without closing the session. */
  leave(): Promise<void>
  /** Closes the session at the store (revoke, close, destroy), which also removes its entry. */
  closeSession(): Promise<void>
  /** Stops every watch and closes the connection. */
  close(): Promise<void>
}
