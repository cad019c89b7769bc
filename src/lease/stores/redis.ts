/**
 * The lease backend on Redis (one server, or a master found through Sentinel), with `ioredis`. Redis has
 * no sessions, no line of candidates and no election recipe of its own, so this module defines one, in
 * Lua scripts that each run atomically at the server (./redis-scripts.ts):
 *
 *   - a session is a hash `ballot:{E}:session:<id>` (random 128-bit id) that expires after the TTL
 *     unless a keep-alive (PEXPIRE, in a script that first checks the hash is still there) renews it;
 *   - the line is a sorted set `ballot:{E}:line` of session ids by join order (a counter); an entry
 *     lives as long as its session (entries of expired sessions are skipped when read and removed by
 *     the next change, or by the holder's next keep-alive);
 *   - the lock is `ballot:{E}:leader`, taken with `SET leader <session id> NX PX <the session's PTTL>`
 *     only by the first live candidate in line, in the same script that INCRs the fencing-token counter
 *     `ballot:{E}:token` (which only grows, across leaderships and across expiry of every other key);
 *     renewed with the session by the holder's keep-alive; released (DEL, after checking the value is
 *     its own session id) by its leave or close, in the same script that hands it to the next in line;
 *   - every change publishes the new line (JSON) on `ballot:{E}:changes`; each candidate and follower
 *     subscribes, so a hand-over reaches the next in line in one message, no poll, and nobody else has to
 *     act (the script already gave it the lock; the others only update their view: no herd of requests);
 *   - a holder that crashed: its lock expires with its session. The first candidate in line arms one
 *     timer at the lock's PTTL (a hint of when to look, never trusted for safety: SET NX at the server
 *     decides) and then runs the acquire script; a keyspace notification of the lock's expiry (when the
 *     server has `notify-keyspace-events` with `Kx` or `KA`) wakes it too, and every keep-alive of any
 *     candidate takes a free lock for the first in line as a backstop.
 *
 * The line reported: the holder first (order 0, its token), then the other live candidates in join order
 * (token 0). While nobody holds the lock the line reported is empty (the first in line is not the leader
 * until it holds the lock). A lock holder that is not a ballot session (a foreign `SET NX` on the key) is
 * reported with its value as id.
 *
 * Time: the backend reports send times only; the lease machine decides on its own clock. The lock and
 * session expire at the server no sooner than TTL after a confirmed keep-alive was sent, so the machine's
 * rule (validity = send + TTL × (1 − drift) − margin) holds as on the other stores. What Redis says of
 * time (PTTL) only schedules a look.
 *
 * Replication: Redis replicates asynchronously. After a Sentinel (or Cluster) failover the new master may
 * lack the last writes: the lock, a session, or the last token INCR. Then a second candidate may take the
 * lock while the old holder still believes it leads (two holders for up to a TTL), and the token counter
 * may start again from the new master's clock. Only a fencing check at the resource (refusing a token not
 * above the last one it saw) protects against that. WAIT is not used: it would not make it safe either.
 * A single server restarted without the lock (no persistence) is the same case for a holder that was cut
 * off by the network rather than disconnected by the restart.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { ConnectionOptions } from 'node:tls'
import type { Redis as RedisClient, RedisOptions } from 'ioredis'
import {
  InvalidOptionsError,
  SessionLostError,
  StoreRefusedError,
  StoreUnavailableError,
} from '../../errors.js'
import type { BackendEvents, BackendSession, LeaseBackend, LineEntry } from '../backend.js'
import { loadOptional } from './optional.js'
import { CLOSE_SESSION, JOIN, KEEP_ALIVE, LEAVE, OPEN_SESSION, READ, TRY_ACQUIRE } from './redis-scripts.js'

const STORE = 'redis'

/** How a Redis backend reaches the server and which election it takes part in. */
export interface RedisBackendOptions {
  /** The election's name: its keys are `ballot:{<election>}:...` (no `{` or `}` in it). */
  election: string
  /** One server as host:port (default 127.0.0.1:6379); ignored with `sentinels`. */
  host?: string | undefined
  /** Sentinels as host:port; the master is found by `sentinelMaster` and followed across failovers. */
  sentinels?: readonly string[] | undefined
  /** The master's name at the sentinels. Default 'mymaster'. */
  sentinelMaster?: string | undefined
  /** Database number (SELECT). Default 0. */
  db?: number | undefined
  /** ACL user name (Redis 6+), if any. */
  username?: string | undefined
  /** Password (AUTH), never logged. */
  password?: string | undefined
  /** TLS (rediss://): true, or Node's TLS options (a private CA may also come from NODE_EXTRA_CA_CERTS). */
  tls?: boolean | ConnectionOptions | undefined
  /** How long a connection attempt may take (ms). Default 5000. */
  connectTimeoutMs?: number | undefined
}

