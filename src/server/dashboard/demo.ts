/**
 * `ballot demo`'s dashboard: one page at one address for the whole local cluster, with the controls
 * that break it (kill -9, pause, resume, restart, resign). It reads every node's `/events?cluster=1` and
 * combines them: each card shows what its own node says of itself (role, term), and the freshest
 * view (the leader's, when there is one) supplies who leads and how recently each member was heard.
 * A node whose process is paused, killed or not yet answering is shown down, whatever was said of it.
 *
 * Controls kill processes, so they are guarded three ways: only loopback Host headers are served (a
 * web page elsewhere cannot reach the demo by DNS rebinding), every POST needs the demo's key as a
 * bearer token (a header, so a cross-site page cannot send it without a CORS preflight, which is never
 * granted), and the key is never put in the page: the demo prints it once in the address's fragment.
 */
import { timingSafeEqual } from 'node:crypto'
import http from 'node:http'
import { type LeadershipEnd, LeadershipHistory } from './history.js'
import { serveDashboard } from './page.js'
import { SseReader } from './sse-client.js'
import type { ClusterSnapshot, MemberCard, ProcessCard } from './types.js'

/** What the demo can do to a node. */
export type DemoAction = 'kill' | 'pause' | 'resume' | 'restart' | 'resign'
const ACTIONS: readonly DemoAction[] = ['kill', 'pause', 'resume', 'restart', 'resign']

/** One node of the demo, as its supervisor knows it. */
export interface DemoNodeInfo {
  id: string
  /** Its HTTP API (host:port). */
  http: string
  pid?: number
  state: ProcessCard['state']
}

/** The supervisor behind the dashboard: the nodes, and the actions on them. */
export interface DemoControls {
  nodes(): DemoNodeInfo[]
  /** Does `action` to node `id`; resolves with a line for the user, rejects with why it could not. */
  act(id: string, action: DemoAction): Promise<string>
}

export interface DemoDashboardOptions {
  controls: DemoControls
  /** The bearer token every control request must carry. */
  key: string
  /** The driver, for the page ('raft'). */
  algo: string
}

/** A node's own stream is fresh while its last cluster event (one a second) is younger than this. */
const FRESH_MS = 2500
/** An action on a node explains the end of its leadership if that ends this soon after. */
const ACTION_WINDOW_MS = 30_000
const PUSH_EVERY_MS = 1000

const NOTES: Record<ProcessCard['state'], string> = {
  running: '',
  starting: 'starting…',
  paused: 'paused (SIGSTOP)',
  killed: 'killed (SIGKILL)',
  exited: 'exited',
}

/** See the module comment. */
export class DemoDashboard {
  readonly server: http.Server
  private readonly opts: DemoDashboardOptions
  private readonly readers = new Map<string, SseReader>()
  private readonly latest = new Map<string, { snap: ClusterSnapshot; at: number }>()
  private readonly lastAction = new Map<string, { action: DemoAction; at: number }>()
  /** Each node's process as last seen ("state pid"), to notice when what a node said is out of date. */
  private readonly known = new Map<string, string>()
  private readonly log = new LeadershipHistory()
  private readonly streams = new Set<http.ServerResponse>()
  private view: string | undefined
  private composed: ClusterSnapshot | undefined
  private historyJson = ''
  private tick: NodeJS.Timeout | undefined
  private pending = false
  private hosts = new Set<string>()

