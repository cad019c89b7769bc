/**
 * etcd's own election recipe (client/v3/concurrency, what `etcdctl elect NAME PROPOSAL` runs), written
 * on the KV API with the `etcd3` package, so ballot candidates, `etcdctl elect` and Go programs using
 * concurrency.Election take part in one election:
 *
 *   - a session is a lease (granted and kept alive here, one keep-alive per request of the machine, and
 *     revoked on stop; etcd3's own Lease object is not used: its keep-alives outlive client.close());
 *   - a candidate's entry is the key `NAME/<lease id in lowercase hex>`, holding exactly its id, put
 *     with the lease in a transaction only if absent (create revision 0);
 *   - the line is every key under `NAME/` sorted by create revision: the lowest leads, and its create
 *     revision is the fencing token;
 *   - a waiting candidate watches only the key just before its own (no herd), plus the head's key to
 *     know who leads (what concurrency.Election.Observe watches) and its own key; the head watches the
 *     whole prefix (one process: no herd), so the leader's list of candidates stays exact, while a
 *     waiting candidate's list is as of its last read (its join, or a change of the head or of the key
 *     before its own);
 *   - address and tags go to a sibling key `NAME.ballot-meta/<lease hex>` with the same lease, outside
 *     the prefix, because any key under `NAME/` joins the line.
 *
 * A follower (watchOnly) watches the whole prefix, so it sees every head in the store's order.
 */
import type { Etcd3, IKeyValue, Watcher } from 'etcd3'
import {
  InvalidOptionsError,
  SessionLostError,
  StoreRefusedError,
  StoreUnavailableError,
} from '../../errors.js'
import type { BackendEvents, BackendSession, LeaseBackend, LineEntry } from '../backend.js'
import { checkStoreTls, type StoreTls } from './tls.js'

/** Options of `new EtcdBackend()`. */
export interface EtcdBackendOptions {
  /** Endpoints as host:port (a readonly array will do). */
  hosts: readonly string[]
  /** The election's name: entries live under `<election>/` (as with `etcdctl elect <election>`). */
  election: string
  /** User name for etcd's authentication, if it is on. */
  username?: string | undefined
  /** Password for etcd's authentication (never logged). */
  password?: string | undefined
  /**
   * TLS to etcd (its client URLs are https://): the CA to trust and, for `--client-cert-auth`, a client
   * certificate and key (PEM). `{}` trusts the system's roots. Absent: plain http.
   */
  tls?: StoreTls | undefined
  /** Deadline of each gRPC call (ms). Default 5000 (the lease driver also bounds each call itself). */
  callTimeoutMs?: number | undefined
}

type Etcd3Module = typeof import('etcd3')

let etcd3Module: Promise<Etcd3Module> | undefined

/** Loads the optional peer dependency `etcd3`, or says plainly that it is missing. */
function loadEtcd3(): Promise<Etcd3Module> {
  etcd3Module ??= import('etcd3').catch((err: unknown) => {
    etcd3Module = undefined
    throw new InvalidOptionsError(
      'store',
      `the etcd store needs the optional package "etcd3": run \`npm install etcd3\` (${(err as Error).message})`,
    )
  })
  return etcd3Module
}

/** The etcd key prefix of an election's line, and of ballot's metadata beside it. */
export function electionKeys(election: string): { prefix: string; metaPrefix: string } {
  return { prefix: `${election}/`, metaPrefix: `${election}.ballot-meta/` }
}

interface Meta {
  id?: string
  address?: string
  tags?: Record<string, string>
}

/** A fault-handling policy that only runs the call (etcd3 may hand it a function that throws). */
const noPolicy = {
  execute: async <T>(fn: (ctx: { signal: AbortSignal }) => Promise<T>) =>
    fn({ signal: new AbortController().signal }),
}

/** Watch reconnects: 100 ms doubling to 1 s (etcd3's default grows to 30 s). */
function watchBackoff(duration = 100): { duration: number; next(): unknown } {
  return { duration, next: () => watchBackoff(Math.min(1000, duration * 2)) }
}

