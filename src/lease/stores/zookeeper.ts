/**
 * The lease backend on ZooKeeper: Curator's LeaderLatch recipe, node for node, so ballot candidates and
 * Curator `LeaderLatch` participants share one latch.
 *
 *   <path>/_c_<uuid>-latch-<10-digit sequence>   EPHEMERAL_SEQUENTIAL, data = the candidate's id (UTF-8)
 *   <metaPath>/_c_<uuid>                          EPHEMERAL, data = {"address","tags"} (ballot only)
 *
 * The line is the latch's children ordered by the text after the last `latch-` (Curator's sort); the
 * lowest leads. A candidate in the line watches only the node just before its own (a data watch, as
 * Curator does, so nothing is left behind when that node is already gone): when it goes, the candidate
 * reads the children again. No watch on the children while in the line, so a join or a leave wakes one
 * candidate, not all of them; the line a candidate reports is refreshed by every keepAlive (which reads
 * the children as its round trip) and whenever its predecessor goes. A watch-only follower (or a
 * candidate not in the line) watches the children and sees every change. Both nodes of a candidate are
 * made in one multi-op transaction; the metadata lives outside the latch so Curator sees only its own
 * layout there.
 *
 * Token: the leader node's czxid. Sequences and zxids both grow with creation, so the head of the line
 * always has a larger czxid than every earlier head.
 *
 * Sessions: one ZooKeeper session per BackendSession (the session timeout is the TTL asked for; the
 * server clamps it to [2, 20] × tickTime and `ttlMs` reports what it granted). Connection states map as
 * Curator's do: Disconnected (or a request unanswered for `requestTimeoutMs`) → `suspended`,
 * SyncConnected again on the same session → `resumed`, Expired → `sessionLost`. ZooKeeper restores
 * sessions when a server restarts, so a short outage ends in `resumed`, not `sessionLost`.
 *
 * TLS (`tls`): node-zookeeper-client speaks plain TCP only, so each ensemble host is reached through an
 * in-process forwarder on 127.0.0.1 (./tls-tunnel.ts) that verifies the server and presents the client
 * certificate; a handshake refused by every host ends a connect at once, with the reason.
 */
import { randomUUID } from 'node:crypto'
import type * as Zk from 'node-zookeeper-client'
import { InvalidOptionsError, SessionLostError, StoreError } from '../../errors.js'
import type { BackendEvents, BackendSession, LeaseBackend, LineEntry } from '../backend.js'
import { loadOptional, withTimeout } from './optional.js'
import { checkStoreTls, type StoreTls } from './tls.js'
import { TlsTunnel } from './tls-tunnel.js'

const STORE = 'zookeeper'
const LOCK_NAME = 'latch-'
const NO_OWNER = '0000000000000000'

/** How a ZooKeeper backend reaches its ensemble and which LeaderLatch path it takes part in. */
export interface ZooKeeperBackendOptions {
  /** Connection string, `host:port[,host:port...][/chroot]`. */
  connect: string
  /** The latch path (Curator's `LeaderLatch` latchPath), e.g. `/services/billing/leader`. */
  path: string
  /** Where ballot keeps each candidate's address and tags, outside the latch. Default `<path>-meta`. */
  metaPath?: string
  /** Session timeout (ms) of the connection `connect()` opens, reused by a first `openSession` asking the same. Default 10000. */
  sessionTimeoutMs?: number
  /** How long `connect()`/`openSession()` wait for a connection before failing with STORE_UNAVAILABLE (ms). Default 5000. */
  connectTimeoutMs?: number
  /**
   * A request unanswered this long fails with STORE_UNAVAILABLE and puts the connection in doubt (ms).
   * Default: 2/3 of the session's negotiated timeout (the Java client's read timeout).
   */
  requestTimeoutMs?: number
  /**
   * Refuse to connect (INVALID_OPTIONS, field `ttl`) when the server grants another session timeout than
   * `sessionTimeoutMs` (it clamps to 2–20 × its tickTime), rather than use the granted one. Default false.
   */
  exactSessionTimeout?: boolean
  /**
   * Digest authentication (`addauth digest user:password`), sent on every connection before any request,
   * for latch paths whose ACLs ask for it. The nodes ballot creates stay open to all (OPEN_ACL_UNSAFE), as
   * Curator's LeaderLatch makes them, so Curator participants can read them.
   */
  digest?: {
    /** The digest user. */
    username: string
    /** Its password (never logged). */
    password: string
  }
  /**
   * TLS to the ensemble (its `secureClientPort`). node-zookeeper-client speaks plain TCP only, so the
   * backend opens, per host, a forwarder on 127.0.0.1 that carries each connection over TLS to that host
   * (verifying its certificate against `ca` and its name) and hands the client the local addresses.
   * The forwarders close with the backend.
   */
  tls?: StoreTls
}

