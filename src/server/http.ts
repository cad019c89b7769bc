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
 */
import { timingSafeEqual } from 'node:crypto'
import http from 'node:http'
import type { Registry } from 'prom-client'
import type { DaemonElection } from '../daemon/elections.js'
import type { Logger } from '../daemon/log.js'
import type { LeaderInfo, LeadershipChange } from '../election.js'
import { ClusterFeed } from './dashboard/feed.js'
import { DASHBOARD_PATHS, serveDashboard } from './dashboard/page.js'

export interface HttpApiOptions {
  election: DaemonElection
  metrics: Registry
  log: Logger
  /** Bearer token for POST /resign; without it mutating endpoints answer 404. */
  token?: string
  /** GET /readyz answers 200 only while this node leads (for a Service that must reach only the leader). */
  readyWhenLeader?: boolean
  /** Bully answers /leader with the leader's IP, as the Go daemon did; raft with host:port. */
  leaderAddressAsIp?: boolean
  /** Called before a resign goes ahead (`ballot exec` stops its child first). */
  beforeResign?: () => Promise<void>
  /** The driver's name ('raft', 'bully', 'lease') for the dashboard. Default 'raft'. */
  algo?: string
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

export class HttpApi {
  readonly server: http.Server
  private readonly opts: HttpApiOptions
  private readonly streams = new Set<http.ServerResponse>()
  /** The streams that asked for the dashboard's view (`/events?cluster=1`); a subset of `streams`. */
  private readonly clusterStreams = new Set<http.ServerResponse>()
  private readonly feed: ClusterFeed
  private keepAlive: NodeJS.Timeout | undefined
  private clusterTick: NodeJS.Timeout | undefined

  constructor(opts: HttpApiOptions) {
    this.opts = opts
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        opts.log.error({ err }, 'http handler failed')
        if (!res.headersSent) this.text(res, 500, 'internal error\n')
        else res.end()
      })
    })
    // The feed listens first, so that a change's history is recorded before the change is broadcast.
    this.feed = new ClusterFeed(opts.election, opts.algo ?? 'raft')
    opts.election.on('change', (c) => this.broadcast(c))
  }

  async listen(host: string, port: number): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    this.keepAlive = setInterval(() => {
      for (const s of this.streams) s.write(': keep-alive\n\n')
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

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://ballot')
    const route = DASHBOARD_PATHS.includes(url.pathname) ? 'GET' : ROUTES[url.pathname]
    if (!route || (route === 'POST' && url.pathname === '/resign' && !this.opts.token)) {
      this.text(res, 404, 'not found\n')
      return
    }
    const method = req.method === 'HEAD' ? 'GET' : req.method
    if (method !== route) {
      res.setHeader('Allow', route === 'GET' ? 'GET, HEAD' : route)
      this.text(res, 405, `method ${req.method} not allowed\n`)
      return
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
        if (!this.authorized(req)) {
          res.setHeader('WWW-Authenticate', 'Bearer')
          this.text(res, 401, 'a valid bearer token is required\n')
          return
        }
        if (!election.isLeader()) {
          this.text(res, 409, 'this node is not the leader\n')
          return
        }
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

  private authorized(req: http.IncomingMessage): boolean {
    const header = req.headers.authorization ?? ''
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '')
    const want = Buffer.from(this.opts.token ?? '')
    return given.length === want.length && timingSafeEqual(given, want)
  }

  private openStream(req: http.IncomingMessage, res: http.ServerResponse, cluster: boolean): void {
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
        for (const s of this.clusterStreams) s.write(event)
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
    for (const s of this.streams) s.write(`event: change\ndata: ${data}\n\n`)
    if (this.clusterStreams.size > 0) {
      const view = this.clusterEvent() + this.historyEvent()
      for (const s of this.clusterStreams) s.write(view)
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