  constructor(opts: DemoDashboardOptions) {
    this.opts = opts
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch(() => {
        if (!res.headersSent) this.text(res, 500, 'internal error\n')
        else res.end()
      })
    })
  }

  /** Listens on loopback and starts reading the nodes; resolves with the address (host:port). */
  async listen(host: string, port: number): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    const bound = (this.server.address() as { port: number }).port
    this.hosts = new Set([`127.0.0.1:${bound}`, `localhost:${bound}`, `[::1]:${bound}`])
    this.changed()
    this.tick = setInterval(() => this.push(), PUSH_EVERY_MS)
    this.tick.unref()
    return `${host.includes(':') ? `[${host}]` : host}:${bound}`
  }

  /** The nodes or their processes changed (started, killed, paused...): show it now. */
  changed(): void {
    for (const n of this.opts.controls.nodes()) {
      // What a node said before it was killed, paused or restarted is no evidence of what it says now
      // (a restarted leader's last word would still claim leadership): wait for its next word.
      const process = `${n.state} ${n.pid}`
      if (this.known.get(n.id) !== process) this.latest.delete(n.id)
      this.known.set(n.id, process)
      if (this.readers.has(n.id)) continue
      this.readers.set(
        n.id,
        new SseReader(`http://${n.http}/events?cluster=1`, (name, data) => {
          if (name !== 'cluster') return
          this.latest.set(n.id, { snap: JSON.parse(data) as ClusterSnapshot, at: Date.now() })
          this.schedulePush()
        }),
      )
    }
    this.schedulePush()
  }

  /** Stops reading the nodes, ends every page's stream and closes the server. */
  async close(): Promise<void> {
    clearInterval(this.tick)
    for (const r of this.readers.values()) r.close()
    for (const s of this.streams) s.end()
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  /** The combined view now (also what `/events` sends). */
  snapshot(): ClusterSnapshot {
    return this.compose()
  }

  private schedulePush(): void {
    if (this.pending) return
    this.pending = true
    // Several nodes report the same change within a few milliseconds: send one update for all.
    setTimeout(() => {
      this.pending = false
      this.push()
    }, 15).unref()
  }

  private push(): void {
    const snap = this.compose()
    const history = JSON.stringify({ leaderships: this.log.list() })
    const historyChanged = history !== this.historyJson
    this.historyJson = history
    const out = `event: cluster\ndata: ${JSON.stringify(snap)}\n\n${historyChanged ? `event: history\ndata: ${history}\n\n` : ''}`
    for (const s of this.streams) s.write(out)
  }

  private compose(): ClusterSnapshot {
    const now = Date.now()
    const nodes = this.opts.controls.nodes()
    const processes: Record<string, ProcessCard> = {}
    for (const n of nodes) processes[n.id] = { pid: n.pid, state: n.state, http: n.http }
    /** A node's own latest view, if its process runs and its stream is fresh. */
    const own = (id: string) => {
      const l = this.latest.get(id)
      return processes[id]?.state === 'running' && l && now - l.at < FRESH_MS ? l.snap : undefined
    }
    // Whose view to show: the node that holds the leadership (it hears from everybody), else the one
    // shown before while it answers, else any that answers.
    const answering = nodes.map((n) => n.id).filter((id) => own(id) !== undefined)
    const claimant = answering
      .map((id) => own(id) as ClusterSnapshot)
      .filter((s) => s.isLeader && s.leader?.id === s.view)
      .sort((a, b) => (BigInt(b.leader?.token ?? 0) > BigInt(a.leader?.token ?? 0) ? 1 : -1))[0]
    this.view =
      claimant?.view ?? (this.view !== undefined && answering.includes(this.view) ? this.view : answering[0])
    this.record(now, claimant)
    const base = (this.view !== undefined ? own(this.view) : undefined) ?? this.composed
    const members: MemberCard[] = (base?.members ?? nodes.map((n) => emptyCard(n.id, n.http))).map((m) => {
      const state = processes[m.id]?.state ?? 'exited'
      const mine = own(m.id)?.members.find((x) => x.self)
      // In the demo no card is "this node"; the viewpoint's own card is marked as such instead.
      const card: MemberCard = { ...m, self: m.id === this.view }
      delete card.note
      if (state !== 'running' || !mine) {
        card.role = 'down'
        card.note = state === 'running' ? 'not answering' : NOTES[state]
      } else {
        card.role = mine.role
        card.term = mine.term
        card.tags = mine.tags
        if (mine.note) card.note = mine.note
      }
      if (m.id === this.view) card.reachable = true
      return card
    })
    const composed: ClusterSnapshot = {
      algo: base?.algo ?? this.opts.algo,
      view: this.view ?? base?.view ?? '',
      viewing: answering.length > 0,
      role: base?.role ?? 'follower',
      isLeader: base?.isLeader ?? false,
      term: base?.term ?? '0',
      leader: base?.leader ?? null,
      members,
      silentAfterMs: base?.silentAfterMs ?? 1000,
      at: now,
      processes,
    }
    this.composed = composed
    return composed
  }

  /** Feeds the timeline: the leadership now is the claimant's, if any. */
  private record(now: number, claimant: ClusterSnapshot | undefined): void {
    const current = this.log.current
    let end: LeadershipEnd | undefined
    if (current && (claimant?.view !== current.leader || claimant.leader?.token !== current.token)) {
      const done = this.lastAction.get(current.leader)
      if (done && now - done.at <= ACTION_WINDOW_MS)
        end = done.action === 'resign' ? { how: 'hand-over' } : { how: 'election', at: done.at }
    }
    const l = claimant?.leader
    this.log.observe(now, l ? { id: l.id, token: l.token, since: l.since } : undefined, end)
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (!this.hosts.has(req.headers.host ?? '')) {
      this.text(res, 403, 'the demo dashboard answers only on loopback addresses\n')
      return
    }
    const url = new URL(req.url ?? '/', 'http://demo')
    const control = /^\/demo\/nodes\/([^/]+)\/([a-z]+)$/.exec(url.pathname)
    if (control) {
      if (req.method !== 'POST') {
        res.setHeader('Allow', 'POST')
        this.text(res, 405, `method ${req.method} not allowed\n`)
        return
      }
      await this.control(req, res, decodeURIComponent(control[1] ?? ''), control[2] ?? '')
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD')
      this.text(res, 405, `method ${req.method} not allowed\n`)
      return
    }
    if (url.pathname === '/events') {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' })
      res.write(
        `retry: 1000\n\nevent: cluster\ndata: ${JSON.stringify(this.compose())}\n\nevent: history\ndata: ${JSON.stringify({ leaderships: this.log.list() })}\n\n`,
      )
      this.streams.add(res)
      req.on('close', () => this.streams.delete(res))
      return
    }
    if (url.pathname === '/healthz') {
      this.text(res, 200, 'ok\n')
      return
    }
    if (!serveDashboard(url.pathname, req, res, { controls: 'demo', title: 'ballot demo' }))
      this.text(res, 404, 'not found\n')
  }

  private async control(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    id: string,
    action: string,
  ): Promise<void> {
    if (!this.authorized(req)) {
      res.setHeader('WWW-Authenticate', 'Bearer')
      this.text(res, 401, "the demo's key is required (it is in the address the demo printed)\n")
      return
    }
    if (!ACTIONS.includes(action as DemoAction) || !this.opts.controls.nodes().some((n) => n.id === id)) {
      this.text(res, 404, 'no such node or action\n')
      return
    }
    // Noted first: the timeline must know why a leadership ends before the nodes report that it did.
    this.lastAction.set(id, { action: action as DemoAction, at: Date.now() })
    try {
      const said = await this.opts.controls.act(id, action as DemoAction)
      this.changed()
      this.text(res, 202, `${said}\n`)
    } catch (err) {
      this.text(res, 409, `${(err as Error).message}\n`)
    }
  }

  private authorized(req: http.IncomingMessage): boolean {
    const header = req.headers.authorization ?? ''
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '')
    const want = Buffer.from(this.opts.key)
    return given.length === want.length && timingSafeEqual(given, want)
  }

  private text(res: http.ServerResponse, status: number, body: string): void {
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' })
    res.end(body)
  }
}

function emptyCard(id: string, address: string): MemberCard {
  return { id, address, kind: 'voter', role: 'unknown', term: '0', tags: {}, reachable: false, self: false }
}
