/**
 * Each node's HTTP API:
 *   GET  /leader    the leader's address as plain text (200), or 503 with the reason; JSON on request
 *   GET  /status    this node and the cluster state (JSON)
 *   GET  /healthz   the process runs; GET /readyz  it has joined (and, optionally, it leads)
 *   GET  /metrics   Prometheus text
 *   GET  /events    server-sent events: every state and leader change (`?cluster=1`: and the dashboard's
 *                   view, every second and at each change)
 *   POST /resign    step down (bearer token; off when no token is configured)
 *   GET  /          the dashboard (./dashboard/), with its script, stylesheet and icon
 *
 * The API may face an untrusted network, and it shares its process (and event loop) with the election,
 * so what a client may hold is bounded: headers (size and time to arrive), bodies (none is read; a
 * request that announces one larger than 1 KiB is refused), idle keep-alive connections, open
 * connections in all, and event streams (each with a bound on what it may leave unread). Connections
 * over the cap are closed as they are accepted, before any parser is set up, so a flood costs little.
 * A malformed request gets its 4xx status and no log line; each refusal is counted by reason.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import http from 'node:http'
import type { Duplex } from 'node:stream'
import type { Registry } from 'prom-client'
import type { DaemonElection } from '../daemon/elections.js'
import type { Logger } from '../daemon/log.js'
import type { LeaderInfo, LeadershipChange } from '../election.js'
import { ClusterFeed } from './dashboard/feed.js'
import { DASHBOARD_PATHS, serveDashboard } from './dashboard/page.js'
import type { LoopDelayMonitor } from './loop-delay.js'

/** Bounds on what clients may hold; every field has a default (HTTP_LIMITS). */
export interface HttpLimits {
  /** Connections open at once; more are closed as they are accepted. */
  maxConnections: number
  /** `/events` streams open at once; more get 503 with Retry-After. */
  maxStreams: number
  /** Bytes an event stream may leave unread (a client that stops reading) before it is closed. */
  maxStreamBacklogBytes: number
  /** Largest request head (request line and headers), bytes; larger gets 431. */
  maxHeaderBytes: number
  /** Largest request body announced; larger gets 413 (bodies are never read). */
  maxBodyBytes: number
  /** Time for a request's head to arrive (ms); slower gets 408 (slowloris). */
  headersTimeoutMs: number
  /** Time for a whole request to arrive (ms); slower gets 408 (a dripping body). */
  requestTimeoutMs: number
  /** An idle keep-alive connection is closed after this (ms). */
  keepAliveTimeoutMs: number
  /** Pending connections the kernel may queue for accept (listen backlog). */
  backlog: number
  /** Least time between two accepted resigns (ms); sooner gets 429. */
  minResignIntervalMs: number
}

/** The limits the daemon runs with. */
export const HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({
  maxConnections: 256,
  maxStreams: 64,
  maxStreamBacklogBytes: 256 * 1024,
  maxHeaderBytes: 8 * 1024,
  maxBodyBytes: 1024,
  headersTimeoutMs: 5000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5000,
  backlog: 4096,
  minResignIntervalMs: 1000,
})

/** Why the API refused a client, as counted in `ballot_http_refused_total{reason}`. */
export type HttpRefusal =
  | 'connections'
  | 'streams'
  | 'bad-request'
  | 'headers-too-large'
  | 'body-too-large'
  | 'timeout'
  | 'unauthorized'
  | 'forbidden'
  | 'method'
  | 'rate-limited'

export interface HttpApiOptions {
  election: DaemonElection
  metrics: Registry
  log: Logger
  /** Bearer token for POST /resign; without it mutating endpoints answer 403 (they are off). */
  token?: string
  /** GET /readyz answers 200 only while this node leads (for a Service that must reach only the leader). */
  readyWhenLeader?: boolean
  /** Bully answers /leader with the leader's IP, as the Go daemon did; raft with host:port. */
  leaderAddressAsIp?: boolean
  /** Called before a resign goes ahead (`ballot exec` stops its child first). */
  beforeResign?: () => Promise<void>
  /** The driver's name ('raft', 'bully', 'lease') for the dashboard. Default 'raft'. */
  algo?: string
  /** Event-loop stalls, for /status. */
  loopDelay?: LoopDelayMonitor
  /** Bounds on clients; each field left out takes HTTP_LIMITS'. */
  limits?: Partial<HttpLimits>
}

/** How often a dashboard stream gets the cluster's view even when nothing changed (last contact ages). */
const CLUSTER_EVERY_MS = 1000

