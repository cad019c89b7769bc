/**
 * The lease backend on PostgreSQL, with the `pg` package (an optional peer dependency): a lease row per
 * election, taken and renewed in one statement under the database's own clock, a fencing token from a
 * sequence, and LISTEN/NOTIFY for a fast hand-over. The tables and statements are in ./postgres-sql.ts.
 *
 *   - A session is a row in `<schema>.candidates` with an expiry (database clock + TTL); a keepAlive is
 *     one UPDATE that renews it only while it has not expired, and, in the same statement with the same
 *     expiry, the lease it holds. A session that expired is gone for good (SESSION_LOST).
 *   - The line: the candidates' rows with `joined` set (from a sequence at each join), live ones only,
 *     in that order. The first live candidate in line takes the lease when it is free (released, or
 *     expired by the database's clock), with a new token (nextval), in one INSERT ... ON CONFLICT ...
 *     WHERE that the database judges on the locked row. The lease expires when its holder's session does.
 *   - The line reported: the lease's holder first (order 0, its token), then the live candidates waiting,
 *     by `joined` (token 0). While nobody holds a live lease the line is empty (as on Consul): a waiting
 *     candidate is not a leader until it took the lease.
 *   - Hand-over: a leave or a stop releases the lease and NOTIFYs `<schema>.lease` with the election's
 *     name; every backend LISTENs on a dedicated connection, reads again and, when first in line, takes.
 *     A crashed holder's lease runs out at the database: each waiting backend sets a timer at the next
 *     expiry the database reports (no poll), and every keepAlive reads the line too (and takes if due).
 *   - PgBouncer in transaction mode (or any pool): every statement stands alone; no advisory lock, no
 *     prepared statement, no session setting. LISTEN needs a session: at connect the backend checks its
 *     LISTEN connection by a NOTIFY it sends itself; when that does not come back (PgBouncer in
 *     transaction mode), it closes that connection and says so (`notifications` is 'off'); hand-over
 *     then waits for the next keepAlive of the next candidate (at most TTL/3) or the lease's expiry.
 *     Give `listen` a connection string straight to PostgreSQL to keep LISTEN while statements go
 *     through PgBouncer.
 *
 * Nothing the database says about time is trusted by the driver: the backend reports only that a
 * statement was confirmed, and the lease machine counts validity from its own send time. The database's
 * remaining times only decide when to look again.
 */
import { randomUUID } from 'node:crypto'
import type { ClientConfig, Client as PgClient, Pool, PoolClient } from 'pg'
import {
  InvalidOptionsError,
  SessionLostError,
  StoreError,
  StoreRefusedError,
  StoreUnavailableError,
} from '../../errors.js'
import type { BackendEvents, BackendSession, LeaseBackend, LineEntry } from '../backend.js'
import { loadOptional } from './optional.js'
import { postgresSql, type Sql } from './postgres-sql.js'

const STORE = 'postgres'
/** The schema ballot's tables live in unless told otherwise. */
export const DEFAULT_POSTGRES_SCHEMA = 'ballot'
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/

/** Where PostgreSQL is, as `pg` takes it (no connection string: a password never sits in a URL here). */
export interface PostgresConnection {
  /** Host name or address. Default 127.0.0.1. */
  host?: string | undefined
  /** Port. Default 5432. */
  port?: number | undefined
  /** Role to log in as. */
  user?: string | undefined
  /** Its password (never logged). */
  password?: string | undefined
  /** Database. Default: the role's name (as libpq). */
  database?: string | undefined
  /** TLS, as `pg` takes it: true, or the options of `tls.connect` (ca, rejectUnauthorized...). */
  ssl?: boolean | Record<string, unknown> | undefined
}