export class EtcdBackend implements LeaseBackend {
  readonly store = 'etcd'
  private readonly opts: EtcdBackendOptions
  private readonly prefix: string
  private readonly metaPrefix: string
  private mod: Etcd3Module | undefined
  private client: Etcd3 | undefined
  private events: BackendEvents | undefined
  private watchOnly = false
  private closed = false
  private leaseId: string | undefined
  private leaseHex: string | undefined
  private lastRevision = -1n
  private armedRevision = -1n
  private refreshFailures = 0
  /** Candidates: single-key (or empty-prefix) watches by key. */
  private readonly watchers = new Map<string, Watcher>()
  private refreshing = false
  private refreshAgain = false
  private retryTimer: NodeJS.Timeout | undefined
  private suspended = false
  /** Followers: the line as the prefix watch shows it, and each entry's metadata. */
  private readonly entries = new Map<string, IKeyValue>()
  private readonly metas = new Map<string, Meta>()
  private followerQueue: Promise<void> = Promise.resolve()
  private readonly pendingMeta = new Set<string>()
  private pendingEmits = 0

  constructor(opts: EtcdBackendOptions) {
    if (opts.hosts.length === 0) throw new InvalidOptionsError('store', 'give at least one etcd host:port')
    if (!opts.election || opts.election.includes('\0'))
      throw new InvalidOptionsError('election', 'must be a non-empty name')
    this.opts = opts
    this.tls = opts.tls ? checkStoreTls(opts.tls) : undefined
    ;({ prefix: this.prefix, metaPrefix: this.metaPrefix } = electionKeys(opts.election))
  }

  private readonly tls: { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined

  /** The endpoints, for messages. */
  get target(): string {
    return this.opts.hosts.join(',')
  }

  /** The create revision of the entry the last join wrote (undefined after a leave). */
  private joinedRevision: bigint | undefined

  /** This candidate's key while it has a session (`<election>/<lease hex>`). */
  get key(): string | undefined {
    return this.leaseHex === undefined ? undefined : this.prefix + this.leaseHex
  }

  async connect(events: BackendEvents, opts: { watchOnly: boolean }): Promise<void> {
    this.events = events
    this.watchOnly = opts.watchOnly
    this.mod = await loadEtcd3()
    const { Etcd3 } = this.mod
    this.client = new Etcd3({
      hosts: this.opts.hosts.map((h) => `${this.tls ? 'https' : 'http'}://${h}`),
      ...(this.tls
        ? {
            credentials: {
              rootCertificate: this.tls.ca as Buffer,
              privateKey: this.tls.key,
              certChain: this.tls.cert,
            },
          }
        : {}),
      auth:
        this.opts.username !== undefined
          ? { username: this.opts.username, password: this.opts.password ?? '' }
          : undefined,
      dialTimeout: this.callTimeout(),
      // The lease driver retries with its own backoff; no circuit breaker may hold requests back.
      faultHandling: {
        host: () => noPolicy as never,
        global: noPolicy as never,
        watchBackoff: watchBackoff() as never,
      },
      grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 },
    })
    const snapshot = await this.snapshot()
    this.checkForeign(snapshot.kvs)
    if (this.watchOnly) {
      for (const kv of snapshot.kvs) this.entries.set(kv.key.toString(), kv)
      for (const [hex, meta] of snapshot.metas) this.metas.set(hex, meta)
      this.emit(snapshot.revision, this.followerLine())
      await this.watchPrefix(snapshot.revision)
    } else {
      this.emit(snapshot.revision, this.toLine(snapshot.kvs, snapshot.metas))
      await this.arm(snapshot.revision, snapshot.kvs)
    }
  }

  async openSession(ttlMs: number): Promise<BackendSession> {
    const client = this.need()
    const ttl = Math.max(1, Math.ceil(ttlMs / 1000))
    const res = await this.call(() => client.leaseClient.leaseGrant({ TTL: ttl }, this.callOptions()))
    this.leaseId = res.ID
    this.leaseHex = BigInt(res.ID).toString(16)
    return { id: this.leaseHex, ttlMs: Number(res.TTL) * 1000 }
  }

  async keepAlive(): Promise<void> {
    const client = this.need()
    const id = this.leaseId
    if (id === undefined) throw new SessionLostError('etcd', 'no etcd lease')
    const res = await this.call(async () => {
      const stream = await client.leaseClient.leaseKeepAlive(this.callOptions())
      try {
        return await new Promise<{ TTL: string }>((resolve, reject) => {
          stream.on('data', resolve)
          stream.on('error', reject)
          stream.on('end', () => reject(new Error('keep-alive stream ended')))
          stream.write({ ID: id })
        })
      } finally {
        // Not cancel(): etcd3 would take the cancellation for a broken connection and reset it.
        stream.end()
      }
    })
    if (res.TTL === '0' || Number(res.TTL) <= 0)
      throw new SessionLostError('etcd', `etcd lease ${this.leaseHex} expired`)
  }