type ZkModule = typeof Zk

let zkModule: Promise<ZkModule> | undefined
function loadZk(): Promise<ZkModule> {
  zkModule ??= loadOptional('node-zookeeper-client', STORE, async () => {
    const mod = (await import('node-zookeeper-client')) as ZkModule & { default?: ZkModule }
    return mod.default ?? mod
  })
  return zkModule
}

/** One ZooKeeper client, i.e. one session. */
class Conn {
  doubt = false
  closing = false
  expired = false
  /** Given out by openSession (its ephemeral nodes belong to the driver's session). */
  handedOut = false
  /** While disconnected: checks that a reconnect attempt does not hang in its handshake. */
  handshakeWatch: ReturnType<typeof setInterval> | undefined
  readonly watcher: (event: Zk.Event) => void

  constructor(
    readonly client: Zk.Client,
    readonly requestedTtl: number,
    readonly sessionId: string,
    onWatch: (conn: Conn) => void,
  ) {
    this.watcher = () => onWatch(this)
  }
}

interface NodeInfo {
  name: string
  guid: string
  seq: string
  id: string
  czxid: bigint
  owner: string
  address?: string
  tags?: Record<string, string>
}

interface Joined {
  conn: Conn
  name: string
  guid: string
}

/** The text after the last `latch-`, if it is a 10-digit sequence (else the name is not a latch node). */
function sequenceOf(name: string): string | undefined {
  const i = name.lastIndexOf(LOCK_NAME)
  if (i < 0) return undefined
  const seq = name.slice(i + LOCK_NAME.length)
  return /^\d{10}$/.test(seq) ? seq : undefined
}

function checkPath(field: string, path: string): void {
  if (!path.startsWith('/') || path === '/' || path.endsWith('/') || path.includes('//'))
    throw new InvalidOptionsError(field, `"${path}" is not a ZooKeeper node path like /ballot/my-service`)
}

/** A connection string's `host:port` list and chroot (`''` when none); InvalidOptionsError when malformed. */
function splitConnect(connect: string): { hosts: string[]; chroot: string } {
  const slash = connect.indexOf('/')
  const hosts = (slash >= 0 ? connect.slice(0, slash) : connect).split(',').map((h) => h.trim())
  for (const h of hosts)
    if (!/^(\[[^\]]+\]|[^:/\s[\]]+):\d{1,5}$/.test(h))
      throw new InvalidOptionsError('connect', `expected host:port in the connection string, got "${h}"`)
  return { hosts, chroot: slash >= 0 ? connect.slice(slash) : '' }
}

function errCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown }).code
  return typeof code === 'number' ? code : undefined
}