/** Options of `new PostgresBackend()`. */
export interface PostgresBackendOptions {
  /** Where PostgreSQL (or PgBouncer) is. */
  connection: PostgresConnection
  /** The election's name: its row in `<schema>.leases`, its candidates in `<schema>.candidates`. */
  election: string
  /** The schema of ballot's tables (created if missing, unless `createSchema` is false). Default 'ballot'. */
  schema?: string | undefined
  /** Create the schema and tables on first use when missing (`ballot migrate` does it apart). Default true. */
  createSchema?: boolean | undefined
  /**
   * The LISTEN connection: true (default) the same server as `connection`; false none (hand-over at the
   * next keepAlive, at most TTL/3); or where to LISTEN instead (PostgreSQL itself when `connection` is
   * PgBouncer in transaction mode, which cannot LISTEN).
   */
  listen?: boolean | PostgresConnection | undefined
  /** A statement (or getting a connection for it) unanswered this long fails with STORE_UNAVAILABLE (ms). Default 5000. */
  requestTimeoutMs?: number | undefined
  /** Connections in the statement pool. Default 2 (statements run one at a time; a spare for a stuck one). */
  poolSize?: number | undefined
}

type PgModule = typeof import('pg')

let pgModule: Promise<PgModule> | undefined
function loadPg(): Promise<PgModule> {
  pgModule ??= loadOptional('pg', STORE, async () => {
    const mod = (await import('pg')) as PgModule & { default?: PgModule }
    return mod.default ?? mod
  })
  return pgModule
}

/** The state one statement returns (see stateSelect in ./postgres-sql.ts). */
interface State {
  lease: { holder: string; id: string | null; token: string } | null
  line: Array<{
    session: string
    id: string
    address: string | null
    tags: Record<string, string> | null
    joined: string
  }>
  wake: number | string | null
  alive: boolean
  holding: boolean
}

/** Classifies pg's errors: SQLSTATE classes that a retry may cure are "unavailable". */
function isTransient(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code
  if (typeof code !== 'string') return true // socket errors, timeouts, "Connection terminated"
  if (/^E[A-Z]+$/.test(code)) return true // ECONNREFUSED, ECONNRESET, ETIMEDOUT...
  // 08 connection exception, 53 insufficient resources, 57P0x shutdown/cannot connect, 40 rollbacks, 55P03 lock
  return /^(08|53|57P0|40|55P03|58)/.test(code)
}

export class PostgresBackend implements LeaseBackend {
  readonly store = STORE
  /** host:port/database, for messages (never the user or password). */
  readonly target: string
  /** The schema of ballot's tables. */
  readonly schema: string
  /** The election's name. */
  readonly election: string
  /** The NOTIFY channel of this schema: `<schema>.lease`. */
  readonly channel: string
  private readonly opts: PostgresBackendOptions
  private readonly sql: Sql
  private readonly timeoutMs: number
  private pg: PgModule | undefined
  private pool: Pool | undefined
  private listener: PgClient | undefined
  private listenState: 'on' | 'off' | 'starting' = 'off'
  private events: BackendEvents | undefined
  private watchOnly = false
  private closed = false
  private session: BackendSession | undefined
  private me: { id: string } | undefined
  /** The `joined` of this session's entry, as its last join answered (guards a late leave). */
  private joined: string | undefined
  private holding: bigint | undefined
  private doubt = false
  private lastLine = ''
  private chain: Promise<unknown> = Promise.resolve()
  private refreshing = false
  private refreshAgain = false
  /**
   * Joins, leaves and session closes begun so far. A read begun before one of them may be answered
   * after it (the pool runs statements side by side): its line could lack a fresh entry, or hold one
   * just left, and is read again rather than reported.
   */
  private ownWrites = 0
  private wakeTimer: NodeJS.Timeout | undefined
  private listenTimer: NodeJS.Timeout | undefined
  private listenFailures = 0
  private probe: { payload: string; resolve: () => void } | undefined

  constructor(opts: PostgresBackendOptions) {
    if (!opts.election || opts.election.includes('\0'))
      throw new InvalidOptionsError('election', 'must be a non-empty name')
    const schema = opts.schema ?? DEFAULT_POSTGRES_SCHEMA
    if (!SCHEMA_NAME.test(schema))
      throw new InvalidOptionsError(
        'schema',
        `must be a plain identifier (letters, digits, _ and $, up to 63, not starting with a digit), got "${schema}"`,
      )
    const timeout = opts.requestTimeoutMs ?? 5000
    if (!(Number.isFinite(timeout) && timeout > 0))
      throw new InvalidOptionsError('requestTimeoutMs', `must be > 0 ms, got ${timeout}`)
    this.opts = opts
    this.schema = schema
    this.election = opts.election
    this.channel = `${schema}.lease`
    this.sql = postgresSql(schema)
    this.timeoutMs = timeout
    const c = opts.connection
    this.target = `${c.host ?? '127.0.0.1'}:${c.port ?? 5432}/${c.database ?? c.user ?? ''}`
  }

