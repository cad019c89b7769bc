/**
 * One daemon node: the election from the config, its HTTP API, metrics, webhook and logs, started and
 * stopped together. `ballot run` and `ballot exec` are both this, with or without a supervised command.
 */

import { isIP } from 'node:net'
import { LeaseElection } from '../lease/candidate.js'
import { defaultStoreTtlMs, redactStoreUrl } from '../lease/store-url.js'
import { PostgresBackend } from '../lease/stores/postgres.js'
import { BULLY_TIMING_PROFILES } from '../protocol/bully/options.js'
import { leaseDurationMs, TIMING_PROFILES } from '../protocol/raft/options.js'
import { HttpApi } from '../server/http.js'
import { LoopDelayMonitor } from '../server/loop-delay.js'
import { createMetrics } from '../server/metrics.js'
import { parseHostPort } from '../transport/address.js'
import type { DaemonConfig } from './config.js'
import { createElection, type DaemonElection } from './elections.js'
import type { Logger } from './log.js'
import { Notifier } from './notify.js'

export interface DaemonNode {
  election: DaemonElection
  api: HttpApi | undefined
  /** Where the HTTP API listens, once started. */
  httpAddress: string | undefined
  /** Leaves the cluster (a leader hands over first) and closes the API. */
  stop(): Promise<void>
}

/**
 * How long this node's event loop may stall before its leadership is at risk (ms): raft, the lease
 * less one heartbeat interval (the lease is renewed by the heartbeat before the stall); bully, the
 * leader timeout less one heartbeat interval; lease, the part of the TTL left after a keep-alive period.
 */
export function leaseMarginMs(config: DaemonConfig): number {
  if (config.algo === 'raft') {
    const t = TIMING_PROFILES[config.timing]
    return leaseDurationMs(t) - t.heartbeatIntervalMs
  }
  if (config.algo === 'bully') {
    const t = BULLY_TIMING_PROFILES[config.timing]
    return t.leaderTimeoutMs - t.heartbeatIntervalMs
  }
  const scheme = (config.store?.split(':')[0] ?? 'etcd') as Parameters<typeof defaultStoreTtlMs>[0]
  const ttl = config.ttl ?? defaultStoreTtlMs(scheme)
  return (ttl * 2) / 3
}

/** Whether the HTTP API listens where only this host can reach it. */
function loopbackOnly(host: string): boolean {
  if (host === 'localhost') return true
  if (isIP(host) === 4) return host.startsWith('127.')
  return host === '::1' || host === '[::1]'
}

export async function startNode(
  config: DaemonConfig,
  log: Logger,
  hooks: { beforeResign?: () => Promise<void> } = {},
): Promise<DaemonNode> {
  const election = createElection(config)
  election.on('change', (c) =>
    log.info(
      {
        role: c.role,
        leader: c.leader?.id ?? null,
        address: c.leader?.address ?? null,
        token: c.leader?.token.toString() ?? null,
        isLeader: election.isLeader(),
      },
      c.leader ? `leader ${c.leader.id} (token ${c.leader.token})` : `no leader (${c.role})`,
    ),
  )
  election.on('error', (err) => {
    const { code, reason } = err as { code?: string; reason?: string }
    log.warn({ err: err.message, code, ...(reason === undefined ? {} : { reason }) }, 'election error')
  })
  const notifier = config.notifyUrl ? new Notifier({ url: config.notifyUrl, election, log }) : undefined
  const margin = leaseMarginMs(config)
  // Warn at half the margin: a stall that long has used half of what keeps this node's leadership.
  const warnMs = Math.max(10, Math.round(margin / 2))
  const loopDelay = new LoopDelayMonitor({
    warnMs,
    // Sampled once per threshold: each sample wakes the process, and an idle node's CPU is mostly its
    // wake-ups (sampling every 44 ms cost an idle 5-node cluster ~20 ms of CPU a second a node on a
    // quiet host, 2.5 times all else). A stall S shows as at least S - warnMs, so every stall as long as
    // the lease margin (twice warnMs) is reported past the threshold and warned about.
    resolutionMs: warnMs,
    // Only a leader's stall can cost anything beyond a late election (its lease), so only a leader
    // samples: a follower is woken by its heartbeats alone.
    sampling: false,
    warn: (stallMs, stalls) =>
      log.warn(
        { stallMs, stalls, leaseMarginMs: Math.round(margin) },
        `the event loop stalled ${stallMs} ms, more than half the lease margin (${Math.round(margin)} ms): a longer stall costs the leadership`,
      ),
  })
  election.on('enterLeader', () => loopDelay.sample(true))
  election.on('leaveLeader', () => loopDelay.sample(false))
  let api: HttpApi | undefined
  let httpAddress: string | undefined
  if (config.http) {
    const hp = parseHostPort(config.http, '--http')
    if (!config.httpToken && !loopbackOnly(hp.host))
      log.warn(
        { http: config.http },
        `the HTTP API listens on ${config.http} (not only this host) without --http-token: anyone who reaches it reads the cluster's state; state changes (POST /resign) are off`,
      )
    const metricsApi: { api?: HttpApi } = {}
    api = new HttpApi({
      election,
      metrics: createMetrics(election, {
        loopDelay,
        httpRefused: () => metricsApi.api?.refused ?? new Map(),
      }),
      log,
      loopDelay,
      token: config.httpToken,
      readyWhenLeader: config.readyWhenLeader,
      leaderAddressAsIp: config.algo === 'bully',
      algo: config.algo,
      beforeResign: hooks.beforeResign,
    })
    metricsApi.api = api
    httpAddress = await api.listen(hp.host, hp.port)
  }
  if (config.algo === 'lease' && config.store?.startsWith('consul')) {
    const ttl = config.ttl ?? defaultStoreTtlMs('consul')
    const lockDelay = config.lockDelay ?? 15_000
    // Consul invalidates a session at once when its node's serfHealth check fails: only the lock-delay
    // keeps the next leader out until the old one has stopped on its own clock.
    if (lockDelay < ttl)
      log.warn(
        { lockDelayMs: lockDelay, ttlMs: ttl },
        `--lock-delay ${lockDelay} ms is shorter than the TTL ${ttl} ms: if Consul invalidates the leader's session early (a failed serfHealth check), the next one may lead before the old one has stopped`,
      )
  }
  if (config.algo === 'lease' && /^rediss?\+sentinel:/.test(config.store ?? ''))
    // Redis replicates asynchronously: a promoted replica may lack the lock (see the README).
    log.warn(
      'Redis through Sentinel: a failover to a replica that lacks the lock can let a second node lead for up to a TTL; fence the work with the token',
    )
  await election.start()
  if (
    election instanceof LeaseElection &&
    election.backend instanceof PostgresBackend &&
    election.backend.notifications === 'off'
  )
    log.warn(
      { store: redactStoreUrl(config.store ?? '') },
      "LISTEN/NOTIFY does not work through this connection (PgBouncer in transaction mode?): a hand-over waits for the next candidate's keep-alive (up to TTL/3), a crash for the TTL",
    )
  log.info(
    {
      id: election.id,
      address: election.address,
      http: httpAddress,
      algo: config.algo,
      ...(config.algo === 'lease'
        ? { store: redactStoreUrl(config.store ?? ''), election: config.election }
        : {}),
    },
    'joined the cluster',
  )
  return {
    election,
    api,
    httpAddress,
    async stop() {
      await election.stop({ handover: true })
      await notifier?.drain()
      await api?.close()
      loopDelay.close()
    },
  }
}