  async join(self: { id: string; address?: string; tags?: Record<string, string> }): Promise<LineEntry> {
    const client = this.need()
    const key = this.key
    const leaseId = this.leaseId
    if (key === undefined || leaseId === undefined || this.leaseHex === undefined)
      throw new SessionLostError('etcd', 'no etcd lease')
    const metaKey = this.metaPrefix + this.leaseHex
    const meta: Meta = { id: self.id, address: self.address, tags: self.tags }
    const line = () => client.getAll().prefix(this.prefix).sort('Create', 'Ascend')
    const metas = () => client.getAll().prefix(this.metaPrefix)
    const res = await this.call(() =>
      client
        .if(key, 'Create', '==', 0)
        .then(
          client.put(key).value(self.id).lease(leaseId),
          client.put(metaKey).value(JSON.stringify(meta)).lease(leaseId),
          line(),
          metas(),
        )
        .else(line(), metas())
        .options(this.callOptions())
        .commit(),
    )
    const at = res.succeeded ? 2 : 0
    const kvs = res.responses[at]?.response_range.kvs ?? []
    const metaMap = this.parseMetas(res.responses[at + 1]?.response_range.kvs ?? [])
    const revision = BigInt(res.header.revision)
    const entries = this.toLine(kvs, metaMap)
    const mine = entries.find((e) => e.key === key)
    if (!mine)
      throw new SessionLostError('etcd', `etcd lease ${this.leaseHex} is gone: ${key} was not written`)
    // The key is the same for every join under one lease: a leave must delete only this entry, never
    // one written by a later join (a leave that timed out, or was retried, can land after it).
    this.joinedRevision = mine.order
    this.emit(revision, entries)
    this.checkForeign(kvs)
    await this.arm(revision, kvs)
    return mine
  }

  async leave(): Promise<void> {
    const client = this.need()
    const key = this.key
    if (key === undefined || this.leaseHex === undefined) return
    const metaKey = this.metaPrefix + this.leaseHex
    // Unknown (a join whose answer never came) deletes whatever this lease wrote, as before.
    const joined = this.joinedRevision
    this.joinedRevision = undefined
    await this.call(() =>
      client
        .if(key, 'Create', joined === undefined ? '>' : '==', joined === undefined ? 0 : joined.toString())
        .then(client.delete().key(key), client.delete().key(metaKey))
        .else(client.delete().key(metaKey))
        .options(this.callOptions())
        .commit(),
    )
    this.refresh()
  }

  async closeSession(): Promise<void> {
    const client = this.need()
    const id = this.leaseId
    if (id === undefined) return
    try {
      await this.call(() => client.leaseClient.leaseRevoke({ ID: id }, this.callOptions()))
    } catch (err) {
      if (!(err instanceof SessionLostError)) throw err
    }
    this.leaseId = undefined
    this.leaseHex = undefined
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearTimeout(this.retryTimer)
    const watchers = [...this.watchers.values()]
    this.watchers.clear()
    await Promise.race([
      Promise.all(watchers.map((w) => w.cancel().catch(() => undefined))),
      new Promise((r) => setTimeout(r, 500).unref()),
    ])
    this.client?.close()
  }

  // ---- reading the line -------------------------------------------------------------------------

  private async snapshot(): Promise<{ revision: bigint; kvs: IKeyValue[]; metas: Map<string, Meta> }> {
    const client = this.need()
    const ops = await Promise.all([
      client.getAll().prefix(this.prefix).sort('Create', 'Ascend').op(),
      client.getAll().prefix(this.metaPrefix).op(),
    ])
    const res = await this.call(() =>
      client.kv.txn({ compare: [], success: ops, failure: [] }, this.callOptions()),
    )
    return {
      revision: BigInt(res.header.revision),
      kvs: res.responses[0]?.response_range.kvs ?? [],
      metas: this.parseMetas(res.responses[1]?.response_range.kvs ?? []),
    }
  }

  private parseMetas(kvs: IKeyValue[]): Map<string, Meta> {
    const out = new Map<string, Meta>()
    for (const kv of kvs) {
      try {
        out.set(kv.key.toString().slice(this.metaPrefix.length), JSON.parse(kv.value.toString()) as Meta)
      } catch {
        // not ours; ignore
      }
    }
    return out
  }

  private toLine(kvs: IKeyValue[], metas: Map<string, Meta>): LineEntry[] {
    return [...kvs]
      .sort((a, b) => cmp(BigInt(a.create_revision), BigInt(b.create_revision)))
      .map((kv) => {
        const key = kv.key.toString()
        const hex = key.slice(this.prefix.length)
        const meta = kv.lease !== '0' && BigInt(kv.lease).toString(16) === hex ? metas.get(hex) : undefined
        const rev = BigInt(kv.create_revision)
        const entry: LineEntry = { id: kv.value.toString(), key, order: rev, token: rev }
        if (meta?.address) entry.address = meta.address
        if (meta?.tags) entry.tags = meta.tags
        return entry
      })
  }

