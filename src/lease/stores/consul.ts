/**
 * The lease backend on Consul: `consul lock PREFIX`'s recipe, so ballot candidates and `consul lock`
 * exclude each other.
 *
 *   <prefix>/.lock               the lock: acquired with the session, flags 3304740253564472344 (0x2ddccbc058a50c18,
 *                                what Consul's api.Lock sets), value = the holder's id (consul lock leaves it empty)
 *   <linePrefix>/<session id>    one per ballot candidate, acquired with its session, value {"id","address","tags"}
 *
 * The lock key alone decides who leads. Ballot's candidates also form a line of their own under
 * `linePrefix` (default `<prefix>.ballot/line`, a sibling of the prefix, so `consul lock` never sees it),
 * ordered by each key's CreateIndex: only the first in that line races for the lock, blocking on the lock
 * key; every other candidate blocks on the key just before its own, so a join or a leave wakes one
 * candidate, not all. A waiting candidate's keepAlive (one session renew) also refreshes what it reports;
 * the holder blocks on the lock and the line, so at rest its keepAlive is its only request.
 *
 * The line reported: the holder first (order 0; for a ballot holder its line key and id, for a
 * `consul lock` holder the lock key and the holder's session id as its id), then ballot's waiting
 * candidates by CreateIndex. While nobody holds the lock the line is empty: the next candidate is not the
 * leader until it has acquired (it may be waiting out a lock-delay).
 *
 * Token: the lock key's ModifyIndex right after the acquire (a Raft index: it grows with every acquire).
 *
 * Sessions: TTL = the TTL asked for, rounded up to whole seconds and clamped to Consul's [10 s, 24 h];
 * `ttlMs` reports it (Consul itself waits up to twice the TTL before invalidating, which only makes the
 * lease safer). Lock-delay (default 15 s, as `consul lock`): after a session is *invalidated* (TTL,
 * failed health check, destroy without release) nobody can acquire its locks for that long, so a crashed
 * leader's lock fails over only after TTL + lock-delay. A clean stop releases first, then destroys the
 * session and deletes the unheld lock key (as `consul lock` does on SIGINT), so failover is immediate.
 *
 * Consul's flags are uint64 and this lock's value is above 2^53: JSON.parse would round it. The client is
 * given a JSON decoder that turns Flags and the *Index fields into strings before parsing, and the flags
 * are sent as their exact decimal text.
 */
import { EventEmitter } from 'node:events'
import { Agent as HttpsAgent } from 'node:https'
import { InvalidOptionsError, SessionLostError, StoreError } from '../../errors.js'
import type { BackendEvents, BackendSession, LeaseBackend, LineEntry } from '../backend.js'
import { loadOptional } from './optional.js'
import { checkStoreTls, type StoreTls } from './tls.js'

const STORE = 'consul'
/** api.LockFlagValue in Consul's Go API (0x2ddccbc058a50c18), exactly. */
export const CONSUL_LOCK_FLAGS = 3304740253564472344n
const MIN_TTL_S = 10
/** How long a blocking query waits while a session's keep-alives watch the agent: Consul's own default. */
const SESSION_WAIT_MS = 300_000
const MAX_TTL_S = 86_400

/** How a Consul backend reaches its agent and which `consul lock` prefix it takes part in. */
export interface ConsulBackendOptions {
  /** The agent's HTTP API, e.g. `http://127.0.0.1:8500`. Default `http://127.0.0.1:8500`. */
  address?: string
  /** The `consul lock` PREFIX: the lock key is `<prefix>/.lock`. */
  prefix: string
  /** Where ballot's own candidates line up (outside the prefix). Default `<prefix>.ballot/line`. */
  linePrefix?: string
  /**
   * TLS to the agent's HTTPS API (the address must be https://): the CA to trust and, when the agent
   * verifies clients (`verify_incoming_https`), a client certificate and key (PEM). Absent: the system's
   * roots (and NODE_EXTRA_CA_CERTS).
   */
  tls?: StoreTls | undefined
  /** ACL token, sent as X-Consul-Token. */
  token?: string
  /** Session lock-delay (ms): how long an invalidated session's lock stays unavailable. Default 15000 (consul lock's). 0 disables it. */
  lockDelayMs?: number
  /** Node health checks the session is bound to. Default ['serfHealth'] (consul lock's); [] for TTL only. */
  checks?: string[]
  /** Session name shown by Consul. Default `ballot lease on '<prefix>'`. */
  sessionName?: string
  /**
   * Longest wait of one blocking query while this backend has no session, as a follower (ms). Default
   * 10000: nothing else would notice a connection that died silently. With a session, queries wait up to
   * Consul's own default of 5 minutes (and at least this): the session's keep-alive checks the agent every
   * TTL/3 and a failed request wakes the watch loop, so a long wait costs nothing but the requests it saves.
   */
  waitMs?: number
  /** Pause before trying again to acquire a free lock that was refused (a lock-delay runs) (ms). Default 1000. */
  retryMs?: number
  /** A non-blocking request unanswered this long fails with STORE_UNAVAILABLE (ms). Default 5000. */
  requestTimeoutMs?: number
}