/** JSON that can carry bigint fencing tokens (as strings: tokens may exceed 2^53 in principle). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))
}

function leaderJson(l: LeaderInfo) {
  return {
    id: l.id,
    address: l.address,
    token: l.token,
    since: new Date(l.since).toISOString(),
    tags: l.tags ?? {},
  }
}

function ipOf(address: string): string {
  const at = address.lastIndexOf(':')
  if (at < 0 || address.includes('@')) return address
  const host = address.slice(0, at)
  return host.startsWith('[') ? host.slice(1, -1) : host
}

/** The leader this node may name: itself only while isLeader() holds (a lapsed lease names nobody). */
export function nameableLeader(election: DaemonElection): { leader?: LeaderInfo; reason?: string } {
  const leader = election.leader()
  if (!leader) return { reason: `no leader known (this node is ${election.state()})` }
  if (leader.id === election.id && !election.isLeader())
    return { reason: 'this node was leader but its lease has lapsed; waiting for the next leader' }
  return { leader }
}

/** A request the API refuses, with its status (thrown while routing; never logged). */
class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly reason: HttpRefusal,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }
}

/** Equal-length digests, so comparing a token takes the same time whatever its length or content. */
const digest = (s: string) => createHash('sha256').update(s).digest()

export class HttpApi {
  readonly server: http.Server
  /** The limits in force. */
  readonly limits: Readonly<HttpLimits>
  /** Clients refused, by reason (for `/metrics` and `/status`). */
  readonly refused = new Map<HttpRefusal, number>()
  private readonly opts: HttpApiOptions
  private readonly tokenDigest: Buffer | undefined
  private lastResignAt = Number.NEGATIVE_INFINITY
  private lastServerErrorLogAt = Number.NEGATIVE_INFINITY
  private readonly streams = new Set<http.ServerResponse>()
  /** The streams that asked for the dashboard's view (`/events?cluster=1`); a subset of `streams`. */
  private readonly clusterStreams = new Set<http.ServerResponse>()
  private readonly feed: ClusterFeed
  private keepAlive: NodeJS.Timeout | undefined
  private clusterTick: NodeJS.Timeout | undefined

