/**
 * Prometheus metrics of one node, read from the election when scraped (so they are never stale), plus
 * a histogram of failover times measured here: from losing sight of a leader to knowing the next one.
 */
import client from 'prom-client'
import type { DaemonElection } from '../daemon/elections.js'
import type { LeadershipChange } from '../election.js'
import type { LoopDelayMonitor } from './loop-delay.js'

/** Figures from outside the election that the metrics show when given. */
export interface MetricsSources {
  /** Event-loop stalls of this process. */
  loopDelay?: LoopDelayMonitor
  /** HTTP clients refused so far, by reason (read at each scrape). */
  httpRefused?: () => ReadonlyMap<string, number>
}

const ROLES = ['follower', 'candidate', 'leader', 'observer', 'stopped'] as const

export function createMetrics(election: DaemonElection, sources: MetricsSources = {}): client.Registry {
  const registry = new client.Registry()
  const labels = { node: election.id }
  registry.setDefaultLabels(labels)

  new client.Gauge({
    name: 'ballot_state',
    help: 'This node role: 1 for the current one',
    labelNames: ['role'],
    registers: [registry],
    collect() {
      for (const r of ROLES) this.set({ role: r }, election.state() === r ? 1 : 0)
    },
  })
  new client.Gauge({
    name: 'ballot_is_leader',
    help: '1 while this node may act as leader (raft: a valid lease)',
    registers: [registry],
    collect() {
      this.set(election.isLeader() ? 1 : 0)
    },
  })
  new client.Gauge({
    name: 'ballot_term',
    help: 'Current term (raft) or epoch (bully): the fencing token',
    registers: [registry],
    collect() {
      this.set(Number(election.clusterState().term))
    },
  })
  const counter = (name: string, help: string, read: () => number) => {
    let last = 0
    new client.Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const now = read()
        if (now > last) this.inc(now - last)
        last = now
      },
    })
  }
  counter(
    'ballot_leader_changes_total',
    'Leaders this node has seen come in',
    () => election.counters.leaderChanges,
  )
  counter(
    'ballot_elections_started_total',
    'Elections this node started',
    () => election.counters.electionsStarted,
  )
  counter('ballot_elections_won_total', 'Elections this node won', () => election.counters.electionsWon)
  counter('ballot_messages_sent_total', 'Cluster messages sent', () => election.transportStats.messagesSent)
  counter(
    'ballot_messages_received_total',
    'Cluster messages received',
    () => election.transportStats.messagesReceived,
  )
  const droppedLast = new Map<string, number>()
  new client.Counter({
    name: 'ballot_messages_dropped_total',
    help: 'Cluster messages dropped, by reason (malformed, auth, replay, cluster, oversized, ...)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      for (const [reason, n] of election.transportStats.dropped) {
        const last = droppedLast.get(reason) ?? 0
        if (n > last) this.inc({ reason }, n - last)
        droppedLast.set(reason, n)
      }
    },
  })
  const connectionsLast = new Map<string, number>()
  new client.Counter({
    name: 'ballot_connections_dropped_total',
    help: 'Cluster connections this node closed, by reason (handshake-timeout, idle, preauth-oversized, preauth-limit, tls, replaced, silent)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      for (const [reason, n] of election.transportStats.connectionsDropped) {
        const last = connectionsLast.get(reason) ?? 0
        if (n > last) this.inc({ reason }, n - last)
        connectionsLast.set(reason, n)
      }
    },
  })
  new client.Gauge({
    name: 'ballot_unauthenticated_connections',
    help: 'Inbound cluster connections open now that have not yet sent a valid frame',
    registers: [registry],
    collect() {
      this.set(election.transportStats.unauthenticatedConnections)
    },
  })
  new client.Gauge({
    name: 'ballot_peer_last_contact_seconds',
    help: 'Seconds since this node last heard from each peer',
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      this.reset()
      for (const m of election.clusterState().members) {
        if (!m.self && m.lastContactMs !== undefined) this.set({ peer: m.id }, m.lastContactMs / 1000)
      }
    },
  })
  const { loopDelay, httpRefused } = sources
  if (loopDelay) {
    new client.Gauge({
      name: 'ballot_event_loop_stall_seconds',
      help: 'Event-loop stalls of this process while it leads, beyond the sampling interval: p50, p99 and max since start, and the worst of the last seconds (recent)',
      labelNames: ['stat'],
      registers: [registry],
      collect() {
        const s = loopDelay.snapshot()
        this.set({ stat: 'p50' }, s.p50Ms / 1000)
        this.set({ stat: 'p99' }, s.p99Ms / 1000)
        this.set({ stat: 'max' }, s.maxMs / 1000)
        this.set({ stat: 'recent' }, s.recentMaxMs / 1000)
      },
    })
    new client.Gauge({
      name: 'ballot_event_loop_stall_warn_seconds',
      help: 'The stall that counts as close to the lease margin (half of it)',
      registers: [registry],
      collect() {
        this.set(loopDelay.snapshot().warnMs / 1000)
      },
    })
    counter(
      'ballot_event_loop_stalls_total',
      'Times a stall reached the warning threshold (ballot_event_loop_stall_warn_seconds)',
      () => loopDelay.snapshot().stalls,
    )
  }
  if (httpRefused) {
    const refusedLast = new Map<string, number>()
    new client.Counter({
      name: 'ballot_http_refused_total',
      help: 'HTTP clients refused, by reason (connections, streams, bad-request, timeout, unauthorized, ...)',
      labelNames: ['reason'],
      registers: [registry],
      collect() {
        for (const [reason, n] of httpRefused()) {
          const last = refusedLast.get(reason) ?? 0
          if (n > last) this.inc({ reason }, n - last)
          refusedLast.set(reason, n)
        }
      },
    })
  }
  const failover = new client.Histogram({
    name: 'ballot_failover_seconds',
    help: 'From losing sight of a leader to knowing the next one, as seen by this node',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  })
  let lostAt: number | undefined
  election.on('change', (c: LeadershipChange) => {
    if (c.leader === undefined && c.previous !== undefined) lostAt ??= c.at
    else if (c.leader !== undefined && (c.previous === undefined || c.previous.id !== c.leader.id)) {
      if (lostAt !== undefined) failover.observe((c.at - lostAt) / 1000)
      lostAt = undefined
    }
  })
  return registry
}