/** A KV entry as this backend reads it (uint64 fields kept exact). */
interface KvEntry {
  Key: string
  Flags: bigint
  Value: string | null
  Session?: string
  CreateIndex: bigint
  ModifyIndex: bigint
}

interface RawKv {
  Key: string
  Flags: string | number
  Value: string | null
  Session?: string
  CreateIndex: string | number
  ModifyIndex: string | number
}

interface CancelCtx extends EventEmitter {
  includeResponse?: boolean
}

type Response = { statusCode: number; headers: Record<string, string | string[] | undefined> }

// The parts of the `consul` package's client used here (its own types know nothing of decoders,
// ctx or string flags).
interface ConsulClient {
  kv: {
    get(opts: Record<string, unknown>): Promise<unknown>
    set(opts: Record<string, unknown>): Promise<unknown>
    del(opts: Record<string, unknown>): Promise<unknown>
  }
  transaction: {
    create(operations: unknown[], opts: Record<string, unknown>): Promise<unknown>
  }
  session: {
    create(opts: Record<string, unknown>): Promise<{ ID: string }>
    destroy(opts: Record<string, unknown>): Promise<unknown>
    renew(opts: Record<string, unknown>): Promise<unknown>
    info(opts: Record<string, unknown>): Promise<unknown>
  }
  destroy(): void
}
type ConsulCtor = new (opts: Record<string, unknown>) => ConsulClient

let consulModule: Promise<ConsulCtor> | undefined
function loadConsul(): Promise<ConsulCtor> {
  consulModule ??= loadOptional('consul', STORE, async () => {
    const mod = (await import('consul')) as unknown as { default?: ConsulCtor }
    return (mod.default ?? mod) as ConsulCtor
  })
  return consulModule
}

/**
 * JSON with Consul's uint64 fields kept exact: `"Flags": 3304740253564472344` becomes a string before
 * JSON.parse sees it. The look-behind on `{` or `,` means the match is a member name, never text inside a
 * string (a quote inside a string is always preceded by a backslash).
 */