  /** Whether LISTEN works: 'on' (hand-over by NOTIFY) or 'off' (by keepAlive and expiry timers). */
  get notifications(): 'on' | 'off' {
    return this.listenState === 'on' ? 'on' : 'off'
  }

  /** The key of a session's entry in the line as reported: `<election>/<session>`. */
  keyOf(session: string): string {
    return `${this.election}/${session}`
  }

  async connect(events: BackendEvents, opts: { watchOnly: boolean }): Promise<void> {
    if (this.closed) throw new StoreRefusedError(STORE, 'the backend is closed')
    this.watchOnly = opts.watchOnly
    this.pg = await loadPg()
    const pool = new this.pg.Pool({
      ...this.clientConfig(this.opts.connection),
      max: this.opts.poolSize ?? 2,
      idleTimeoutMillis: 30_000,
    })
    // An idle connection that breaks (server restarted) is reported here; the next statement reconnects.
    pool.on('error', () => {})
    // A connection the pool already dropped (a statement timed out) may still report the server's end.
    pool.on('connect', (client) => client.on('error', () => {}))
    this.pool = pool
    try {
      await this.ensureSchema()
      const state = await this.run('read', this.sql.read, [this.election])
      this.events = events
      this.report(state)
    } catch (err) {
      this.pool = undefined
      await pool.end().catch(() => {})
      throw this.refineConnectError(err)
    }
    if (this.opts.listen !== false) await this.startListening(true)
  }

  async openSession(ttlMs: number): Promise<BackendSession> {
    const id = randomUUID()
    const ttl = Math.max(1, Math.round(ttlMs))
    await this.run('session open', this.sql.openSession, [this.election, id, '', ttl])
    this.session = { id, ttlMs: ttl }
    this.me = undefined
    this.joined = undefined
    this.holding = undefined
    return { ...this.session }
  }

  async keepAlive(): Promise<void> {
    const session = this.session
    if (!session) throw new SessionLostError(STORE, 'no session is open')
    const state = await this.run('keep-alive', this.sql.keepAlive, [
      this.election,
      session.id,
      session.ttlMs,
      this.channel,
    ])
    if (!state.alive) {
      this.sessionGone(session.id)
      throw new SessionLostError(STORE, `${this.where()}: session ${session.id} has expired`)
    }
    if (this.holding !== undefined && !state.holding) {
      // Cannot happen while the lease expires with its holder's session; never lead on a doubt.
      this.sessionGone(session.id)
      throw new SessionLostError(STORE, `${this.where()}: the lease of session ${session.id} is gone`)
    }
    this.report(state)
  }

  async join(self: { id: string; address?: string; tags?: Record<string, string> }): Promise<LineEntry> {
    const session = this.session
    if (!session) throw new SessionLostError(STORE, 'no session is open')
    this.ownWrites++
    const state = await this.run('join', this.sql.join, [
      this.election,
      session.id,
      self.id,
      self.address ?? null,
      self.tags ? JSON.stringify(self.tags) : null,
      this.channel,
    ])
    const mine = state.line.find((e) => e.session === session.id)
    if (!state.alive || !mine) {
      this.sessionGone(session.id)
      throw new SessionLostError(STORE, `${this.where()}: session ${session.id} has expired`)
    }
    this.me = { id: self.id }
    this.joined = mine.joined
    this.report(state)
    const entry: LineEntry = {
      id: self.id,
      key: this.keyOf(session.id),
      order: state.holding ? 0n : BigInt(mine.joined),
      token: state.holding && state.lease ? BigInt(state.lease.token) : 0n,
    }
    if (self.address !== undefined) entry.address = self.address
    if (self.tags !== undefined) entry.tags = self.tags
    return entry
  }

