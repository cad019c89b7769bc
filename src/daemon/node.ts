/**
 * One daemon node: the election from the config, its HTTP API, metrics, webhook and logs, started and
 * stopped together. `ballot run` and `ballot exec` are both this, with or without a supervised command.
 */

import { defaultStoreTtlMs, redactStoreUrl } from '../lease/store-url.js'
import { HttpApi } from '../server/http.js'
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
  let api: HttpApi | undefined
  let httpAddress: string | undefined
  if (config.http) {
    api = new HttpApi({
      election,
      metrics: createMetrics(election),
      log,
      token: config.httpToken,
      readyWhenLeader: config.readyWhenLeader,
      leaderAddressAsIp: config.algo === 'bully',
      algo: config.algo,
      beforeResign: hooks.beforeResign,
    })
    const hp = parseHostPort(config.http, '--http')
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
  await election.start()
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
    },
  }
}