export function parseConsulJson(text: string): unknown {
  return JSON.parse(
    text.replace(/(?<=[{,]\s*)"(Flags|CreateIndex|ModifyIndex|LockIndex)"(\s*):(\s*)(\d+)/g, '"$1"$2:$3"$4"'),
  )
}

/**
 * JSON for Consul with bigints written as exact numbers (the lock flags are above 2^53: a Number would
 * round them). Only the transaction body is JSON; KV values are sent raw.
 */
export function stringifyConsulJson(data: unknown): string {
  return JSON.stringify(data, (_k, v) => (typeof v === 'bigint' ? `\u0000bigint:${v}` : v)).replace(
    /"\\u0000bigint:(\d+)"/g,
    '$1',
  )
}

function toKv(raw: RawKv): KvEntry {
  return {
    Key: raw.Key,
    Flags: BigInt(raw.Flags),
    Value: raw.Value,
    Session: raw.Session || undefined,
    CreateIndex: BigInt(raw.CreateIndex),
    ModifyIndex: BigInt(raw.ModifyIndex),
  }
}

/** A KV value as the client gives it (it decodes Consul's base64 to UTF-8 text already). */
function decodeValue(value: string | null): string {
  return value ?? ''
}

function trimSlashes(s: string): string {
  return s.replace(/^\/+|\/+$/g, '')
}

interface Snapshot {
  lock: KvEntry | undefined
  lockIndex: string
  line: Array<KvEntry & { id: string; address?: string; tags?: Record<string, string> }>
  lineIndex: string
}

class Aborted extends Error {}

export class ConsulBackend implements LeaseBackend {
  readonly store = STORE
  /** The `consul lock` prefix this election uses. */
  readonly prefix: string
  /** The lock key itself, `PREFIX/.lock`, as `consul lock` uses it. */
  readonly lockKey: string
  /** Where ballot's own candidates queue (a sibling of the prefix, never inside it). */
  readonly linePrefix: string
  private readonly baseUrl: string
  /** The agent's URL (the token is a header, never in it). */
  readonly target: string
  private readonly token: string | undefined
  private readonly tls: { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined
  private readonly lockDelayMs: number
  private readonly checks: string[]
  private readonly sessionName: string
  private readonly waitMs: number
  private readonly retryMs: number
  private readonly requestTimeoutMs: number
  private client: ConsulClient | undefined
  private events: BackendEvents | undefined
  private session: BackendSession | undefined
  private lostSession: string | undefined
  /** This candidate's line entry; `index` is the ModifyIndex its join's write left (when read back). */
  private me:
    | {
        id: string
        address?: string
        tags?: Record<string, string>
        key: string
        session: string
        index?: bigint
      }
    | undefined
  private holding: { session: string; token: bigint } | undefined
  /**
   * A leave not yet done: the entry it deletes and the lock it releases. A leave that failed is retried by
   * the driver and must still know them, or the entry would stay in the line (at its old place, or holding
   * the lock) under a live session. Kept apart from `me` so the watch loop never acquires for it.
   */
  private leaving: { me: NonNullable<ConsulBackend['me']>; held: ConsulBackend['holding'] } | undefined
  private fault: StoreError | undefined
  private doubt = false
  private closed = false
  private lastLine = ''
  private loop: Promise<void> | undefined
  private ctx: CancelCtx | undefined
  private dirty = false

  constructor(opts: ConsulBackendOptions) {
    this.prefix = trimSlashes(opts.prefix ?? '')
    if (!this.prefix)
      throw new InvalidOptionsError(
        'prefix',
        'the consul lock prefix is required, e.g. service/billing/leader',
      )
    this.lockKey = `${this.prefix}/.lock`
    this.linePrefix = trimSlashes(opts.linePrefix ?? `${this.prefix}.ballot/line`)
    if (this.linePrefix === this.prefix || this.linePrefix.startsWith(`${this.prefix}/`))
      throw new InvalidOptionsError(
        'linePrefix',
        'must be outside the lock prefix (consul lock -n uses keys there)',
      )
    const address = opts.address ?? 'http://127.0.0.1:8500'
    let url: URL
    try {
      url = new URL(address)
    } catch {
      throw new InvalidOptionsError('address', `"${address}" is not a URL like http://127.0.0.1:8500`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new InvalidOptionsError('address', `"${address}" must be an http:// or https:// URL`)
    if (opts.tls && url.protocol !== 'https:')
      throw new InvalidOptionsError('tls', `TLS options need an https:// agent address, not "${address}"`)
    this.tls = opts.tls ? checkStoreTls(opts.tls) : undefined
    this.baseUrl = `${url.origin}/v1`
    this.target = url.origin
    this.token = opts.token
    this.lockDelayMs = nonNegative('lockDelayMs', opts.lockDelayMs ?? 15_000)
    this.checks = opts.checks ?? ['serfHealth']
    this.sessionName = opts.sessionName ?? `ballot lease on '${this.prefix}'`
    this.waitMs = positive('waitMs', opts.waitMs ?? 10_000)
    this.retryMs = positive('retryMs', opts.retryMs ?? 1000)
    this.requestTimeoutMs = positive('requestTimeoutMs', opts.requestTimeoutMs ?? 5000)
  }

  async connect(events: BackendEvents, _opts: { watchOnly: boolean }): Promise<void> {
    if (this.closed) throw new StoreError('STORE_REFUSED', STORE, 'the backend is closed')
    const Consul = await loadConsul()
    const client = new Consul({
      baseUrl: this.baseUrl,
      ...(this.tls ? { agent: this.httpsAgent() } : {}),
      defaults: this.token ? { token: this.token } : undefined,
      decoders: { 'application/json': (data: Buffer | string) => parseConsulJson(data.toString()) },
      encoders: { 'application/json': (data: unknown) => Buffer.from(stringifyConsulJson(data)) },
    })
    this.client = client
    // The first read must succeed (or refuse) before connect resolves: a bad address or foreign data
    // fails here, with one error (and no events).
    let snap: Snapshot
    try {
      snap = await this.snapshot()
      if (this.fault) throw this.fault
    } catch (err) {
      this.doubt = false
      this.client = undefined
      client.destroy()
      throw err
    }
    this.events = events
    this.report(snap)
    this.loop = this.run()
  }

  async openSession(ttlMs: number): Promise<BackendSession> {
    const client = this.ready()
    const ttlS = Math.min(MAX_TTL_S, Math.max(MIN_TTL_S, Math.ceil(ttlMs / 1000)))
    const created = await this.request('session create', () =>
      client.session.create({
        name: this.sessionName,
        ttl: `${ttlS}s`,
        lockdelay: `${this.lockDelayMs}ms`,
        behavior: 'release',
        checks: this.checks,
        timeout: this.requestTimeoutMs,
      }),
    )
    this.session = { id: created.ID, ttlMs: ttlS * 1000 }
    this.lostSession = undefined
    this.me = undefined
    this.holding = undefined
    this.wake()
    return { ...this.session }
  }

  async keepAlive(): Promise<void> {
    const client = this.ready()
    const session = this.session
    if (!session)
      throw new SessionLostError(
        STORE,
        this.lostSession ? `session ${this.lostSession} is gone` : 'no session is open',
      )
    if (this.fault) throw this.fault
    let renewed: unknown
    try {
      renewed = await this.request('session renew', () =>
        client.session.renew({ id: session.id, timeout: this.requestTimeoutMs }),
      )
    } catch (err) {
      if (statusOf(err) === 404) this.sessionGone(session.id)
      throw this.session ? err : new SessionLostError(STORE, `session ${session.id} is gone`, { cause: err })
    }
    if (!Array.isArray(renewed) || renewed.length === 0) {
      this.sessionGone(session.id)
      throw new SessionLostError(STORE, `session ${session.id} is gone`)
    }
    // A waiting candidate blocks only on the key before its own (so that a hand-over wakes one candidate,
    // not all): it learns of a new holder here, at its keep-alive. The holder blocks on the lock and the
    // line and needs no refresh: its keep-alive is its only request at rest.
    if (this.holding?.session !== session.id) this.wake()
  }

  async join(self: { id: string; address?: string; tags?: Record<string, string> }): Promise<LineEntry> {
    const client = this.ready()
    const session = this.session
    if (!session) throw new SessionLostError(STORE, 'no session is open')
    if (this.fault) throw this.fault
    const key = `${this.linePrefix}/${session.id}`
    const write = async () => {
      const value = JSON.stringify({ id: self.id, address: self.address, tags: self.tags })
      const ok = await this.request('join', () =>
        client.kv.set({ key, value, acquire: session.id, timeout: this.requestTimeoutMs }),
      )
      if (ok !== true) {
        // The acquire of our own line key fails only when the session is gone.
        this.sessionGone(session.id)
        throw new SessionLostError(STORE, `session ${session.id} is gone`)
      }
      this.me = { id: self.id, address: self.address, tags: self.tags, key, session: session.id }
    }
    const read = async () =>
      (await this.request('read line key', () =>
        client.kv.get({ key, consistent: true, timeout: this.requestTimeoutMs }),
      )) as RawKv | undefined
    if (!(this.me && this.me.session === session.id)) await write()
    let raw = await read()
    if (!raw || raw.Session !== session.id) {
      // Our entry was deleted behind our back (by hand, or a tool): joining again must write it anew,
      // or this candidate would wait for ever on a line without it, its session holding the lock.
      await write()
      raw = await read()
    }
    // The index this join's write left: a leave deletes the key only while it still holds this entry.
    if (raw && raw.Session === session.id && this.me?.key === key && this.me.index === undefined)
      this.me.index = BigInt(raw.ModifyIndex)
    this.wake()
    const entry: LineEntry = {
      id: self.id,
      key,
      order: raw ? BigInt(raw.CreateIndex) : 0n,
      token: this.holding?.token ?? 0n,
    }
    if (self.address !== undefined) entry.address = self.address
    if (self.tags !== undefined) entry.tags = self.tags
    return entry
  }

  /**
   * Leaves the line: releases the lock only as this join acquired it, and deletes the line key only
   * while it holds this join's entry. The line key is the same for every join under one session, and
   * the lock is the session's: a leave that timed out (or was retried) can reach Consul after the
   * candidate joined again and acquired anew, and must then touch nothing (the lock release and the
   * delete are each conditional on the ModifyIndex this join saw, checked by Consul atomically).
   */
  async leave(): Promise<void> {
    const client = this.ready()
    if (this.me) this.leaving = { me: this.me, held: this.holding }
    this.me = undefined
    this.holding = undefined
    this.wake()
    const leaving = this.leaving
    if (!leaving) return
    const { me, held } = leaving
    if (held && held.session === me.session) {
      await this.releaseHeld(client, me, held.token)
      leaving.held = undefined
    }
    await this.request('leave', () =>
      client.kv.del({
        key: me.key,
        ...(me.index === undefined ? {} : { cas: me.index.toString() }),
        timeout: this.requestTimeoutMs,
      }),
    )
    if (this.leaving === leaving) this.leaving = undefined
    this.wake()
  }

  async closeSession(): Promise<void> {
    const client = this.ready()
    const session = this.session
    const me = this.me
    this.session = undefined
    this.me = undefined
    this.wake()
    if (!session) return
    // Release before destroying: destroying a session that holds a lock imposes the lock-delay on everyone.
    await this.releaseLock(client, session.id)
    if (me) await this.request('leave', () => client.kv.del({ key: me.key, timeout: this.requestTimeoutMs }))
    await this.request('session destroy', () =>
      client.session.destroy({ id: session.id, timeout: this.requestTimeoutMs }),
    )
    await this.deleteUnheldLock(client)
    this.wake()
  }

  async close(): Promise<void> {
    if (this.closed) return
    if (this.session && this.client) {
      // Leave cleanly if the driver did not: a lingering session would hold the lock for its TTL.
      await this.closeSession().catch(() => {})
    }
    this.closed = true
    this.wake()
    await this.loop?.catch(() => {})
    this.client?.destroy()
    this.agent?.destroy()
  }

  private agent: HttpsAgent | undefined
  /** The HTTPS agent with this backend's CA and client certificate (one per backend). */
  private httpsAgent(): HttpsAgent {
    this.agent ??= new HttpsAgent({ keepAlive: true, ...this.tls })
    return this.agent
  }

  // --- requests ----------------------------------------------------------------------------------

  private ready(): ConsulClient {
    if (this.closed) throw new StoreError('STORE_REFUSED', STORE, 'the backend is closed')
    if (!this.client || !this.events) throw new StoreError('STORE_REFUSED', STORE, 'connect() first')
    return this.client
  }

  /** Runs one request; maps its failure to StoreError, and notes that the agent is reachable or not. */
  private async request<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      const result = await run()
      this.reachable()
      return result
    } catch (err) {
      throw this.mapError(what, err)
    }
  }

  private mapError(what: string, err: unknown): Error {
    if (err instanceof StoreError || err instanceof SessionLostError || err instanceof Aborted) return err
    const e0 = err as { isAbort?: boolean; isValidation?: boolean; message?: string }
    if (e0.isAbort || (e0.isValidation && /ctx already/.test(e0.message ?? ''))) return new Aborted()
    const status = statusOf(err)
    // The client prefixes its messages with "consul: " too; StoreError adds the store's name once.
    const message = ((err as Error).message ?? String(err)).replace(/^consul: /, '').replace(/\s*\n\s*/g, ' ')
    if (status === undefined || status >= 500 || status === 429) {
      const e = new StoreError(
        'STORE_UNAVAILABLE',
        STORE,
        `${what} at ${this.baseUrl}: ${status ? `HTTP ${status}: ` : ''}${message}`,
        { cause: err },
      )
      this.unreachable(e)
      return e
    }
    return new StoreError('STORE_REFUSED', STORE, `${what} at ${this.baseUrl}: HTTP ${status}: ${message}`, {
      cause: err,
    })
  }

  private unreachable(err: StoreError): void {
    if (this.doubt || this.closed) return
    this.doubt = true
    this.events?.suspended(err)
    // The watch loop's blocking queries may hang on a connection that died silently: ask again.
    this.wake()
  }

  /** A request went through after a doubt: resumed if the session is still there, else sessionLost. */
  private reachable(): void {
    if (!this.doubt || this.closed || this.checkingSession) return
    const session = this.session
    if (!session) {
      this.doubt = false
      this.events?.resumed()
      return
    }
    this.checkingSession = true
    void this.client!.session.info({ id: session.id, timeout: this.requestTimeoutMs })
      .then(
        (info) => {
          if (!this.doubt) return
          this.doubt = false
          if (info) {
            this.events?.resumed()
            this.wake()
          } else this.sessionGone(session.id)
        },
        () => {},
      )
      .finally(() => {
        this.checkingSession = false
      })
  }
  private checkingSession = false

  private sessionGone(id: string): void {
    if (this.session?.id !== id) return
    this.session = undefined
    this.lostSession = id
    this.me = undefined
    this.holding = undefined
    this.doubt = false
    this.events?.sessionLost(
      new SessionLostError(STORE, `session ${id} is gone (expired, invalidated or destroyed)`),
    )
    this.wake()
  }

  private async releaseLock(client: ConsulClient, session: string): Promise<void> {
    this.holding = undefined
    const raw = (await this.request('read lock', () =>
      client.kv.get({ key: this.lockKey, consistent: true, timeout: this.requestTimeoutMs }),
    )) as RawKv | undefined
    if (!raw || raw.Session !== session) return
    await this.request('release', () =>
      client.kv.set({
        key: this.lockKey,
        value: decodeValue(raw.Value),
        flags: CONSUL_LOCK_FLAGS.toString(),
        release: session,
        timeout: this.requestTimeoutMs,
      }),
    )
  }

  /**
   * Releases the lock if it is still the one acquired at `token` by this session (a transaction:
   * check-index, then unlock); a lock acquired again since, or already gone, is left alone.
   */
  private async releaseHeld(client: ConsulClient, me: { id: string; session: string }, token: bigint) {
    try {
      await this.request('release', () =>
        client.transaction.create(
          [
            { KV: { Verb: 'check-index', Key: this.lockKey, Index: token } },
            {
              KV: {
                Verb: 'unlock',
                Key: this.lockKey,
                Value: Buffer.from(me.id).toString('base64'),
                Flags: CONSUL_LOCK_FLAGS,
                Session: me.session,
              },
            },
          ],
          { timeout: this.requestTimeoutMs },
        ),
      )
    } catch (err) {
      // 409: the transaction was rolled back (the lock moved on since this join acquired it).
      if (statusOf(err) !== 409) throw err
    }
  }

  /** As `consul lock` does on exit: delete the lock key when it is ours in kind and nobody holds it. */
  private async deleteUnheldLock(client: ConsulClient): Promise<void> {
    const raw = (await this.request('read lock', () =>
      client.kv.get({ key: this.lockKey, consistent: true, timeout: this.requestTimeoutMs }),
    )) as RawKv | undefined
    if (!raw || raw.Session || BigInt(raw.Flags) !== CONSUL_LOCK_FLAGS) return
    await this.request('delete lock', () =>
      client.kv.del({ key: this.lockKey, cas: String(raw.ModifyIndex), timeout: this.requestTimeoutMs }),
    )
  }

  // --- the watch loop ----------------------------------------------------------------------------

  /** Cancels the loop's blocking queries so it reads again now. */
  private wake(): void {
    this.dirty = true
    this.ctx?.emit('cancel')
  }

  private async run(): Promise<void> {
    let backoff = 100
    while (!this.closed) {
      const ctx: CancelCtx = new EventEmitter()
      ctx.setMaxListeners(0)
      ctx.includeResponse = true
      this.ctx = ctx
      this.dirty = false
      try {
        const snap = await this.snapshot()
        if (this.closed) break
        backoff = 100
        // Woken while reading (a join, leave or acquire of this candidate's): the reads may have been
        // answered before that write, and a line without our fresh entry would make the candidate think
        // it gone and join again. Read afresh instead of reporting it.
        if (this.dirty) continue
        this.report(snap)
        if (this.dirty) continue
        await this.step(snap, ctx)
      } catch (err) {
        if (err instanceof Aborted || this.closed) continue
        if (err instanceof StoreError && err.code === 'STORE_REFUSED') this.fault = err
        await this.pause(backoff, ctx)
        backoff = Math.min(backoff * 2, 2000)
      }
    }
  }

  /** Sleeps, or less if woken. */
  private pause(ms: number, ctx: CancelCtx): Promise<void> {
    if (this.dirty) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      function done() {
        clearTimeout(timer)
        ctx.off('cancel', done)
        resolve()
      }
      ctx.once('cancel', done)
    })
  }

  /** Reads the lock key and ballot's line (non-blocking); notes foreign data as the fault. */
  private async snapshot(): Promise<Snapshot> {
    const client = this.client!
    const [lockRes, lineRes] = await Promise.all([
      this.request('read lock', () =>
        client.kv.get({ key: this.lockKey, ctx: includeResponse(), timeout: this.requestTimeoutMs }),
      ) as Promise<[Response, RawKv | undefined]>,
      this.request('read line', () =>
        client.kv.get({
          key: `${this.linePrefix}/`,
          recurse: true,
          ctx: includeResponse(),
          timeout: this.requestTimeoutMs,
        }),
      ) as Promise<[Response, RawKv[] | undefined]>,
    ])
    const lock = lockRes[1] ? toKv(lockRes[1]) : undefined
    const foreign: string[] = []
    if (lock && lock.Flags !== CONSUL_LOCK_FLAGS)
      foreign.push(
        `${this.lockKey} has flags ${lock.Flags}, not ${CONSUL_LOCK_FLAGS}: Existing key does not match lock use (a consul lock -n semaphore or another tool's key?)`,
      )
    const line: Snapshot['line'] = []
    for (const raw of lineRes[1] ?? []) {
      const kv = toKv(raw)
      if (!kv.Session) {
        // A candidate whose session ended (behavior release): not in the line; tidy it away.
        void client.kv
          .del({ key: kv.Key, cas: kv.ModifyIndex.toString(), timeout: this.requestTimeoutMs })
          .catch(() => {})
        continue
      }
      try {
        const meta = JSON.parse(decodeValue(kv.Value)) as { id?: unknown; address?: unknown; tags?: unknown }
        if (typeof meta.id !== 'string') throw new Error('no id')
        const item: Snapshot['line'][number] = { ...kv, id: meta.id }
        if (typeof meta.address === 'string') item.address = meta.address
        if (meta.tags && typeof meta.tags === 'object') item.tags = meta.tags as Record<string, string>
        line.push(item)
      } catch {
        foreign.push(`${kv.Key} is not a ballot candidate entry`)
      }
    }
    line.sort((a, b) => (a.CreateIndex < b.CreateIndex ? -1 : a.CreateIndex > b.CreateIndex ? 1 : 0))
    this.fault = foreign.length > 0 ? new StoreError('STORE_REFUSED', STORE, foreign.join('; ')) : undefined
    return { lock, lockIndex: indexOf(lockRes[0]), line, lineIndex: indexOf(lineRes[0]) }
  }

  /** Emits the line (holder first) if it changed. */
  private report(snap: Snapshot): void {
    const entries: LineEntry[] = []
    const holderSession = snap.lock?.Session
    // Known before the driver hears of this line (and may leave on it): the lock this session holds, so
    // that a leave releases it even when it was taken over from an earlier join of the same session.
    if (snap.lock && holderSession && holderSession === this.session?.id)
      this.holding ??= { session: holderSession, token: snap.lock.ModifyIndex }
    if (snap.lock && holderSession) {
      const ballot = snap.line.find((e) => e.Session === holderSession)
      const mine = this.holding?.session === holderSession
      const head: LineEntry = {
        id: ballot?.id ?? (decodeValue(snap.lock.Value) || holderSession),
        key: ballot?.Key ?? this.lockKey,
        order: 0n,
        token: mine ? this.holding!.token : snap.lock.ModifyIndex,
      }
      if (ballot?.address !== undefined) head.address = ballot.address
      if (ballot?.tags !== undefined) head.tags = ballot.tags
      entries.push(head)
      for (const e of snap.line) {
        if (e.Session === holderSession) continue
        const w: LineEntry = { id: e.id, key: e.Key, order: e.CreateIndex, token: 0n }
        if (e.address !== undefined) w.address = e.address
        if (e.tags !== undefined) w.tags = e.tags
        entries.push(w)
      }
    }
    const text = JSON.stringify(entries, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))
    if (text !== this.lastLine) {
      this.lastLine = text
      this.events?.line(entries)
    }
  }

  /** What this backend does next: acquire if first in line and the lock is free, else block on one key. */
  private async step(snap: Snapshot, ctx: CancelCtx): Promise<void> {
    const client = this.client!
    const me = this.me
    const session = this.session
    const holder = snap.lock?.Session
    if (this.holding && holder !== this.holding.session) this.holding = undefined
    if (!me && session && holder === session.id && !this.fault) {
      // Our session holds the lock, but this candidate is not in line: an acquire that reached Consul
      // after the leave (its answer lost, or late). Nobody else could lead while the session lives, so
      // release it, at the index just read: a later join's acquire changes that index and is left alone.
      // (`me` is set by a join before this loop may acquire for it, so no join of ours holds this lock.)
      this.holding = undefined
      await this.releaseHeld(
        client,
        { id: decodeValue(snap.lock!.Value), session: session.id },
        snap.lock!.ModifyIndex,
      )
      return
    }
    if (!me || !session || me.session !== session.id || this.fault) {
      // Watching only: the lock and the whole line.
      await this.blockAny(ctx, [
        { key: this.lockKey, index: snap.lockIndex },
        { key: `${this.linePrefix}/`, index: snap.lineIndex, recurse: true },
      ])
      return
    }
    if (holder === session.id) {
      this.holding ??= { session: session.id, token: snap.lock!.ModifyIndex }
      await this.blockAny(ctx, [
        { key: this.lockKey, index: snap.lockIndex },
        { key: `${this.linePrefix}/`, index: snap.lineIndex, recurse: true },
      ])
      return
    }
    const mineAt = snap.line.findIndex((e) => e.Key === me.key)
    const before = mineAt > 0 ? snap.line[mineAt - 1] : undefined
    // While the lock is free, someone ahead of us is taking it over: watch the lock too, so that this
    // candidate learns the new leader when it comes (else it would only at its next keep-alive, and a
    // resigner's resign() would wait that long). Once the lock is held again, only the key just before
    // ours is watched: a hand-over wakes the next in line and whoever saw the lock free, not everyone.
    const lockWhileFree = holder ? [] : [{ key: this.lockKey, index: snap.lockIndex }]
    if (before) {
      await this.blockAny(ctx, [{ key: before.Key, index: before.ModifyIndex.toString() }, ...lockWhileFree])
      return
    }
    if (mineAt < 0) {
      // Our line key is not (or no longer) held by our session: wait for the keepAlive to tell.
      await this.blockAny(ctx, [
        { key: `${this.linePrefix}/`, index: snap.lineIndex, recurse: true },
        ...lockWhileFree,
      ])
      return
    }
    if (holder) {
      await this.blockAny(ctx, [{ key: this.lockKey, index: snap.lockIndex }])
      return
    }
    // First in line and the lock is free: race for it (with `consul lock` waiters, if any).
    const acquired = await this.request('acquire', () =>
      client.kv.set({
        key: this.lockKey,
        value: me.id,
        flags: CONSUL_LOCK_FLAGS.toString(),
        acquire: session.id,
        timeout: this.requestTimeoutMs,
      }),
    )
    if (acquired === true) {
      const raw = (await this.request('read lock', () =>
        client.kv.get({ key: this.lockKey, consistent: true, timeout: this.requestTimeoutMs }),
      )) as RawKv | undefined
      if (raw?.Session === session.id) this.holding = { session: session.id, token: BigInt(raw.ModifyIndex) }
      return
    }
    // Refused though free: a lock-delay runs, or someone was faster. Try again soon.
    await this.pause(this.retryMs, ctx)
  }

  /** Blocking queries on several keys at once; returns when the first returns (the others are cancelled). */
  private async blockAny(
    ctx: CancelCtx,
    keys: Array<{ key: string; index: string; recurse?: boolean }>,
  ): Promise<void> {
    const client = this.client!
    const waitMs = this.session ? Math.max(this.waitMs, SESSION_WAIT_MS) : this.waitMs
    const local: CancelCtx = new EventEmitter()
    local.setMaxListeners(0)
    local.includeResponse = true
    const cancel = () => local.emit('cancel')
    ctx.once('cancel', cancel)
    try {
      await Promise.race(
        keys.map((k) =>
          this.request('watch', () =>
            client.kv.get({
              key: k.key,
              recurse: k.recurse,
              index: k.index,
              wait: `${waitMs}ms`,
              ctx: local,
              timeout: waitMs + waitMs / 16 + this.requestTimeoutMs,
            }),
          ),
        ),
      )
    } finally {
      ctx.off('cancel', cancel)
      local.emit('cancel')
    }
  }
}

function includeResponse(): CancelCtx {
  const ctx: CancelCtx = new EventEmitter()
  ctx.includeResponse = true
  return ctx
}

function indexOf(res: Response): string {
  const h = res.headers['x-consul-index']
  return (Array.isArray(h) ? h[0] : h) ?? '0'
}

/** The HTTP status of a failed request (looking through StoreError causes), if it got an answer. */
function statusOf(err: unknown): number | undefined {
  const e = err as { statusCode?: unknown; cause?: unknown } | undefined
  if (!e || typeof e !== 'object') return undefined
  if (typeof e.statusCode === 'number') return e.statusCode
  return e.cause ? statusOf(e.cause) : undefined
}

function positive(field: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new InvalidOptionsError(field, 'must be a positive number of ms')
  return value
}

function nonNegative(field: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new InvalidOptionsError(field, 'must be 0 or more ms')
  return value
}