  async leave(): Promise<void> {
    const session = this.session
    // Only the entry and the lease this leave means: one that times out here may still be applied at the
    // server after a later join (and take) under the same session, and must then change nothing.
    const joined = this.joined
    const token = this.holding
    this.me = undefined
    this.joined = undefined
    this.holding = undefined
    if (!session) return
    this.ownWrites++
    // The line after the leave is reported before the leave resolves: the driver then never takes the
    // next in line (not yet holding the lease) for the head.
    this.report(
      await this.run('leave', this.sql.leave, [
        this.election,
        session.id,
        this.channel,
        joined ?? null,
        token === undefined ? null : token.toString(),
      ]),
    )
  }

  async closeSession(): Promise<void> {
    const session = this.session
    this.session = undefined
    this.me = undefined
    this.joined = undefined
    this.holding = undefined
    if (!session) return
    this.ownWrites++
    this.report(
      await this.run('session close', this.sql.closeSession, [this.election, session.id, this.channel]),
    )
  }

  async close(): Promise<void> {
    if (this.closed) return
    // Leave cleanly if the driver did not: a lingering session would hold the lease until it expires.
    if (this.session && this.pool) await this.closeSession().catch(() => {})
    this.closed = true
    clearTimeout(this.wakeTimer)
    clearTimeout(this.listenTimer)
    const listener = this.listener
    this.listener = undefined
    this.listenState = 'off'
    await Promise.all([
      listener?.end().catch(() => {}),
      this.chain.catch(() => {}).then(() => this.pool?.end().catch(() => {})),
    ])
  }

  // ---- the schema -------------------------------------------------------------------------------

  /**
   * Creates the schema, sequences and tables when missing, in one transaction under a transaction-level
   * advisory lock (so concurrent first users do not trip over each other; released at commit, so it
   * works through PgBouncer in transaction mode). Does nothing, and needs no CREATE right, when they exist.
   */
  private async ensureSchema(): Promise<void> {
    const rows = await this.rows<{ ready: boolean }>('schema check', this.sql.exists, [])
    if (rows[0]?.ready) return
    if (this.opts.createSchema === false)
      throw new StoreRefusedError(
        STORE,
        `${this.where()}: ballot's tables are not in schema "${this.schema}": run \`ballot migrate --store ... --schema ${this.schema}\``,
      )
    try {
      await createTables(this.need(), this.schema, this.timeoutMs)
    } catch (err) {
      throw this.mapError(`creating schema "${this.schema}"`, err)
    }
  }

  // ---- statements -------------------------------------------------------------------------------

  /** Runs a state-returning statement (one at a time, in order), notes reachability, reports errors. */
  private async run(what: string, text: string, values: unknown[]): Promise<State> {
    const rows = await this.rows<{ state?: State }>(what, text, values)
    // openSession returns counts, not a state: nothing to report from it.
    return rows[0]?.state ?? { lease: null, line: [], wake: null, alive: true, holding: false }
  }

  /**
   * Runs one statement after the ones before it (so every answer reflects all earlier ones: the lines
   * reported are in the database's order), on a pool connection, bounded by the request timeout: a
   * connection whose statement times out is destroyed rather than returned to the pool.
   */
  private rows<R>(what: string, text: string, values: unknown[]): Promise<R[]> {
    const queuedAt = Date.now()
    const job = async (): Promise<R[]> => {
      if (this.closed && what !== 'session close') throw new StoreRefusedError(STORE, 'the backend is closed')
      // A statement whose caller gave up long ago is not sent (a frozen server would pile them up).
      if (Date.now() - queuedAt > 2 * this.timeoutMs)
        throw this.unavailable(new Error(`${what}: no answer to the statements before it`), what)
      try {
        const result = await this.query<R>(text, values)
        this.reachable()
        return result
      } catch (err) {
        throw this.mapError(what, err)
      }
    }
    const p = this.chain.then(job, job)
    this.chain = p.catch(() => {})
    return p
  }