export class ZooKeeperBackend implements LeaseBackend {
  readonly store = STORE
  /** The latch path (Curator's LeaderLatch layout lives under it). */
  readonly path: string
  /** Where candidates' address and tags live, beside the latch path (never inside it). */
  readonly metaPath: string
  private readonly connectString: string
  private readonly sessionTimeoutMs: number
  private readonly connectTimeoutMs: number
  private readonly requestTimeoutOption: number | undefined
  private readonly exactSessionTimeout: boolean
  private readonly digest: Buffer | undefined
  private readonly tls: { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined
  /** With TLS: the local forwarders, opened by the first connect(), closed by close(). */
  private tunnel: TlsTunnel | undefined
  /** The connection string the client dials: the ensemble itself, or the tunnel's local addresses. */
  private dialString: string
  private zk: ZkModule | undefined
  private events: BackendEvents | undefined
  private conn: Conn | undefined
  private me: Joined | undefined
  /** A join whose reply was lost: its nodes may exist; the next join adopts them (Curator's protection). */
  private pendingGuid: string | undefined
  /** A join is in flight: reads of the line must not arm a children watch it would leave behind. */
  private joining = false
  /**
   * The create of the join in flight. The driver may give up on a join (no answer in time) and join again,
   * or leave, while it is still on the wire: those wait for it, so that its node is adopted or removed
   * rather than left in the line under the live session beside a second one.
   */
  private creating: Promise<void> | undefined
  private readonly cache = new Map<string, NodeInfo>()
  private lastLine = ''
  private lastChildren = ''
  private fault: StoreError | undefined
  private refreshing: Promise<void> | undefined
  private dirty = false
  private closed = false
  private reconnecting = false

  constructor(opts: ZooKeeperBackendOptions) {
    if (!opts.connect) throw new InvalidOptionsError('connect', 'a ZooKeeper connection string is required')
    checkPath('path', opts.path)
    this.connectString = opts.connect
    this.dialString = opts.connect
    this.tls = opts.tls ? checkStoreTls(opts.tls) : undefined
    // With TLS each host gets a forwarder of its own: check the hosts now, not at connect().
    if (this.tls) splitConnect(opts.connect)
    this.path = opts.path
    this.metaPath = opts.metaPath ?? `${opts.path}-meta`
    checkPath('metaPath', this.metaPath)
    if (this.metaPath === this.path || this.metaPath.startsWith(`${this.path}/`))
      throw new InvalidOptionsError(
        'metaPath',
        'must be outside the latch path (Curator reads every child there)',
      )
    this.sessionTimeoutMs = positive('sessionTimeoutMs', opts.sessionTimeoutMs ?? 10_000)
    this.connectTimeoutMs = positive('connectTimeoutMs', opts.connectTimeoutMs ?? 5000)
    this.requestTimeoutOption =
      opts.requestTimeoutMs === undefined ? undefined : positive('requestTimeoutMs', opts.requestTimeoutMs)
    this.exactSessionTimeout = opts.exactSessionTimeout ?? false
    if (opts.digest && !opts.digest.username)
      throw new InvalidOptionsError('digest', 'the user name must not be empty')
    this.digest = opts.digest ? Buffer.from(`${opts.digest.username}:${opts.digest.password}`) : undefined
  }

  /** The connection string (it never holds credentials: digest auth is apart). */
  get target(): string {
    return this.connectString
  }

  async connect(events: BackendEvents, _opts: { watchOnly: boolean }): Promise<void> {
    if (this.closed) throw new StoreError('STORE_REFUSED', STORE, 'the backend is closed')
    this.events = events
    this.zk = await loadZk()
    if (this.tls && !this.tunnel) await this.openTunnel(this.tls)
    try {
      await this.connectOnce()
    } catch (err) {
      // Refused: the forwarders go too (a later connect opens them afresh).
      if (!this.conn) await this.closeTunnel()
      throw err
    }
  }

  /** connect()'s session and first read of the line, over the plain or the tunnelled addresses. */
  private async connectOnce(): Promise<void> {
    const conn = await this.openConn(this.sessionTimeoutMs)
    const granted = conn.client.getSessionTimeout()
    if (this.exactSessionTimeout && granted !== Math.round(this.sessionTimeoutMs)) {
      this.events = undefined
      await this.closeConn(conn)
      throw new InvalidOptionsError(
        'ttl',
        `zookeeper ${this.connectString} grants a session timeout of ${granted} ms, not the ${Math.round(this.sessionTimeoutMs)} ms asked: ` +
          'the server allows 2 to 20 × its tickTime (minSessionTimeout, maxSessionTimeout)',
      )
    }
    this.setConn(conn)
    this.dirty = true
    await this.refresh()
    if (this.fault) {
      // Refused: nothing is left open (a later connect, once the path is fixed, starts afresh).
      const fault = this.fault
      this.conn = undefined
      this.events = undefined
      this.lastLine = ''
      await this.closeConn(conn)
      throw fault
    }
  }

  async openSession(ttlMs: number): Promise<BackendSession> {
    this.checkOpen()
    const current = this.conn
    if (
      current &&
      !current.handedOut &&
      !current.expired &&
      !current.closing &&
      !current.doubt &&
      current.requestedTtl === Math.round(ttlMs)
    ) {
      // A round trip now, so the session's clock at the server starts no earlier than the caller's send time.
      await this.exists(current, this.path)
      current.handedOut = true
      return { id: current.sessionId, ttlMs: current.client.getSessionTimeout() }
    }
    const fresh = await this.openConn(Math.round(ttlMs))
    fresh.handedOut = true
    this.setConn(fresh)
    void this.refresh()
    return { id: fresh.sessionId, ttlMs: fresh.client.getSessionTimeout() }
  }

  async keepAlive(): Promise<void> {
    const conn = this.sessionConn()
    if (this.fault) throw this.fault
    // The round trip: the latch's children (no watch), which also keeps the reported line fresh.
    let children: string[]
    try {
      children = await this.getChildren(conn, false)
    } catch (err) {
      if (errCode(err) !== this.zk?.Exception.NO_NODE) throw err
      children = []
    }
    if ([...children].sort().join('/') !== this.lastChildren) void this.refresh()
  }

  async join(self: { id: string; address?: string; tags?: Record<string, string> }): Promise<LineEntry> {
    while (this.creating) await this.creating.catch(() => {})
    const conn = this.sessionConn()
    if (this.fault) throw this.fault
    if (!(this.me && this.me.conn === conn)) {
      this.joining = true
      this.creating = this.create(conn, self)
      try {
        await this.creating
      } finally {
        this.joining = false
        this.creating = undefined
      }
    }
    this.dirty = true
    await this.refresh()
    const me = this.me
    const info = me ? this.cache.get(me.name) : undefined
    if (!me || !info)
      throw new StoreError('STORE_UNAVAILABLE', STORE, 'the new latch node could not be read back')
    return this.entry(info)
  }

  /**
   * Deletes this join's nodes only: every join makes a latch node of its own (a fresh `_c_<uuid>` and a
   * sequence the server never hands out twice), so a leave that lands late (after the candidate joined
   * again) or is retried cannot remove a later join's node, as a shared key could on etcd and Consul.
   * The join is forgotten only once its nodes are gone (or its session is): a leave that failed, say
   * while disconnected, is retried by the driver and must then still know what to delete, or the node
   * would stay in the line, held by a live session, and block every election from its head.
   */
  async leave(): Promise<void> {
    while (this.creating) await this.creating.catch(() => {})
    const me = this.me
    if (!me) return
    if (me.conn === this.conn && !me.conn.expired) {
      await this.removeQuietly(me.conn, `${this.path}/${me.name}`)
      await this.removeQuietly(me.conn, `${this.metaPath}/${me.guid}`)
    }
    // A retry of this leave may have finished first, and the candidate joined again since.
    if (this.me === me) this.me = undefined
    this.dirty = true
    await this.refresh()
  }

  async closeSession(): Promise<void> {
    const conn = this.conn
    this.me = undefined
    this.pendingGuid = undefined
    if (!conn) return
    this.conn = undefined
    await this.closeConn(conn)
  }

  async close(): Promise<void> {
    this.closed = true
    const conn = this.conn
    this.conn = undefined
    this.me = undefined
    if (conn) await this.closeConn(conn)
    await this.closeTunnel()
  }

  /** Starts the local TLS forwarders, one per ensemble host, and dials them instead (chroot kept). */
  private async openTunnel(tls: { ca?: Buffer; cert?: Buffer; key?: Buffer }): Promise<void> {
    const { hosts, chroot } = splitConnect(this.connectString)
    this.tunnel = await TlsTunnel.open(hosts, tls)
    this.dialString = this.tunnel.locals.join(',') + chroot
  }

  private async closeTunnel(): Promise<void> {
    const tunnel = this.tunnel
    this.tunnel = undefined
    this.dialString = this.connectString
    await tunnel?.close()
  }

  /** Why the last TLS connection failed, as `: reason` for an error message ('' when none). */
  private tlsProblem(): string {
    const problem = this.tunnel?.lastProblem
    return problem ? `: ${problem}` : ''
  }

  // --- connections -------------------------------------------------------------------------------

  private checkOpen(): void {
    if (this.closed) throw new StoreError('STORE_REFUSED', STORE, 'the backend is closed')
    if (!this.events || !this.zk) throw new StoreError('STORE_REFUSED', STORE, 'connect() first')
  }

  /** The connection holding the driver's session, or SessionLostError. */
  private sessionConn(): Conn {
    this.checkOpen()
    const conn = this.conn
    if (!conn?.handedOut) throw new SessionLostError(STORE, 'no session is open')
    if (conn.expired) throw new SessionLostError(STORE, `session ${conn.sessionId} expired`)
    return conn
  }

  private openConn(ttlMs: number): Promise<Conn> {
    const zk = this.zk!
    const client = zk.createClient(this.dialString, { sessionTimeout: ttlMs, spinDelay: 100, retries: 0 })
    if (this.digest) client.addAuthInfo('digest', this.digest)
    return new Promise<Conn>((resolve, reject) => {
      let settled = false
      const timer = setTimeout(() => {
        fail(
          new StoreError(
            'STORE_UNAVAILABLE',
            STORE,
            `cannot reach ${this.connectString} within ${this.connectTimeoutMs} ms${this.tlsProblem()}`,
          ),
        )
      }, this.connectTimeoutMs)
      // With TLS: once the last handshake to every host has failed, say why now rather than at the timeout.
      const since = this.tunnel?.mark() ?? 0
      const unsubscribe = this.tunnel?.onProblem(() => {
        const all = this.tunnel?.allFailingSince(since)
        if (all)
          fail(new StoreError('STORE_UNAVAILABLE', STORE, `cannot reach ${this.connectString}: ${all}`))
      })
      const fail = (err: Error) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        unsubscribe?.()
        client.off('state', onFirstState)
        client.close()
        reject(err)
      }
      const onFirstState = (state: Zk.State) => {
        if (settled) return
        if (state === zk.State.SYNC_CONNECTED) {
          settled = true
          clearTimeout(timer)
          unsubscribe?.()
          client.off('state', onFirstState)
          const conn = new Conn(client, ttlMs, client.getSessionId().toString('hex'), (c) => this.onWatch(c))
          client.on('state', (s: Zk.State) => this.onState(conn, s))
          resolve(conn)
        } else if (state === zk.State.AUTH_FAILED || state === zk.State.EXPIRED) {
          fail(
            new StoreError(
              'STORE_REFUSED',
              STORE,
              `${this.connectString} refused the session (${state.name})`,
            ),
          )
        }
      }
      client.on('state', onFirstState)
      client.connect()
    })
  }