type IoRedisCtor = new (opts: RedisOptions) => RedisClient

let ioredisModule: Promise<IoRedisCtor> | undefined
function loadIoRedis(): Promise<IoRedisCtor> {
  ioredisModule ??= loadOptional('ioredis', STORE, async () => {
    const mod = (await import('ioredis')) as unknown as { Redis?: IoRedisCtor; default?: IoRedisCtor }
    return (mod.Redis ?? mod.default) as IoRedisCtor
  })
  return ioredisModule
}

/** The Redis keys and pub/sub channel of one election (all in the hash slot of `{<election>}`). */
export interface RedisElectionKeys {
  /** The lock: a string holding the holder's session id, with a PX expiry. */
  leader: string
  /** The fencing-token counter. */
  token: string
  /** The line: a sorted set of session ids by join order. */
  line: string
  /** The join-order counter. */
  seq: string
  /** The change counter that orders replies and messages. */
  version: string
  /** Prefix of the session hashes (`<prefix><session id>`). */
  sessionPrefix: string
  /** The channel every change publishes the new line on. */
  channel: string
}

/** The Redis keys and channel of an election. */
export function redisKeys(election: string): RedisElectionKeys {
  const base = `ballot:{${election}}`
  return {
    leader: `${base}:leader`,
    token: `${base}:token`,
    line: `${base}:line`,
    seq: `${base}:seq`,
    version: `${base}:version`,
    sessionPrefix: `${base}:session:`,
    channel: `${base}:changes`,
  }
}

/** One script's reply or message: the line as the server saw it. */
interface Snapshot {
  v: string
  holder: string
  pttl: number
  token: string
  line: Array<{ sid: string; id: string; seq: string; address: string; tags: string; token: string }>
}

function parseSnapshot(text: string): Snapshot {
  const s = JSON.parse(text) as Snapshot
  // cjson encodes an empty table as {}.
  if (!Array.isArray(s.line)) s.line = []
  return s
}

function hostPort(hp: string): { host: string; port: number } {
  const i = hp.lastIndexOf(':')
  const host = hp.slice(0, i).replace(/^\[|\]$/g, '')
  return { host, port: Number(hp.slice(i + 1)) }
}

/** A candidate's or follower's view of one election on Redis (the recipe above). */
export class RedisBackend implements LeaseBackend {
  readonly store = STORE
  private readonly opts: RedisBackendOptions
  private readonly keys: RedisElectionKeys
  private client: RedisClient | undefined
  private sub: RedisClient | undefined
  private events: BackendEvents | undefined
  private watchOnly = false
  private closed = false
  private session: { sid: string; ttlMs: number } | undefined
  private joinedSeq: string | undefined
  private lastVersion = -1n
  private doubt = false
  private hadReady = false
  private hintTimer: NodeJS.Timeout | undefined
  private last: Snapshot | undefined
  private checking = false

  constructor(opts: RedisBackendOptions) {
    if (!opts.election || /[{}\0]/.test(opts.election))
      throw new InvalidOptionsError('election', 'must be a non-empty name without "{", "}"')
    if (opts.db !== undefined && !(Number.isInteger(opts.db) && opts.db >= 0))
      throw new InvalidOptionsError('db', `must be a database number >= 0, got ${opts.db}`)
    this.opts = opts
    this.keys = redisKeys(opts.election)
  }

  /** Where the server is (host:port, or the sentinels and master name), for messages. */
  get target(): string {
    const db = this.opts.db ? `/${this.opts.db}` : ''
    if (this.opts.sentinels?.length)
      return `sentinel ${this.opts.sentinels.join(',')} master ${this.opts.sentinelMaster ?? 'mymaster'}${db}`
    return `${this.opts.host ?? '127.0.0.1:6379'}${db}`
  }

  /** This candidate's session key while it has a session. */
  get key(): string | undefined {
    return this.session ? this.keys.sessionPrefix + this.session.sid : undefined
  }