  private async query<R>(text: string, values: unknown[]): Promise<R[]> {
    const pool = this.need()
    const client: PoolClient = await withDeadline(pool.connect(), this.timeoutMs, 'no connection', (c) =>
      c.release(true),
    )
    let timer: NodeJS.Timeout | undefined
    try {
      const result = await new Promise<{ rows: R[] }>((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs)
        client.query<R & object>({ text, values }).then(resolve, reject)
      })
      client.release()
      return result.rows
    } catch (err) {
      // Destroyed, not pooled: it may still be waiting for an answer.
      client.release(err instanceof Error ? err : true)
      throw err
    } finally {
      clearTimeout(timer)
    }
  }

  private need(): Pool {
    if (!this.pool) throw new StoreUnavailableError(STORE, `${this.where()}: not connected`)
    return this.pool
  }

  private where(): string {
    return `postgres ${this.target}`
  }

  private mapError(what: string, err: unknown): Error {
    if (err instanceof StoreError || err instanceof SessionLostError) return err
    if (!isTransient(err)) {
      const code = (err as { code?: string }).code
      return new StoreRefusedError(
        STORE,
        `${this.where()} refused ${what}: ${oneLine(err)}${code ? ` (SQLSTATE ${code})` : ''}`,
        { cause: err },
      )
    }
    return this.unavailable(err, what)
  }

  private unavailable(err: unknown, what: string): StoreUnavailableError {
    const e = new StoreUnavailableError(STORE, `${this.where()} unavailable (${what}): ${oneLine(err)}`, {
      cause: err,
    })
    if (!this.doubt && !this.closed && this.events) {
      this.doubt = true
      this.events.suspended(e)
    }
    return e
  }

  private reachable(): void {
    if (!this.doubt || this.closed) return
    this.doubt = false
    this.events?.resumed()
    // The LISTEN connection may have broken too: catch up on what it missed.
    this.refresh()
  }

  private refineConnectError(err: unknown): Error {
    const e = err instanceof Error ? err : new Error(String(err))
    if (e instanceof StoreRefusedError && /SQLSTATE 42(703|P01|804)/.test(e.message))
      return new StoreRefusedError(
        STORE,
        `${e.message}; the schema "${this.schema}" holds tables that are not ballot's: name another with --schema`,
        { cause: e },
      )
    return e
  }

  private sessionGone(id: string): void {
    if (this.session?.id !== id) return
    this.session = undefined
    this.me = undefined
    this.joined = undefined
    this.holding = undefined
  }

  // ---- the line ---------------------------------------------------------------------------------

  /** Reads again (one at a time): a candidate in line also takes the lease if it is first and it is free. */
  private refresh(): void {
    if (this.closed) return
    if (this.refreshing) {
      this.refreshAgain = true
      return
    }
    this.refreshing = true
    const writesBefore = this.ownWrites
    const session = this.session
    const inLine = !this.watchOnly && session !== undefined && this.me !== undefined
    const run = inLine
      ? this.run('read line', this.sql.sync, [this.election, session.id, this.channel])
      : this.run('read line', this.sql.read, [this.election])
    run
      .then(
        (state) => {
          if (this.ownWrites !== writesBefore) {
            this.refreshAgain = true
            return
          }
          if (inLine && !state.alive && this.session?.id === session.id) {
            this.sessionGone(session.id)
            this.events?.sessionLost(
              new SessionLostError(STORE, `${this.where()}: session ${session.id} has expired`),
            )
          }
          this.report(state)
        },
        () => {
          // Reported as suspended already; look again soon.
          this.wakeIn(Math.min(1000, this.timeoutMs))
        },
      )
      .finally(() => {
        this.refreshing = false
        if (this.refreshAgain) {
          this.refreshAgain = false
          this.refresh()
        }
      })
  }

  /** Emits the line if it changed, and sets the timer for the next expiry the database named. */
  private report(state: State): void {
    if (this.closed) return
    const session = this.session
    if (session && state.holding && state.lease?.holder === session.id)
      this.holding = BigInt(state.lease.token)
    else if (!state.holding) this.holding = undefined
    const entries: LineEntry[] = []
    const lease = state.lease
    if (lease) {
      const row = state.line.find((e) => e.session === lease.holder)
      const head: LineEntry = {
        id: row?.id ?? lease.id ?? lease.holder,
        key: this.keyOf(lease.holder),
        order: 0n,
        token: BigInt(lease.token),
      }
      if (row?.address) head.address = row.address
      if (row?.tags) head.tags = row.tags
      entries.push(head)
      for (const e of state.line) {
        if (e.session === lease.holder) continue
        const w: LineEntry = { id: e.id, key: this.keyOf(e.session), order: BigInt(e.joined), token: 0n }
        if (e.address) w.address = e.address
        if (e.tags) w.tags = e.tags
        entries.push(w)
      }
    }
    const text = JSON.stringify(entries, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))
    if (text !== this.lastLine) {
      this.lastLine = text
      this.events?.line(entries)
    }
    const wake = state.wake === null ? undefined : Number(state.wake)
    if (wake !== undefined && Number.isFinite(wake)) this.wakeIn(Math.max(0, wake) + 5)
    else clearTimeout(this.wakeTimer)
  }

  private wakeIn(ms: number): void {
    clearTimeout(this.wakeTimer)
    if (this.closed) return
    this.wakeTimer = setTimeout(() => this.refresh(), ms)
    this.wakeTimer.unref()
  }

  // ---- LISTEN -----------------------------------------------------------------------------------

  /**
   * Opens the LISTEN connection and checks it with a NOTIFY of its own: through PgBouncer in transaction
   * mode the LISTEN is accepted but nothing ever arrives, so the connection is closed and notifications
   * stay 'off'. At connect (`first`) a failure is not fatal: the timers and keepAlives still work.
   */
  private async startListening(first: boolean): Promise<void> {
    if (this.closed || !this.pg || this.listenState === 'starting') return
    this.listenState = 'starting'
    const where = this.opts.listen
    const config = typeof where === 'object' ? where : this.opts.connection
    const client = new this.pg.Client({
      ...this.clientConfig(config),
      application_name: `ballot listen ${this.election}`.slice(0, 63),
      connectionTimeoutMillis: this.timeoutMs,
    })
    const broken = () => {
      if (this.listener !== client) return
      this.listener = undefined
      this.listenState = 'off'
      client.end().catch(() => {})
      this.retryListen()
    }
    client.on('error', broken)
    client.on('end', broken)
    client.on('notification', (msg) => {
      if (this.probe && msg.payload === this.probe.payload) this.probe.resolve()
      else if (msg.channel === this.channel && msg.payload === this.election) this.refresh()
    })
    try {
      await withDeadline(client.connect(), this.timeoutMs, 'no LISTEN connection', () => client.end())
      await withDeadline(
        client.query(`LISTEN "${this.channel.replace(/"/g, '""')}"`),
        this.timeoutMs,
        'LISTEN',
      )
      const payload = `ballot-probe:${randomUUID()}`
      const heard = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), Math.min(2000, this.timeoutMs))
        this.probe = {
          payload,
          resolve: () => {
            clearTimeout(timer)
            resolve(true)
          },
        }
      })
      await this.rows('notify', 'SELECT pg_notify($1, $2)', [this.channel, payload])
      const ok = await heard
      this.probe = undefined
      if (!ok) {
        // PgBouncer in transaction mode (or a proxy that drops notifications): no LISTEN at all.
        this.listenState = 'off'
        await client.end().catch(() => {})
        return
      }
      if (this.closed) {
        await client.end().catch(() => {})
        return
      }
      this.listener = client
      this.listenState = 'on'
      this.listenFailures = 0
      // Whatever happened while it was not listening.
      if (!first) this.refresh()
    } catch {
      this.probe = undefined
      this.listenState = 'off'
      await client.end().catch(() => {})
      this.retryListen()
    }
  }

  private retryListen(): void {
    if (this.closed) return
    clearTimeout(this.listenTimer)
    this.listenFailures++
    const delay = Math.min(2000, 100 * 2 ** Math.min(this.listenFailures - 1, 5))
    this.listenTimer = setTimeout(() => {
      void this.startListening(false)
    }, delay)
    this.listenTimer.unref()
    // A broken LISTEN connection may mean the server went away: look at the line now, too.
    this.refresh()
  }

  private clientConfig(c: PostgresConnection): ClientConfig {
    return {
      host: c.host ?? '127.0.0.1',
      port: c.port ?? 5432,
      user: c.user,
      password: c.password,
      database: c.database,
      ssl: c.ssl as ClientConfig['ssl'],
      application_name: `ballot lease ${this.election}`.slice(0, 63),
      connectionTimeoutMillis: this.timeoutMs,
    }
  }
}