  private checkForeign(kvs: IKeyValue[]): void {
    const foreign = kvs.find((kv) => kv.lease === '0')
    if (foreign)
      throw new StoreRefusedError(
        'etcd',
        `etcd: the election prefix "${this.prefix}" holds "${foreign.key.toString()}", which has no lease: ` +
          'not an election entry (it would lead forever); remove it or choose another election name',
      )
  }

  /** Reports a line unless a newer one was already reported. */
  private emit(revision: bigint, entries: LineEntry[]): void {
    if (this.closed || revision < this.lastRevision) return
    this.lastRevision = revision
    this.events?.line(entries)
  }

  // ---- candidates: a few single-key watches ---------------------------------------------------

  /** Watches, from after `revision`: the head, the key just before ours, and ours (or the empty prefix). */
  private async arm(revision: bigint, kvs: IKeyValue[]): Promise<void> {
    // A join and a refresh may finish in either order: never re-arm from an older read.
    if (this.closed || revision < this.armedRevision) return
    this.armedRevision = revision
    const sorted = [...kvs].sort((a, b) => cmp(BigInt(a.create_revision), BigInt(b.create_revision)))
    const keys = sorted.map((kv) => kv.key.toString())
    // '' stands for the whole prefix: watched while the line is empty (to see the first candidate come)
    // and by the head (to keep the leader's list of candidates exact: one process, so no herd).
    const want = new Set<string>()
    const mine = this.key
    const at = mine === undefined ? -1 : keys.indexOf(mine)
    if (keys.length === 0 || at === 0) want.add('')
    else {
      want.add(keys[0] as string)
      if (at > 0) want.add(keys[at - 1] as string)
      if (at >= 0 && mine) want.add(mine)
    }
    for (const [key, w] of this.watchers) {
      if (!want.has(key)) {
        this.watchers.delete(key)
        void w.cancel().catch(() => undefined)
      }
    }
    const start = String(revision + 1n)
    const client = this.need()
    await Promise.all(
      [...want]
        .filter((key) => !this.watchers.has(key))
        .map(async (key) => {
          const b = client.watch().startRevision(start)
          const w = (key === '' ? b.prefix(this.prefix) : b.key(key).only('delete')).watcher()
          this.watchers.set(key, w)
          this.observeWatcher(w, () => this.refresh())
          w.on('data', () => this.refresh())
        }),
    )
  }

  private observeWatcher(w: Watcher, onResume: () => void): void {
    w.on('disconnected', (err) => {
      if (this.closed) return
      if (!this.suspended) {
        this.suspended = true
        this.events?.suspended(this.toError(err))
      }
    })
    w.on('connected', () => {
      if (this.closed || !this.suspended) return
      this.suspended = false
      this.events?.resumed()
      onResume()
    })
    w.on('error', () => {
      // Canceled by the server (a compacted revision, say): read afresh and watch again.
      if (this.closed) return
      for (const [key, other] of this.watchers) if (other === w) this.watchers.delete(key)
      onResume()
    })
  }

  /** Reads the line again (one at a time) and re-arms the watches; retried until it works. */
  private refresh(): void {
    if (this.closed || this.watchOnly) return
    if (this.refreshing) {
      this.refreshAgain = true
      return
    }
    this.refreshing = true
    this.snapshot()
      .then(async (s) => {
        this.emit(s.revision, this.toLine(s.kvs, s.metas))
        await this.arm(s.revision, s.kvs)
      })
      .then(
        () => {
          this.refreshing = false
          this.refreshFailures = 0
          if (this.refreshAgain) {
            this.refreshAgain = false
            this.refresh()
          }
        },
        (err: unknown) => {
          this.refreshing = false
          this.refreshAgain = false
          if (this.closed) return
          if (!this.suspended) {
            this.suspended = true
            this.events?.suspended(this.toError(err))
          }
          clearTimeout(this.retryTimer)
          this.refreshFailures++
          this.retryTimer = setTimeout(
            () => {
              this.refresh()
            },
            Math.min(1000, 100 * 2 ** Math.min(this.refreshFailures, 4)),
          )
        },
      )
  }

  // ---- followers: the whole prefix --------------------------------------------------------------