  private setConn(conn: Conn): void {
    const old = this.conn
    this.conn = conn
    this.lastChildren = ''
    if (this.me && this.me.conn !== conn) this.me = undefined
    if (old && old !== conn) void this.closeConn(old)
  }

  /** Closes a client (its session and ephemeral nodes go at once) and waits, boundedly, for the socket. */
  private async closeConn(conn: Conn): Promise<void> {
    if (conn.closing) return
    conn.closing = true
    this.unwatchHandshake(conn)
    const zk = this.zk!
    const wasConnected = conn.client.getState() === zk.State.SYNC_CONNECTED && !conn.expired
    const done = new Promise<void>((resolve) => {
      conn.client.once('disconnected', () => resolve())
    })
    conn.client.close()
    if (wasConnected)
      await withTimeout(done, this.requestTimeout(conn), () => new Error('close')).catch(() => {})
    conn.client.removeAllListeners()
  }

  private onState(conn: Conn, state: Zk.State): void {
    const zk = this.zk!
    if (conn.closing || this.closed) return
    const current = conn === this.conn
    if (state === zk.State.DISCONNECTED) {
      this.watchHandshake(conn)
      if (!conn.doubt) {
        conn.doubt = true
        if (current)
          this.events?.suspended(
            new StoreError('STORE_UNAVAILABLE', STORE, `connection to ${this.connectString} lost`),
          )
      }
    } else if (state === zk.State.SYNC_CONNECTED) {
      this.unwatchHandshake(conn)
      if (conn.client.getSessionId().toString('hex') !== conn.sessionId) return
      if (conn.doubt) {
        conn.doubt = false
        if (current) this.events?.resumed()
      }
      if (current) void this.refresh()
    } else if (state === zk.State.EXPIRED) {
      this.unwatchHandshake(conn)
      conn.expired = true
      conn.doubt = false
      if (!current) return
      if (this.me?.conn === conn) this.me = undefined
      this.events?.sessionLost(new SessionLostError(STORE, `session ${conn.sessionId} expired`))
      if (!conn.handedOut) void this.reconnect()
    }
  }