  async connect(events: BackendEvents, opts: { watchOnly: boolean }): Promise<void> {
    this.events = events
    this.watchOnly = opts.watchOnly
    const Redis = await loadIoRedis()
    const base = this.clientOptions()
    const client = new Redis(base)
    const sub = new Redis(base)
    this.client = client
    this.sub = sub
    let lastError: unknown
    for (const c of [client, sub]) {
      c.on('error', (err) => {
        lastError = err
        guardStream(c)
      })
      // A later drop is reported with its own error, not one from before this connection was made.
      c.on('ready', () => {
        lastError = undefined
      })
    }
    try {
      await Promise.all([client.connect(), sub.connect()])
    } catch (err) {
      throw this.toError('connect', lastError ?? err)
    }
    client.on('close', () => this.unreachable(lastError))
    sub.on('close', () => this.unreachable(lastError))
    // A successful request does not end a doubt by itself: reconnected() checks the session first.
    client.on('ready', () => this.reconnected())
    sub.on('ready', () => this.reconnected())
    sub.on('message', (channel: string, text: string) => this.onMessage(channel, text))
    await this.call('subscribe', () => sub.subscribe(this.keys.channel))
    // Keyspace notifications are a bonus: an ACL user without that channel still works (by the hint).
    await sub.subscribe(`__keyspace@${this.opts.db ?? 0}__:${this.keys.leader}`).catch(() => undefined)
    this.hadReady = true
    // The first read: a bad address, a refusal or foreign data fails here, with one error.
    const snap = parseSnapshot(await this.run('read', READ, ''))
    this.report(snap)
  }

  async openSession(ttlMs: number): Promise<BackendSession> {
    const ttl = Math.max(1, Math.ceil(ttlMs))
    const sid = randomBytes(16).toString('hex')
    await this.run('open session', OPEN_SESSION, sid, String(ttl))
    this.session = { sid, ttlMs: ttl }
    this.joinedSeq = undefined
    return { id: sid, ttlMs: ttl }
  }

  async keepAlive(): Promise<void> {
    const s = this.session
    if (!s) throw new SessionLostError(STORE, 'no session is open')
    const res = JSON.parse(await this.run('keep-alive', KEEP_ALIVE, s.sid)) as {
      held: boolean
      pttl: number
      holder: string
    }
    if (this.session === s && this.last) {
      if (res.holder !== this.last.holder) this.reread()
      else {
        // Only the hint of when the lock may next be free.
        this.last = { ...this.last, pttl: res.pttl }
        this.armHint()
      }
    }
  }

  async join(self: { id: string; address?: string; tags?: Record<string, string> }): Promise<LineEntry> {
    const s = this.session
    if (!s) throw new SessionLostError(STORE, 'no session is open')
    const snap = parseSnapshot(
      await this.run(
        'join',
        JOIN,
        s.sid,
        self.id,
        self.address ?? '',
        self.tags === undefined ? '' : JSON.stringify(self.tags),
      ),
    )
    const mine = snap.line.find((e) => e.sid === s.sid)
    if (!mine) throw new SessionLostError(STORE, `session ${s.sid} is gone: the join was not written`)
    this.joinedSeq = mine.seq
    this.report(snap)
    // A message newer than this reply may have been reported already (the lock given to us meanwhile):
    // the entry returned must be the one in the newest line reported, with its order and token.
    const key = this.keys.sessionPrefix + s.sid
    const entry = this.last ? this.toLine(this.last).find((e) => e.key === key) : undefined
    return entry ?? this.waiting(mine)
  }

  async leave(): Promise<void> {
    const s = this.session
    if (!s) return
    const seq = this.joinedSeq ?? ''
    this.joinedSeq = undefined
    this.report(parseSnapshot(await this.run('leave', LEAVE, s.sid, seq)))
  }

  async closeSession(): Promise<void> {
    const s = this.session
    if (!s) return
    this.report(parseSnapshot(await this.run('close session', CLOSE_SESSION, s.sid)))
    this.session = undefined
    this.joinedSeq = undefined
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearTimeout(this.hintTimer)
    for (const c of [this.sub, this.client]) {
      if (!c) continue
      c.removeAllListeners('close')
      c.removeAllListeners('ready')
      c.on('error', () => {})
      await Promise.race([c.quit().catch(() => undefined), new Promise((r) => setTimeout(r, 500).unref())])
      c.disconnect()
    }
  }

  // ---- the line ---------------------------------------------------------------------------------

  private waiting(e: Snapshot['line'][number]): LineEntry {
    const entry: LineEntry = {
      id: e.id,
      key: this.keys.sessionPrefix + e.sid,
      order: BigInt(e.seq),
      token: 0n,
    }
    if (e.address) entry.address = e.address
    const tags = parseTags(e.tags)
    if (tags) entry.tags = tags
    return entry
  }

