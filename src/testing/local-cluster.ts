/**
 * In-process clusters on free loopback ports, for tests, demos and trying the library out (as
 * hashicorp/raft ships helpers that build a test cluster). Raft cannot listen on port 0: every member's
 * address must be known to every other before any of them starts, so these helpers find free ports
 * first, and build again on fresh ones if another process took a port in between.
 * @module
 */
import net from 'node:net'
import { join } from 'node:path'
import type { Election, LeaderInfo } from '../election.js'
import { BallotError, InvalidOptionsError } from '../errors.js'
import { BullyElection, type BullyElectionOptions } from '../runtime/bully-election.js'
import { RaftElection, type RaftElectionOptions } from '../runtime/raft-election.js'

/** A running in-process cluster: its nodes, a way to wait for the leader, and one call that stops all. */
export interface LocalCluster<E extends Election> {
  /** Every node, started, in id order (n1, n2, ...). */
  readonly nodes: readonly E[]
  /**
   * Resolves with the node that leads (its `isLeader()` holds) as soon as one does. Rejects with the
   * signal's reason when it aborts.
   */
  leader(options?: { signal?: AbortSignal | undefined }): Promise<E>
  /** Stops every node (a leader hands over first). Safe to call twice. */
  stop(): Promise<void>
  /** Same as `stop()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>
}

/** Options of `localRaftCluster()`: how many members, and options every node shares. */
export interface LocalRaftClusterOptions
  extends Omit<RaftElectionOptions, 'id' | 'members' | 'listen' | 'dataDir' | 'timing'> {
  /** Voters (default 3). */
  size?: number | undefined
  /** Observers besides the voters (default 0). */
  observers?: number | undefined
  /** Loopback address to listen on (default 127.0.0.1). */
  host?: string | undefined
  /** Each node keeps its durable state in a directory of its id under this one (default: in memory). */
  dataDir?: string | undefined
  /** Default 'fast': loopback is one rack. */
  timing?: RaftElectionOptions['timing']
}

/** Options of `localBullyCluster()`: how many nodes, and options every node shares. */
export interface LocalBullyClusterOptions
  extends Omit<
    BullyElectionOptions,
    'id' | 'pid' | 'listen' | 'advertise' | 'members' | 'nodes' | 'multicast' | 'dataDir' | 'timing'
  > {
  /** Nodes (default 3); node i has pid i, so the last one leads. */
  size?: number | undefined
  /** Loopback address to listen on (default 127.0.0.1). */
  host?: string | undefined
  /** Each node keeps its durable state in a directory of its id under this one (default: in memory). */
  dataDir?: string | undefined
  /** Default 'fast': loopback is one rack. */
  timing?: BullyElectionOptions['timing']
}

/** Ports that were free a moment ago (bound to port 0 and released). */
async function freePorts(host: string, count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const s = net.createServer()
          s.once('error', reject)
          s.listen(0, host, () => resolve(s))
        }),
    ),
  )
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port)
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
  return ports
}

function checkSize(value: number | undefined, fallback: number, field: string, min: number): number {
  const n = value ?? fallback
  if (!Number.isInteger(n) || n < min || n > 99)
    throw new InvalidOptionsError(field, `must be an integer from ${min} to 99, got ${value}`)
  return n
}

/**
 * Builds `count` nodes with `build(ports)` and starts them; when a port was taken meanwhile (a
 * TransportError), stops what started and tries again on fresh ports, up to 5 times.
 */
async function startOnFreePorts<E extends Election>(
  host: string,
  count: number,
  build: (ports: number[]) => E[],
): Promise<LocalCluster<E>> {
  for (let attempt = 1; ; attempt++) {
    const nodes = build(await freePorts(host, count))
    const started = await Promise.allSettled(nodes.map((n) => n.start()))
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (!failed) return cluster(nodes)
    await Promise.all(nodes.map((n) => n.stop({ handover: false })))
    const err = failed.reason
    if (!(err instanceof BallotError && err.code === 'TRANSPORT') || attempt >= 5) throw err
  }
}

function cluster<E extends Election>(nodes: E[]): LocalCluster<E> {
  let stopping: Promise<void> | undefined
  const stop = () => {
    stopping ??= Promise.all(nodes.map((n) => n.stop())).then(() => undefined)
    return stopping
  }
  return {
    nodes,
    async leader(options = {}) {
      const lead: LeaderInfo = await Promise.any(
        nodes.map((n) => n.waitForLeader({ self: true, signal: options.signal })),
      ).catch((err: AggregateError) => {
        throw err.errors[0]
      })
      return nodes.find((n) => n.id === lead.id) as E
    },
    stop,
    [Symbol.asyncDispose]: stop,
  }
}

/**
 * Starts a raft group in this process on free loopback ports: `size` voters (n1, n2, ...) and
 * `observers` observers (o1, ...), with the 'fast' timings unless told otherwise.
 *
 * @example
 * ```ts
 * await using cluster = await localRaftCluster({ size: 3 })
 * const leader = await cluster.leader({ signal: AbortSignal.timeout(5000) })
 * ```
 */
export async function localRaftCluster(
  options: LocalRaftClusterOptions = {},
): Promise<LocalCluster<RaftElection>> {
  const { size, observers, host = '127.0.0.1', dataDir, timing = 'fast', ...shared } = options
  const voters = checkSize(size, 3, 'size', 1)
  const watchers = checkSize(observers, 0, 'observers', 0)
  const ids = [
    ...Array.from({ length: voters }, (_, i) => ({ id: `n${i + 1}`, kind: 'voter' as const })),
    ...Array.from({ length: watchers }, (_, i) => ({ id: `o${i + 1}`, kind: 'observer' as const })),
  ]
  return startOnFreePorts(host, ids.length, (ports) => {
    const members = ids.map((m, i) => ({
      ...m,
      address: `${host.includes(':') ? `[${host}]` : host}:${ports[i]}`,
    }))
    return members.map(
      (m) =>
        new RaftElection({
          ...shared,
          id: m.id,
          members,
          timing,
          dataDir: dataDir === undefined ? undefined : join(dataDir, m.id),
        }),
    )
  })
}

/**
 * Starts a bully group over TCP in this process on free loopback ports: `size` nodes (n1 with pid 1,
 * n2 with pid 2, ...; the highest leads), with the 'fast' timings unless told otherwise.
 */
export async function localBullyCluster(
  options: LocalBullyClusterOptions = {},
): Promise<LocalCluster<BullyElection>> {
  const { size, host = '127.0.0.1', dataDir, timing = 'fast', ...shared } = options
  const count = checkSize(size, 3, 'size', 1)
  return startOnFreePorts(host, count, (ports) => {
    const members = ports.map((port, i) => ({
      id: `n${i + 1}`,
      address: `${host.includes(':') ? `[${host}]` : host}:${port}`,
    }))
    return members.map(
      (m, i) =>
        new BullyElection({
          ...shared,
          id: m.id,
          pid: i + 1,
          listen: m.address,
          members,
          timing,
          dataDir: dataDir === undefined ? undefined : join(dataDir, m.id),
        }),
    )
  })
}