  /**
   * node-zookeeper-client has no timeout on the handshake after the TCP connect: a server that accepts the
   * connection while it is still starting (seen after a restart) can leave it CONNECTING for ever. The
   * Java client bounds the handshake by its connect timeout; so does this, by closing a socket that stays
   * in the handshake for a third of the session timeout, which makes the client try again.
   */
  private watchHandshake(conn: Conn): void {
    if (conn.handshakeWatch) return
    const periodMs = Math.max(200, Math.floor(conn.client.getSessionTimeout() / 3))
    const manager = (
      conn.client as unknown as { connectionManager?: { state?: number; socket?: { destroy(): void } } }
    ).connectionManager
    let seen: unknown
    conn.handshakeWatch = setInterval(() => {
      if (!manager || conn.closing) return this.unwatchHandshake(conn)
      const CONNECTING = 1
      if (manager.state === CONNECTING && manager.socket && manager.socket === seen) manager.socket.destroy()
      seen = manager.state === CONNECTING ? manager.socket : undefined
    }, periodMs)
    conn.handshakeWatch.unref?.()
  }

  private unwatchHandshake(conn: Conn): void {
    if (conn.handshakeWatch) clearInterval(conn.handshakeWatch)
    conn.handshakeWatch = undefined
  }

  /** A watch-only connection whose session expired: open another (with backoff) to keep following the line. */
  private async reconnect(): Promise<void> {
    if (this.reconnecting) return
    this.reconnecting = true
    try {
      for (
        let delay = 100;
        !this.closed && this.conn?.expired && !this.conn.handedOut;
        delay = Math.min(delay * 2, 5000)
      ) {
        try {
          const conn = await this.openConn(this.sessionTimeoutMs)
          if (this.closed || !this.conn?.expired || this.conn.handedOut) {
            await this.closeConn(conn)
            return
          }
          this.setConn(conn)
          void this.refresh()
          return
        } catch {
          await new Promise((r) => setTimeout(r, delay))
        }
      }
    } finally {
      this.reconnecting = false
    }
  }