  private async watchPrefix(revision: bigint): Promise<void> {
    const client = this.need()
    const w = client
      .watch()
      .prefix(this.prefix)
      .startRevision(String(revision + 1n))
      .watcher()
    this.watchers.set(this.prefix, w)
    w.on('data', (res) => {
      // One line per revision, taken now: a response may carry several revisions, and later responses
      // must not change what an earlier one reports (every head, in order, is the follower's promise).
      const events = res.events
      for (let i = 0; i < events.length; i++) {
        const ev = events[i] as (typeof events)[number]
        const key = ev.kv.key.toString()
        if (ev.type === 'Put') {
          if (!this.entries.has(key)) this.pendingMeta.add(key)
          this.entries.set(key, ev.kv)
        } else {
          this.entries.delete(key)
          this.pendingMeta.delete(key)
        }
        const next = events[i + 1]
        if (next && next.kv.mod_revision === ev.kv.mod_revision) continue
        const rev = BigInt(ev.kv.mod_revision)
        const kvs = [...this.entries.values()]
        const added = [...this.pendingMeta]
        this.pendingMeta.clear()
        this.pendingEmits++
        const emit = () => {
          this.emit(rev, this.toLine(kvs, this.metas))
          // Metadata of entries gone for good is dropped once no queued line may need it.
          if (--this.pendingEmits === 0)
            for (const hex of this.metas.keys())
              if (!this.entries.has(this.prefix + hex)) this.metas.delete(hex)
        }
        this.followerQueue = this.followerQueue
          .then(() => this.fetchMetas(added))
          .then(emit, emit)
          .catch(() => undefined)
      }
    })
    this.observeWatcher(w, () => {
      if (this.watchers.has(this.prefix)) return
      // The watch was cancelled (compaction): read the line afresh and watch again.
      this.followerQueue = this.followerQueue.then(async () => {
        try {
          const s = await this.snapshot()
          this.entries.clear()
          for (const kv of s.kvs) this.entries.set(kv.key.toString(), kv)
          for (const [hex, meta] of s.metas) this.metas.set(hex, meta)
          this.emit(s.revision, this.followerLine())
          await this.watchPrefix(s.revision)
        } catch (err) {
          this.events?.suspended(this.toError(err))
        }
      })
    })
  }

  private async fetchMetas(keys: string[]): Promise<void> {
    const client = this.need()
    await Promise.all(
      keys.map(async (key) => {
        const hex = key.slice(this.prefix.length)
        const value = await this.call(() =>
          client
            .get(this.metaPrefix + hex)
            .options(this.callOptions())
            .string(),
        )
        if (value === null) return
        try {
          this.metas.set(hex, JSON.parse(value) as Meta)
        } catch {
          // not ours
        }
      }),
    )
  }

  private followerLine(): LineEntry[] {
    return this.toLine([...this.entries.values()], this.metas)
  }

  // ---- plumbing ---------------------------------------------------------------------------------

  private need(): Etcd3 {
    if (!this.client) throw new StoreUnavailableError('etcd', 'etcd: not connected')
    if (this.closed) throw new StoreUnavailableError('etcd', 'etcd: the backend is closed')
    return this.client
  }

  private callTimeout(): number {
    return this.opts.callTimeoutMs ?? 5000
  }

  private callOptions(): { deadline: number } {
    return { deadline: Date.now() + this.callTimeout() }
  }

  /** Runs one etcd call, turning its errors into the driver's. */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      throw this.toError(err)
    }
  }

  /** Maps etcd3's errors to the driver's: session lost, refused (auth), or unavailable. Never names a password. */
  private toError(err: unknown): Error {
    const mod = this.mod
    // One line: gRPC appends a multi-line "Resolution note" to connection errors.
    const message = ((err as Error)?.message ?? String(err))
      .replace(/\s*Resolution note:[\s\S]*$/, '')
      .replace(/\s+/g, ' ')
      .trim()
    const where = `etcd ${this.opts.hosts.join(',')}`
    if (mod) {
      if (err instanceof mod.EtcdLeaseInvalidError || /lease not found/i.test(message))
        return new SessionLostError('etcd', `${where}: the lease is gone (${message})`, { cause: err })
      if (
        err instanceof mod.EtcdAuthenticationFailedError ||
        err instanceof mod.EtcdPermissionDeniedError ||
        err instanceof mod.EtcdInvalidAuthTokenError ||
        err instanceof mod.GRPCUnauthenticatedError ||
        /authentication|permission denied|not enabled/i.test(message)
      )
        return new StoreRefusedError('etcd', `${where} refused: ${message}`, { cause: err })
    }
    return new StoreUnavailableError('etcd', `${where} unavailable: ${message}`, { cause: err })
  }
}

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0
}