  private toLine(snap: Snapshot): LineEntry[] {
    if (!snap.holder) return []
    const held = snap.line.find((e) => e.sid === snap.holder)
    let head: LineEntry
    if (held) {
      head = { ...this.waiting(held), order: 0n, token: BigInt(held.token || '0') }
    } else {
      // Not a ballot session: someone else's SET NX on the lock key.
      head = { id: snap.holder, key: this.keys.leader, order: 0n, token: BigInt(snap.token || '0') }
    }
    return [head, ...snap.line.filter((e) => e.sid !== snap.holder).map((e) => this.waiting(e))]
  }

  /** Reports a line unless a newer one was already reported. */
  private report(snap: Snapshot): void {
    if (this.closed) return
    const v = BigInt(snap.v || '0')
    if (v < this.lastVersion) return
    this.last = snap
    this.armHint()
    if (v === this.lastVersion) return
    this.lastVersion = v
    this.events?.line(this.toLine(snap))
  }

  private onMessage(channel: string, text: string): void {
    if (this.closed) return
    if (channel === this.keys.channel) {
      try {
        this.report(parseSnapshot(text))
      } catch {
        // not ours: ignored
      }
      return
    }
    // A keyspace notification on the lock key: it expired (or was deleted by hand).
    if (text === 'expired' || text === 'del') this.tryAcquire()
  }

  /** True when this candidate is the first live candidate in line, not holding the lock. */
  private firstInLine(snap: Snapshot): boolean {
    const s = this.session
    if (!s || this.watchOnly) return false
    const first = snap.line.find((e) => e.sid !== snap.holder)
    return first?.sid === s.sid && snap.holder !== s.sid
  }

  /** The first in line looks again when the lock's PTTL runs out (a crashed holder's lock expires then). */
  private armHint(): void {
    clearTimeout(this.hintTimer)
    const snap = this.last
    if (!snap || !this.firstInLine(snap)) return
    const wait = snap.holder ? (snap.pttl > 0 ? snap.pttl + 2 : -1) : 0
    if (wait < 0) return
    this.hintTimer = setTimeout(() => this.tryAcquire(), wait)
    this.hintTimer.unref?.()
  }

  private tryAcquire(): void {
    if (this.closed || this.watchOnly || !this.session) return
    if (this.last && !this.firstInLine(this.last)) return
    this.run('acquire', TRY_ACQUIRE).then(
      (text) => this.report(parseSnapshot(text)),
      () => {
        // The connection is in doubt (reported) or the store refused; the keep-alives go on trying.
      },
    )
  }

  // ---- connection -------------------------------------------------------------------------------

  private clientOptions(): RedisOptions {
    const o = this.opts
    const common: RedisOptions = {
      db: o.db ?? 0,
      username: o.username,
      password: o.password,
      lazyConnect: true,
      connectTimeout: o.connectTimeoutMs ?? 5000,
      // Fail at once while disconnected, never resend later: the driver notes send times and retries.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      enableReadyCheck: true,
      retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
    }
    if (o.tls) common.tls = o.tls === true ? {} : o.tls
    if (o.sentinels?.length) {
      return {
        ...common,
        sentinels: o.sentinels.map(hostPort),
        name: o.sentinelMaster ?? 'mymaster',
        sentinelRetryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
        enableTLSForSentinelMode: !!o.tls,
      }
    }
    return { ...common, ...hostPort(o.host ?? '127.0.0.1:6379') }
  }

  private unreachable(err: unknown): void {
    if (this.doubt || this.closed || !this.hadReady) return
    this.doubt = true
    this.events?.suspended(
      this.toError('connection', err ?? new Error('the connection closed')) as StoreUnavailableError,
    )
  }

  /**
   * A connection is ready again: once both are, read afresh (messages may have been missed meanwhile);
   * resumed if the session survived, else lost.
   */
  private reconnected(): void {
    if (this.closed || !this.doubt || this.checking) return
    if (this.client?.status !== 'ready' || this.sub?.status !== 'ready') return
    this.checking = true
    const sid = this.session?.sid ?? ''
    this.run('read', READ, sid)
      .then(
        (text) => {
          this.doubt = false
          // Versions count again from this read (the server may have lost them, or be another one).
          this.lastVersion = -1n
          if (!sid) {
            this.report(parseSnapshot(text))
            this.events?.resumed()
            return
          }
          const res = JSON.parse(text) as { snap: string; alive: boolean }
          this.report(parseSnapshot(res.snap))
          if (this.session?.sid !== sid) return
          if (res.alive) this.events?.resumed()
          else {
            this.session = undefined
            this.joinedSeq = undefined
            this.events?.sessionLost(
              new SessionLostError(STORE, `session ${sid} is gone (expired, or the server lost it)`),
            )
          }
        },
        () => {
          // Still in doubt: the next 'ready' (or keep-alive) tries again.
        },
      )
      .finally(() => {
        this.checking = false
      })
  }