  private onWatch(conn: Conn): void {
    if (conn === this.conn && !this.closed) void this.refresh()
  }

  /**
   * One request with a callback, as a promise of the callback's results, bounded by requestTimeoutMs;
   * maps ZooKeeper errors (NO_NODE and NODE_EXISTS are left for the caller).
   */
  private requestTimeout(conn: Conn): number {
    return this.requestTimeoutOption ?? Math.max(200, Math.floor((conn.client.getSessionTimeout() * 2) / 3))
  }

  private call(
    conn: Conn,
    what: string,
    // biome-ignore lint/suspicious/noExplicitAny: callback results differ per request; typed by the helpers below
    run: (cb: (err: unknown, ...results: any[]) => void) => void,
  ): Promise<unknown[]> {
    const zk = this.zk!
    const timeoutMs = this.requestTimeout(conn)
    // While disconnected the client would queue the request until it reconnects: fail at once instead
    // (Curator's ConnectionLoss); the reconnect reads the line again.
    if (conn.doubt && conn.client.getState() !== zk.State.SYNC_CONNECTED)
      return Promise.reject(
        new StoreError('STORE_UNAVAILABLE', STORE, `${what}: not connected to ${this.connectString}`),
      )
    const request = new Promise<unknown[]>((resolve, reject) => {
      run((err, ...results) => {
        if (err) reject(err)
        else resolve(results)
      })
    })
    return withTimeout(request, timeoutMs, () => {
      if (!conn.doubt && !conn.closing && conn === this.conn) {
        conn.doubt = true
        this.events?.suspended(
          new StoreError('STORE_UNAVAILABLE', STORE, `${what} unanswered for ${timeoutMs} ms`),
        )
      }
      return new StoreError(
        'STORE_UNAVAILABLE',
        STORE,
        `${what} on ${this.connectString}: no answer within ${timeoutMs} ms`,
      )
    }).then(
      (result) => {
        if (conn.doubt && conn === this.conn && conn.client.getState() === zk.State.SYNC_CONNECTED) {
          conn.doubt = false
          this.events?.resumed()
        }
        return result
      },
      (err: unknown) => {
        if (err instanceof StoreError) throw err
        const code = errCode(err)
        if (code === zk.Exception.SESSION_EXPIRED)
          throw new SessionLostError(STORE, `session ${conn.sessionId} expired`, { cause: err })
        if (code === zk.Exception.CONNECTION_LOSS || code === zk.Exception.OPERATION_TIMEOUT)
          throw new StoreError('STORE_UNAVAILABLE', STORE, `${what}: connection lost`, { cause: err })
        if (code === zk.Exception.NO_NODE || code === zk.Exception.NODE_EXISTS) throw err
        throw new StoreError('STORE_REFUSED', STORE, `${what}: ${String(err)}`, { cause: err })
      },
    )
  }