/**
 * Creates ballot's schema, sequences and tables in `schema` (default 'ballot') when missing: what
 * `ballot migrate --store postgres://...` runs, and what a backend does on first use unless
 * `createSchema` is false. Touches nothing outside that schema. Rejects with a StoreError.
 */
export async function migratePostgres(opts: {
  /** Where PostgreSQL is (a role that may CREATE in the database). */
  connection: PostgresConnection
  /** The schema to create ballot's tables in. Default 'ballot'. */
  schema?: string | undefined
  /** Bound on each step (ms). Default 10000. */
  timeoutMs?: number | undefined
}): Promise<void> {
  const schema = opts.schema ?? DEFAULT_POSTGRES_SCHEMA
  const probe = new PostgresBackend({ connection: opts.connection, election: 'migrate', schema })
  const pg = await loadPg()
  const c = opts.connection
  const pool = new pg.Pool({
    host: c.host ?? '127.0.0.1',
    port: c.port ?? 5432,
    user: c.user,
    password: c.password,
    database: c.database,
    ssl: c.ssl as ClientConfig['ssl'],
    application_name: 'ballot migrate',
    connectionTimeoutMillis: opts.timeoutMs ?? 10_000,
    max: 1,
  })
  pool.on('error', () => {})
  pool.on('connect', (client) => client.on('error', () => {}))
  try {
    await createTables(pool, probe.schema, opts.timeoutMs ?? 10_000)
  } catch (err) {
    const where = `postgres ${probe.target}`
    if (isTransient(err))
      throw new StoreUnavailableError(STORE, `${where} unavailable: ${oneLine(err)}`, { cause: err })
    const code = (err as { code?: string }).code
    throw new StoreRefusedError(
      STORE,
      `${where} refused to create schema "${schema}": ${oneLine(err)}${code ? ` (SQLSTATE ${code})` : ''}`,
      { cause: err },
    )
  } finally {
    await pool.end().catch(() => {})
  }
}