  /** A keep-alive showed another holder than the line last reported: a message was missed; read again. */
  private reread(): void {
    if (this.closed || this.rereading) return
    this.rereading = true
    this.run('read', READ, '')
      .then(
        (text) => this.report(parseSnapshot(text)),
        () => undefined,
      )
      .finally(() => {
        this.rereading = false
      })
  }
  private rereading = false

  /** Runs one script (EVALSHA, EVAL when the server does not know it). */
  private async run(what: string, lua: string, ...argv: string[]): Promise<string> {
    const client = this.need()
    const k = this.keys
    return this.call(what, async () => {
      const args = [k.leader, k.token, k.line, k.seq, k.version, k.sessionPrefix, k.channel, ...argv]
      return String(await evalScript(client, lua, args))
    })
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      const out = await fn()
      if (this.doubt) this.reconnected()
      return out
    } catch (err) {
      const mapped = this.toError(what, err)
      if (mapped instanceof SessionLostError && this.session) {
        this.session = undefined
        this.joinedSeq = undefined
      }
      if (mapped instanceof StoreUnavailableError && !this.closed) this.unreachable(err)
      throw mapped
    }
  }

  private need(): RedisClient {
    if (this.closed) throw new StoreUnavailableError(STORE, 'redis: the backend is closed')
    if (!this.client) throw new StoreUnavailableError(STORE, 'redis: not connected')
    return this.client
  }

  /** Maps ioredis' errors to the driver's (one line, never a password). */
  private toError(what: string, err: unknown): Error {
    if (err instanceof StoreUnavailableError || err instanceof StoreRefusedError) return err
    if (err instanceof SessionLostError) return err
    const raw = ((err as Error)?.message ?? String(err)).replace(/\s+/g, ' ').trim()
    const message = this.opts.password ? raw.split(this.opts.password).join('***') : raw
    const where = `redis ${this.target}`
    if (/^SESSION_LOST /.test(message))
      return new SessionLostError(STORE, `${where}: ${message.slice('SESSION_LOST '.length)}`, {
        cause: err,
      })
    if (/^FOREIGN /.test(message))
      return new StoreRefusedError(
        STORE,
        `${where}: ${message.slice('FOREIGN '.length)} (choose another election name, or remove it)`,
        { cause: err },
      )
    if (/^(WRONGPASS|NOAUTH|NOPERM|ERR AUTH|ERR invalid password|WRONGTYPE|ERR DB index)/i.test(message))
      return new StoreRefusedError(STORE, `${where} refused ${what}: ${message}`, { cause: err })
    return new StoreUnavailableError(STORE, `${where} unavailable (${what}): ${message}`, { cause: err })
  }
}

const guarded = new WeakSet<object>()

/**
 * ioredis listens for only one 'error' on each socket (`stream.once`); a TLS socket whose certificate
 * was refused gets a second one (the server's alert), which would be an uncaught exception. Once a socket
 * has had its first error, a listener that ignores the rest is added (ioredis has reported the first).
 */
function guardStream(c: RedisClient): void {
  const stream = (c as unknown as { stream?: NodeJS.EventEmitter }).stream
  if (!stream || guarded.has(stream)) return
  guarded.add(stream)
  stream.on('error', () => {})
}

/** Script SHA1s, computed once per script text. */
const shas = new Map<string, string>()

async function evalScript(client: RedisClient, lua: string, args: string[]): Promise<unknown> {
  let sha = shas.get(lua)
  if (!sha) {
    sha = createHash('sha1').update(lua).digest('hex')
    shas.set(lua, sha)
  }
  try {
    return await client.evalsha(sha, 5, ...args)
  } catch (err) {
    // A restarted (or failed-over) server has forgotten the script.
    if (/NOSCRIPT/.test((err as Error)?.message ?? '')) return client.eval(lua, 5, ...args)
    throw err
  }
}

function parseTags(text: string): Record<string, string> | undefined {
  if (!text) return undefined
  try {
    const t = JSON.parse(text) as unknown
    return t && typeof t === 'object' && !Array.isArray(t) ? (t as Record<string, string>) : undefined
  } catch {
    return undefined
  }
}