  private async getChildren(conn: Conn, watch: boolean): Promise<string[]> {
    const [children] = await this.call(conn, `getChildren ${this.path}`, (cb) =>
      watch ? conn.client.getChildren(this.path, conn.watcher, cb) : conn.client.getChildren(this.path, cb),
    )
    return children as string[]
  }

  private async getData(conn: Conn, path: string, watch = false): Promise<[Buffer, Zk.Stat]> {
    const [data, stat] = await this.call(conn, `getData ${path}`, (cb) =>
      watch ? conn.client.getData(path, conn.watcher, cb) : conn.client.getData(path, cb),
    )
    return [data as Buffer, stat as Zk.Stat]
  }

  private async exists(conn: Conn, path: string, watch = false): Promise<Zk.Stat | null> {
    const [stat] = await this.call(conn, `exists ${path}`, (cb) =>
      watch ? conn.client.exists(path, conn.watcher, cb) : conn.client.exists(path, cb),
    )
    return (stat as Zk.Stat | null) ?? null
  }

  private async mkdirp(conn: Conn, path: string): Promise<void> {
    await this.call(conn, `mkdirp ${path}`, (cb) => conn.client.mkdirp(path, cb))
  }

  private async removeQuietly(conn: Conn, path: string): Promise<void> {
    try {
      await this.call(conn, `delete ${path}`, (cb) => conn.client.remove(path, -1, (e) => cb(e, undefined)))
    } catch (err) {
      if (errCode(err) !== this.zk?.Exception.NO_NODE) throw err
    }
  }

  /** Makes this candidate's metadata and latch nodes in one transaction (or adopts a lost earlier try). */
  private async create(
    conn: Conn,
    self: { id: string; address?: string; tags?: Record<string, string> },
  ): Promise<void> {
    const zk = this.zk!
    const adopted = this.pendingGuid ? await this.findOwn(conn, this.pendingGuid) : undefined
    if (adopted) {
      this.me = { conn, name: adopted, guid: this.pendingGuid! }
    } else {
      await this.mkdirp(conn, this.path)
      await this.mkdirp(conn, this.metaPath)
      const guid = `_c_${randomUUID()}`
      this.pendingGuid = guid
      const meta = JSON.stringify({ address: self.address, tags: self.tags })
      const [results] = (await this.call(conn, 'multi create', (cb) =>
        conn.client
          .transaction()
          .create(`${this.metaPath}/${guid}`, Buffer.from(meta), zk.CreateMode.EPHEMERAL)
          .create(
            `${this.path}/${guid}-${LOCK_NAME}`,
            Buffer.from(self.id),
            zk.CreateMode.EPHEMERAL_SEQUENTIAL,
          )
          .commit(cb),
      )) as [Array<{ type: number; path?: string; err?: number }>]
      const created = results[1]?.path
      if (!created)
        throw new StoreError(
          'STORE_REFUSED',
          STORE,
          `creating the latch node failed: ${JSON.stringify(results)}`,
        )
      this.me = { conn, name: created.slice(created.lastIndexOf('/') + 1), guid }
    }
    this.pendingGuid = undefined
  }

  /** The latch node made by an earlier join whose reply was lost, if it exists under this session. */
  private async findOwn(conn: Conn, guid: string): Promise<string | undefined> {
    let children: string[]
    try {
      children = await this.getChildren(conn, false)
    } catch (err) {
      if (errCode(err) === this.zk?.Exception.NO_NODE) return undefined
      throw err
    }
    return children.find((c) => c.startsWith(`${guid}-`))
  }

  // --- the line ----------------------------------------------------------------------------------

  /** Reads the line again (one read at a time; a request while one runs makes it run once more). */
  private refresh(): Promise<void> {
    this.dirty = true
    this.refreshing ??= (async () => {
      try {
        while (this.dirty && !this.closed) {
          this.dirty = false
          try {
            await this.refreshOnce()
          } catch (err) {
            // Unavailable: the reconnect (or the next keepAlive) reads again. Anything else is a fault.
            if (err instanceof StoreError && err.code === 'STORE_REFUSED') this.fault = err
          }
        }
      } finally {
        this.refreshing = undefined
      }
    })()
    return this.refreshing
  }