  constructor(opts: HttpApiOptions) {
    this.opts = opts
    const limits: HttpLimits = { ...HTTP_LIMITS, ...opts.limits }
    this.limits = Object.freeze(limits)
    this.tokenDigest = opts.token === undefined ? undefined : digest(opts.token)
    this.server = http.createServer(
      {
        maxHeaderSize: limits.maxHeaderBytes,
        headersTimeout: limits.headersTimeoutMs,
        requestTimeout: limits.requestTimeoutMs,
        keepAliveTimeout: limits.keepAliveTimeoutMs,
        // How often Node looks for requests past their time: often enough that a slow client is cut
        // near its deadline, rarely enough to cost nothing idle.
        connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs / 2),
        noDelay: true,
      },
      (req, res) => {
        this.handle(req, res).catch((err: unknown) => this.failed(err, res))
      },
    )
    // Past the cap, Node closes a connection as it is accepted: no socket object, no parser.
    this.server.maxConnections = limits.maxConnections
    this.server.on('drop', () => this.count('connections'))
    this.server.on('clientError', (err, socket) => this.clientError(err, socket))
    // The feed listens first, so that a change's history is recorded before the change is broadcast.
    this.feed = new ClusterFeed(opts.election, opts.algo ?? 'raft')
    opts.election.on('change', (c) => this.broadcast(c))
  }

  async listen(host: string, port: number): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen({ port, host, backlog: this.limits.backlog }, () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    this.keepAlive = setInterval(() => {
      for (const s of this.streams) this.send(s, ': keep-alive\n\n')
    }, 15_000)
    this.keepAlive.unref()
    const a = this.server.address()
    return typeof a === 'object' && a ? `${a.address}:${a.port}` : String(a)
  }

  async close(): Promise<void> {
    clearInterval(this.keepAlive)
    clearInterval(this.clusterTick)
    this.feed.close()
    for (const s of this.streams) s.end()
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  /** A handler's failure: a refusal gets its status; anything else is a bug here (500, logged rarely). */
  private failed(err: unknown, res: http.ServerResponse): void {
    if (err instanceof Refusal) {
      this.count(err.reason)
      if (res.headersSent) {
        res.end()
        return
      }
      for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v)
      this.text(res, err.status, `${err.message}\n`)
      return
    }
    // One line with the stack at most every 10 s: a request that trips a bug cannot flood the log.
    const now = performance.now()
    if (now - this.lastServerErrorLogAt >= 10_000) {
      this.lastServerErrorLogAt = now
      this.opts.log.error({ err }, 'http handler failed')
    }
    if (!res.headersSent) this.text(res, 500, 'internal error\n')
    else res.end()
  }

  /**
   * A request Node's parser refused (malformed, head too large, too slow) or a connection that failed.
   * Answered with its status when the socket can still take it, never logged: any client could
   * otherwise write to the log at will.
   */
  private clientError(err: Error & { code?: string }, socket: Duplex): void {
    const code = err.code ?? ''
    if (code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) {
      socket.destroy()
      return
    }
    let status = 400
    let reason: HttpRefusal = 'bad-request'
    if (code === 'HPE_HEADER_OVERFLOW') {
      status = 431
      reason = 'headers-too-large'
    } else if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'HPE_HEADERS_TIMEOUT') {
      status = 408
      reason = 'timeout'
    }
    this.count(reason)
    // A response under way on this connection (a keep-alive timeout after one) gets no second one.
    if ((socket as { _httpMessage?: unknown })._httpMessage) {
      socket.destroy()
      return
    }
    const text = http.STATUS_CODES[status] ?? 'Bad Request'
    socket.end(
      `HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${text.length + 1}\r\nConnection: close\r\n\r\n${text}\n`,
    )
  }

  private count(reason: HttpRefusal): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1)
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    res.setHeader('X-Content-Type-Options', 'nosniff')
    let url: URL
    try {
      url = new URL(req.url ?? '/', 'http://ballot')
    } catch {
      throw new Refusal(400, 'bad-request', 'malformed request target')
    }
    const route = DASHBOARD_PATHS.includes(url.pathname) ? 'GET' : ROUTES[url.pathname]
    if (!route) {
      this.text(res, 404, 'not found\n')
      return
    }
    const method = req.method === 'HEAD' ? 'GET' : req.method
    if (method !== route)
      throw new Refusal(405, 'method', `method ${req.method} not allowed`, {
        Allow: route === 'GET' ? 'GET, HEAD' : route,
      })
    // No endpoint reads a body; one that is announced large is refused before anything happens, and the
    // connection is not kept (what is left of the body would otherwise have to be read).
    const length = Number(req.headers['content-length'] ?? 0)
    if (!(length <= this.limits.maxBodyBytes) || req.headers['transfer-encoding'] !== undefined) {
      res.shouldKeepAlive = false
      throw new Refusal(
        413,
        'body-too-large',
        `a request body may not exceed ${this.limits.maxBodyBytes} bytes`,
        {
          Connection: 'close',
        },
      )
    }
    const { election } = this.opts
    switch (url.pathname) {
      case '/leader': {
        const { leader, reason } = nameableLeader(election)
        const wantsJson = (req.headers.accept ?? '').includes('application/json')
        if (!leader) {
          if (wantsJson) this.json(res, 503, { error: reason })
          else this.text(res, 503, `${reason}\n`)
          return
        }
        if (wantsJson) this.json(res, 200, leaderJson(leader))
        else {
          const address = leader.address ?? leader.id
          this.text(res, 200, `${this.opts.leaderAddressAsIp ? ipOf(address) : address}\n`)
        }
        return
      }
      case '/status': {
        const state = election.clusterState()
        const stats = election.transportStats
        this.json(res, 200, {
          ...state,
          isLeader: election.isLeader(),
          // How long this node's self-claim holds unless renewed (its own clock): lets an observer tell
          // when two claims could overlap in real time. null when not leading, and for bully (no lease).
          leaseRemainingMs: election.leaseRemainingMs() ?? null,
          address: election.address,
          counters: election.counters,
          transport: {
            messagesSent: stats.messagesSent,
            messagesReceived: stats.messagesReceived,
            sendFailures: stats.sendFailures,
            dropped: Object.fromEntries(stats.dropped),
          },
          ...(this.opts.loopDelay ? { eventLoop: this.opts.loopDelay.snapshot() } : {}),
          http: {
            connections: await this.connectionCount(),
            streams: this.streams.size,
            refused: Object.fromEntries(this.refused),
          },
        })
        return
      }
      case '/healthz':
        this.text(res, 200, 'ok\n')
        return
      case '/readyz': {
        const role = election.state()
        if (role === 'stopped') this.text(res, 503, 'stopped\n')
        else if (this.opts.readyWhenLeader && !election.isLeader())
          this.text(res, 503, `not leader (${role})\n`)
        else this.text(res, 200, 'ready\n')
        return
      }
      case '/metrics':
        res.writeHead(200, { 'Content-Type': this.opts.metrics.contentType })
        res.end(await this.opts.metrics.metrics())
        return
      case '/events':
        this.openStream(req, res, url.searchParams.get('cluster') === '1')
        return
      case '/resign': {
        this.authorize(req)
        if (!election.isLeader()) {
          this.text(res, 409, 'this node is not the leader\n')
          return
        }
        // Each resign moves the leadership: whoever holds the token may not keep the cluster electing.
        const now = performance.now()
        const wait = this.lastResignAt + this.limits.minResignIntervalMs - now
        if (wait > 0)
          throw new Refusal(429, 'rate-limited', 'a resign was accepted moments ago; try again shortly', {
            'Retry-After': String(Math.ceil(wait / 1000)),
          })
        this.lastResignAt = now
        await this.opts.beforeResign?.()
        this.feed.noteResign()
        await election.resign()
        this.opts.log.info('resigned on request')
        this.text(res, 202, 'resigning\n')
        return
      }
      default:
        serveDashboard(url.pathname, req, res, {
          // Controls exist only where a token can authorize them; the page never learns the token.
          controls: this.opts.token ? 'token' : 'none',
          title: `ballot · ${election.id}`,
        })
        return
    }
  }

  /**
   * State changes need the bearer token, always: without a configured token they are off (403), with
   * one a request without credentials gets 401 and a wrong token 403.
   */
  private authorize(req: http.IncomingMessage): void {
    if (!this.tokenDigest)
      throw new Refusal(403, 'forbidden', 'state changes are off: this node has no --http-token')
    const header = req.headers.authorization
    if (header === undefined || !/^Bearer\s/i.test(header))
      throw new Refusal(401, 'unauthorized', 'a bearer token is required', { 'WWW-Authenticate': 'Bearer' })
    if (!timingSafeEqual(digest(header.slice(7).trim()), this.tokenDigest))
      throw new Refusal(403, 'forbidden', 'the bearer token is not valid', {
        'WWW-Authenticate': 'Bearer error="invalid_token"',
      })
  }

  /** Connections open now. */
  private connectionCount(): Promise<number> {
    return new Promise((resolve) => this.server.getConnections((_err, n) => resolve(n ?? 0)))
  }

  /** Writes to an event stream; a client that has left too much unread is dropped (memory stays bounded). */
  private send(s: http.ServerResponse, chunk: string): void {
    if (s.writableLength > this.limits.maxStreamBacklogBytes) {
      s.destroy()
      return
    }
    s.write(chunk)
  }

  private openStream(req: http.IncomingMessage, res: http.ServerResponse, cluster: boolean): void {
    if (this.streams.size >= this.limits.maxStreams)
      throw new Refusal(503, 'streams', `too many event streams open (${this.limits.maxStreams})`, {
        'Retry-After': '5',
      })
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
    })
    const { election } = this.opts
    // The current state first, so a client needs no second request.
    res.write(
      `event: state\ndata: ${toJson({ role: election.state(), isLeader: election.isLeader(), leader: election.leader() ?? null })}\n\n`,
    )
    this.streams.add(res)
    if (cluster) {
      // A dashboard that loses this node should be back soon after the node is.
      res.write('retry: 1000\n\n')
      res.write(this.clusterEvent())
      res.write(this.historyEvent())
      this.clusterStreams.add(res)
      this.clusterTick ??= setInterval(() => {
        const event = this.clusterEvent()
        for (const s of this.clusterStreams) this.send(s, event)
      }, CLUSTER_EVERY_MS).unref()
    }
    req.on('close', () => {
      this.streams.delete(res)
      this.clusterStreams.delete(res)
      if (this.clusterStreams.size === 0) {
        clearInterval(this.clusterTick)
        this.clusterTick = undefined
      }
    })
  }

  private clusterEvent(): string {
    return `event: cluster\ndata: ${toJson(this.feed.snapshot())}\n\n`
  }

  private historyEvent(): string {
    return `event: history\ndata: ${toJson(this.feed.history())}\n\n`
  }

  private broadcast(c: LeadershipChange): void {
    const data = toJson({
      role: c.role,
      leader: c.leader ? leaderJson(c.leader) : null,
      previous: c.previous ? leaderJson(c.previous) : null,
      at: new Date(c.at).toISOString(),
      isLeader: this.opts.election.isLeader(),
    })
    for (const s of this.streams) this.send(s, `event: change\ndata: ${data}\n\n`)
    if (this.clusterStreams.size > 0) {
      const view = this.clusterEvent() + this.historyEvent()
      for (const s of this.clusterStreams) this.send(s, view)
    }
  }

  private text(res: http.ServerResponse, status: number, body: string): void {
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' })
    res.end(body)
  }

  private json(res: http.ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'Content-Type': 'application/json' })
    res.end(`${toJson(body)}\n`)
  }
}

const ROUTES: Record<string, 'GET' | 'POST'> = {
  '/leader': 'GET',
  '/status': 'GET',
  '/healthz': 'GET',
  '/readyz': 'GET',
  '/metrics': 'GET',
  '/events': 'GET',
  '/resign': 'POST',
}
