/**
 * From a daemon config to a running election: which driver, which members, which node this is. The
 * same command line works on every node: a node finds itself in --nodes by --id, or by its port on one
 * of this host's addresses.
 */
import { networkInterfaces } from 'node:os'
import type { Election, ElectionCounters } from '../election.js'
import { InvalidOptionsError } from '../errors.js'
import { LeaseElection } from '../lease/candidate.js'
import { BullyElection } from '../runtime/bully-election.js'
import { RaftElection, type RaftPeer } from '../runtime/raft-election.js'
import { parseHostPort } from '../transport/address.js'
import type { TlsOptions } from '../transport/tls.js'
import type { TransportStatsSnapshot } from '../transport/transport.js'
import type { DaemonConfig } from './config.js'
import { storeBackend } from './store.js'

/** What the daemon needs beyond the Election interface: its identity and counters, for status and metrics. */
export interface DaemonElection extends Election {
  /** Messages sent, received and dropped: a snapshot. */
  readonly transportStats: TransportStatsSnapshot
  /** Elections started and won, leaderships seen: a snapshot. */
  readonly counters: ElectionCounters
}

export interface Member {
  id: string
  address: string
}

/** "id=host:port" or "host:port" (the id is then the address). */
export function parseMembers(entries: string[]): Member[] {
  return entries.map((entry) => {
    const eq = entry.indexOf('=')
    const id = eq > 0 ? entry.slice(0, eq) : entry
    const address = eq > 0 ? entry.slice(eq + 1) : entry
    parseHostPort(address, '--nodes')
    return { id, address }
  })
}

function localAddresses(): Set<string> {
  const out = new Set(['localhost', '0.0.0.0', '::'])
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address)
  return out
}

/** This node's entry in the member list: by --id, else the one entry on this host with --port. */
export function findSelf(members: Member[], config: Pick<DaemonConfig, 'id' | 'port'>): Member {
  if (config.id !== undefined) {
    const byId = members.find((m) => m.id === config.id)
    if (!byId) throw new InvalidOptionsError('--id', `"${config.id}" is not in --nodes`)
    return byId
  }
  const local = localAddresses()
  const mine = members.filter((m) => {
    const hp = parseHostPort(m.address, '--nodes')
    return hp.port === config.port && local.has(hp.host)
  })
  if (mine.length === 1) return mine[0] as Member
  throw new InvalidOptionsError(
    '--id',
    mine.length === 0
      ? `no entry of --nodes is this host on port ${config.port}; give --id or --port`
      : `several entries of --nodes are this host on port ${config.port}; give --id`,
  )
}

/** The flag a library option comes from, so a refused option is named as the user wrote it. */
const FLAG_OF: Record<string, string> = {
  dataDir: '--data-dir',
  key: '--key',
  'tls.cert': '--tls-cert',
  'tls.key': '--tls-key',
  'tls.ca': '--tls-ca',
  tls: '--tls-cert',
  members: '--nodes',
  nodes: '--nodes',
  timing: '--timing',
  listen: '--host/--port',
  id: '--id',
  pid: '--pid',
  multicast: '--multicast',
  iface: '--iface',
}

/**
 * The election the config describes. The drivers check their options and name the option at fault
 * (`dataDir`, `members[1].address`); here that is turned into the flag (`--data-dir`, `--nodes`).
 */
export function createElection(config: DaemonConfig): DaemonElection {
  try {
    return buildElection(config)
  } catch (err) {
    if (!(err instanceof InvalidOptionsError)) throw err
    const root = err.field in FLAG_OF ? err.field : (/^[a-zA-Z]+/.exec(err.field)?.[0] ?? '')
    const flag = FLAG_OF[root]
    if (!flag) throw err
    const detail = err.message.slice(err.field.length + 2)
    throw new InvalidOptionsError(flag, err.field === root ? detail : `${err.field}: ${detail}`, {
      cause: err,
    })
  }
}

/** --tls-cert, --tls-key and --tls-ca as the drivers' `tls` option (all three, or none: see config). */
function tlsOption(config: DaemonConfig): TlsOptions | undefined {
  if (config.tlsCert === undefined || config.tlsKey === undefined || config.tlsCa === undefined)
    return undefined
  return { cert: config.tlsCert, key: config.tlsKey, ca: config.tlsCa }
}

function buildElection(config: DaemonConfig): DaemonElection {
  const tags = Object.fromEntries(
    config.tags.map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)]),
  )
  if (config.algo === 'lease') {
    const { backend, ttlMs } = storeBackend({
      ...config,
      store: config.store ?? '',
      election: config.election ?? '',
    })
    return new LeaseElection({
      id: config.id ?? '',
      backend,
      address: config.advertise ?? config.http,
      tags,
      timing: { ttlMs },
    })
  }
  if (config.algo === 'bully') {
    if (config.multicast) {
      return new BullyElection({
        id: config.id,
        pid: config.pid,
        multicast: { group: config.multicast, iface: config.iface },
        cluster: config.cluster,
        key: config.key,
        timing: config.timing,
        dataDir: config.dataDir,
      })
    }
    const members = parseMembers(config.nodes)
    const self = findSelf(members, config)
    const hp = parseHostPort(self.address, '--nodes')
    return new BullyElection({
      id: self.id,
      pid: config.pid,
      listen: `${config.host ?? hp.host}:${hp.port}`,
      advertise: self.address,
      nodes: members.map((m) => (m.id === m.address ? m.address : `${m.id}=${m.address}`)),
      cluster: config.cluster,
      key: config.key,
      tls: tlsOption(config),
      timing: config.timing,
      dataDir: config.dataDir,
    })
  }
  const members = parseMembers(config.nodes)
  const self = findSelf(members, config)
  for (const o of config.observers) {
    if (!members.some((m) => m.id === o))
      throw new InvalidOptionsError('--observers', `"${o}" is not in --nodes`)
  }
  const peers: RaftPeer[] = members.map((m) => ({
    id: m.id,
    address: m.address,
    kind: config.observers.includes(m.id) ? 'observer' : 'voter',
  }))
  const hp = parseHostPort(self.address, '--nodes')
  return new RaftElection({
    id: self.id,
    members: peers,
    listen: `${config.host ?? hp.host}:${hp.port}`,
    cluster: config.cluster,
    key: config.key,
    tls: tlsOption(config),
    timing: config.timing,
    dataDir: config.dataDir,
    tags,
  })
}