  private async refreshOnce(): Promise<void> {
    const conn = this.conn
    const zk = this.zk!
    if (!conn || conn.expired || conn.closing) return
    const me = this.me?.conn === conn ? this.me : undefined
    let children: string[]
    try {
      children = await this.getChildren(conn, !me && !this.joining)
    } catch (err) {
      if (errCode(err) !== zk.Exception.NO_NODE) throw err
      children = []
      if (!me) {
        // Wait for the latch path to appear.
        const stat = await this.exists(conn, this.path, true)
        if (stat) this.dirty = true
      }
    }
    this.lastChildren = [...children].sort().join('/')

    const foreign: string[] = []
    const present = new Set(children)
    for (const name of this.cache.keys()) if (!present.has(name)) this.cache.delete(name)
    await Promise.all(
      children.map(async (name) => {
        const seq = sequenceOf(name)
        if (seq === undefined) {
          foreign.push(name)
          return
        }
        if (this.cache.has(name)) return
        const info = await this.readNode(conn, name, seq)
        if (info) this.cache.set(name, info)
      }),
    )
    const nodes = children
      .map((name) => this.cache.get(name))
      .filter((n): n is NodeInfo => n !== undefined)
      .sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0))
    for (const n of nodes) if (n.owner === NO_OWNER) foreign.push(n.name)
    this.fault =
      foreign.length > 0
        ? new StoreError(
            'STORE_REFUSED',
            STORE,
            `${this.path} holds nodes that are not LeaderLatch candidates (${foreign
              .sort()
              .map((n) => `${this.path}/${n}`)
              .join(
                ', ',
              )}; expected ephemeral _c_<uuid>-latch-<10 digits>): use a latch path of its own or remove them`,
          )
        : undefined
    const line = nodes.filter((n) => n.owner !== NO_OWNER)
    const entries = line.map((n) => this.entry(n))
    const text = JSON.stringify(entries, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))
    if (text !== this.lastLine && conn === this.conn) {
      this.lastLine = text
      this.events?.line(entries)
    }

    if (!me || conn !== this.conn) return
    const index = line.findIndex((n) => n.name === me.name)
    if (index < 0) {
      // Our node is gone (deleted by someone, or the session is going): no longer in the line.
      if (this.me === me) this.me = undefined
      this.dirty = true
      return
    }
    if (index > 0) {
      const before = line[index - 1]!
      try {
        await this.getData(conn, `${this.path}/${before.name}`, true)
      } catch (err) {
        if (errCode(err) !== zk.Exception.NO_NODE) throw err
        this.dirty = true
      }
    }
  }

  private async readNode(conn: Conn, name: string, seq: string): Promise<NodeInfo | undefined> {
    const zk = this.zk!
    let data: Buffer
    let stat: Zk.Stat
    try {
      ;[data, stat] = await this.getData(conn, `${this.path}/${name}`)
    } catch (err) {
      if (errCode(err) === zk.Exception.NO_NODE) return undefined
      throw err
    }
    const guid = name.slice(0, name.lastIndexOf(LOCK_NAME)).replace(/-$/, '')
    const info: NodeInfo = {
      name,
      guid,
      seq,
      id: data ? data.toString('utf8') : '',
      czxid: stat.czxid.readBigInt64BE(0),
      owner: stat.ephemeralOwner.toString('hex'),
    }
    if (guid.startsWith('_c_')) {
      try {
        const [meta] = await this.getData(conn, `${this.metaPath}/${guid}`)
        const parsed = JSON.parse(meta?.toString('utf8') ?? '{}') as { address?: unknown; tags?: unknown }
        if (typeof parsed.address === 'string') info.address = parsed.address
        if (parsed.tags && typeof parsed.tags === 'object') info.tags = parsed.tags as Record<string, string>
      } catch (err) {
        // No metadata: a Curator participant (or metadata that is not ours): id only.
        if (err instanceof StoreError && err.code === 'STORE_UNAVAILABLE') throw err
      }
    }
    return info
  }

  private entry(n: NodeInfo): LineEntry {
    const e: LineEntry = { id: n.id, key: `${this.path}/${n.name}`, order: BigInt(n.seq), token: n.czxid }
    if (n.address !== undefined) e.address = n.address
    if (n.tags !== undefined) e.tags = n.tags
    return e
  }
}

function positive(field: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new InvalidOptionsError(field, 'must be a positive number of ms')
  return value
}