/**
 * The migration itself: one transaction, under a transaction-level advisory lock so that concurrent
 * creators wait for each other (released at commit: safe through PgBouncer in transaction mode).
 */
async function createTables(pool: Pool, schema: string, timeoutMs: number): Promise<void> {
  const sql = postgresSql(schema)
  const client = await withDeadline(pool.connect(), timeoutMs, 'no connection', (c) => c.release(true))
  try {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`ballot migrate ${schema}`])
    for (const statement of sql.migrate) await client.query(statement)
    await client.query('COMMIT')
    client.release()
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    client.release(true)
    throw err
  }
}

/** Rejects after `ms`; a value that arrives later is handed to `dispose`. */
function withDeadline<T>(p: Promise<T>, ms: number, what: string, dispose?: (v: T) => unknown): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let late = false
    const timer = setTimeout(() => {
      late = true
      reject(new Error(`${what} within ${ms} ms`))
    }, ms)
    p.then(
      (v) => {
        clearTimeout(timer)
        if (late) dispose?.(v)
        else resolve(v)
      },
      (e) => {
        clearTimeout(timer)
        reject(e)
      },
    )
  })
}

function oneLine(err: unknown): string {
  const e = err as { message?: string; code?: string; errors?: Array<{ message?: string }> }
  // An AggregateError (every address refused) has an empty message: name the first.
  const message = e?.message || e?.errors?.[0]?.message || e?.code || String(err)
  return message.replace(/\s+/g, ' ').trim()
}
