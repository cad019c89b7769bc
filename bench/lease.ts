/**
 * Lease driver figures on real stores started here (test/helpers/), and, on the same etcd, for the etcd3
 * package's own Election:
 *   resign     the leader resigns → the next candidate leads (three candidates in three processes)
 *   kill -9    the leader's process is SIGKILLed → the next one leads (it must wait out the session at the
 *              store: the TTL; on Consul, up to 2 × TTL plus the lock-delay)
 *   SIGSTOP    the leader's process is frozen (a hung host) → the next one leads (the same wait)
 *   idle       requests the store receives per second from one idle candidate (while it leads), and from
 *              one idle follower: etcd, grpc_server_msg_received_total from its /metrics (every method);
 *              ZooKeeper, the server's packet count (`srvr`: requests and pings); Consul, HTTP requests
 *              counted by a proxy in front of the agent (renewals, reads, blocking queries); Redis, the
 *              scripts run (EVALSHA and EVAL calls in INFO commandstats); PostgreSQL, statements (simple
 *              queries and extended-protocol Syncs) counted by a proxy in front of the server (NOTIFYs it
 *              pushes to LISTEN connections are not requests)
 *
 *   node --import tsx bench/lease.ts [--runs 20] [--ttl 2] [--consul-ttl 10] [--lock-delay 1]
 *                                    [--stores etcd,zookeeper,consul,redis,postgres] [--kinds handover,crash,silent]
 *
 * --ttl is the TTL (s) on etcd and ZooKeeper (tickTime 200 ms, so 2 s is within what it grants);
 * Consul's shortest TTL is 10 s; --lock-delay (s) is the Consul sessions' lock-delay.
 *
 * Every store is one entry of LEASE_STORES below: a store added to the driver adds one entry (a function
 * that starts the server and names the candidates to measure on it) and shows up in `npm run bench`.
 */
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import type { LeaseBackend } from '../src/lease/backend.js'
import { LeaseFollower } from '../src/lease/follower.js'
import { ConsulBackend } from '../src/lease/stores/consul.js'
import { EtcdBackend } from '../src/lease/stores/etcd.js'
import { PostgresBackend } from '../src/lease/stores/postgres.js'
import { RedisBackend } from '../src/lease/stores/redis.js'
import { ZooKeeperBackend } from '../src/lease/stores/zookeeper.js'
import { ConsulAgent } from '../test/helpers/consul.js'
import { EtcdServer } from '../test/helpers/etcd-server.js'
import { PostgresServer } from '../test/helpers/postgres.js'
import { RaftProcess, waitFor } from '../test/helpers/raft-cluster.js'
import { RedisServer, rawCommand } from '../test/helpers/redis.js'
import { fourLetter, ZooKeeperServer } from '../test/helpers/zookeeper.js'
import type { FaultKind } from './raft.js'
import { isMain, now, sleep, summarize, table } from './stats.js'

const BALLOT = new URL('../test/fixtures/lease-node.ts', import.meta.url).pathname
const ETCD3 = new URL('./etcd3-election-node.ts', import.meta.url).pathname

/** One kind of candidate on one store: how to start one in its own process, and its TTL. */
export interface Target {
  /** 'ballot', or another library's election on the same store ('etcd3'). */
  driver: string
  store: string
  ttlS: number
  /** What no safe design can beat after a crash: the session TTL (ms). */
  floorMs: number
  /** Said beside the figures (Consul's lock-delay, say). */
  note?: string
  spawn(election: string, id: string): RaftProcess
}

/** A store's idle load: a counter of requests it received, and who to leave idle against it. */
export interface IdleProbe {
  /** Requests the store has received so far (its own counter, or a proxy's). */
  count(): Promise<number>
  /** How long to count (s). */
  seconds: number
  /** The candidates whose idle candidate (leading) is measured, by driver. */
  candidates: Target[]
  /** An idle follower of this store (in this process), if the driver has one. */
  follower?: () => LeaseBackend
  /** What the count counts. */
  note: string
  close?(): void
}

/** A running store with what to measure on it. */
export interface StoreRun {
  targets: Target[]
  idle?: IdleProbe
  close(): Promise<void>
}

/** Timings the stores are measured with. */
export interface LeaseSettings {
  /** TTL (s) on etcd and ZooKeeper (and any store without a minimum of its own). */
  ttlS: number
  /** Consul's TTL (s): 10 at the least. */
  consulTtlS: number
  /** Consul sessions' lock-delay (s). */
  lockDelayS: number
}

/**
 * Every store the lease benchmark knows: name → start the server and name what to measure. One entry
 * per store; `--stores` picks among these names.
 */
export const LEASE_STORES: Record<string, (s: LeaseSettings) => Promise<StoreRun>> = {
  etcd: startEtcd,
  zookeeper: startZooKeeper,
  consul: startConsul,
  redis: startRedis,
  postgres: startPostgres,
}

async function startEtcd(s: LeaseSettings): Promise<StoreRun> {
  const etcd = await EtcdServer.start()
  const ballot: Target = {
    driver: 'ballot',
    store: 'etcd',
    ttlS: s.ttlS,
    floorMs: s.ttlS * 1000,
    spawn: (election, id) =>
      new RaftProcess(id, { id, hosts: [etcd.endpoint], election, ttlMs: s.ttlS * 1000 }, BALLOT),
  }
  const etcd3: Target = {
    driver: 'etcd3',
    store: 'etcd',
    ttlS: s.ttlS,
    floorMs: s.ttlS * 1000,
    note: "the etcd3 package's own Election",
    spawn: (election, id) =>
      new RaftProcess(id, { id, hosts: [etcd.endpoint], election, ttlS: s.ttlS }, ETCD3),
  }
  return {
    targets: [ballot, etcd3],
    idle: {
      count: async () => {
        const text = await (await fetch(`http://${etcd.endpoint}/metrics`)).text()
        let sum = 0
        for (const line of text.split('\n'))
          if (line.startsWith('grpc_server_msg_received_total{')) sum += Number(line.split(' ').at(-1))
        return sum // each /metrics scrape is HTTP, not gRPC: not counted
      },
      seconds: Math.max(6, s.ttlS * 3),
      candidates: [ballot, etcd3],
      follower: () => new EtcdBackend({ hosts: [etcd.endpoint], election: 'bench-idle' }),
      note: 'gRPC messages etcd received',
    },
    close: () => etcd.close(),
  }
}

async function startZooKeeper(s: LeaseSettings): Promise<StoreRun> {
  const zk = await ZooKeeperServer.start({ tickTimeMs: 200 })
  const url = `zookeeper://${zk.connectString}`
  const ballot: Target = {
    driver: 'ballot',
    store: 'zookeeper',
    ttlS: s.ttlS,
    floorMs: s.ttlS * 1000,
    note: 'tickTime 200 ms',
    spawn: (election, id) => new RaftProcess(id, { id, store: url, election, ttlMs: s.ttlS * 1000 }, BALLOT),
  }
  return {
    targets: [ballot],
    idle: {
      count: async () => Number(/Received: (\d+)/.exec(await fourLetter(zk.port, 'srvr'))?.[1]),
      seconds: Math.max(6, s.ttlS * 3),
      candidates: [ballot],
      follower: () =>
        new ZooKeeperBackend({
          connect: zk.connectString,
          path: '/bench-idle',
          sessionTimeoutMs: s.ttlS * 1000,
        }),
      note: 'packets the server received (requests and pings)',
    },
    close: () => zk.close(),
  }
}

async function startRedis(s: LeaseSettings): Promise<StoreRun> {
  const redis = await RedisServer.start()
  const url = `redis://${redis.endpoint}`
  const ballot: Target = {
    driver: 'ballot',
    store: 'redis',
    ttlS: s.ttlS,
    floorMs: s.ttlS * 1000,
    note: 'one redis-server 7.0, no persistence',
    spawn: (election, id) => new RaftProcess(id, { id, store: url, election, ttlMs: s.ttlS * 1000 }, BALLOT),
  }
  return {
    targets: [ballot],
    idle: {
      count: async () => {
        const text = await rawCommand(redis.port, 'INFO commandstats')
        let sum = 0
        for (const m of text.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)) sum += Number(m[1])
        return sum
      },
      seconds: Math.max(6, s.ttlS * 3),
      candidates: [ballot],
      follower: () => new RedisBackend({ host: redis.endpoint, election: 'bench-idle' }),
      note: 'scripts the server ran (EVALSHA and EVAL)',
    },
    close: () => redis.close(),
  }
}

async function startPostgres(s: LeaseSettings): Promise<StoreRun> {
  const pg = await PostgresServer.start()
  const target = (port: number): Target => ({
    driver: 'ballot',
    store: 'postgres',
    ttlS: s.ttlS,
    floorMs: s.ttlS * 1000,
    note: 'PostgreSQL 15, LISTEN/NOTIFY on',
    spawn: (election, id) =>
      new RaftProcess(
        id,
        { id, store: `postgres://postgres@127.0.0.1:${port}/postgres`, election, ttlMs: s.ttlS * 1000 },
        BALLOT,
      ),
  })
  const proxy = await countingPgProxy(pg.port)
  return {
    targets: [target(pg.port)],
    idle: {
      count: async () => proxy.count(),
      seconds: Math.max(6, s.ttlS * 3),
      candidates: [target(proxy.port)],
      follower: () =>
        new PostgresBackend({
          connection: { port: proxy.port, user: 'postgres', database: 'postgres' },
          election: 'bench-idle',
        }),
      note: 'statements sent to the server (keep-alives, reads at expiries); NOTIFYs are not counted',
      close: () => proxy.close(),
    },
    close: async () => {
      proxy.close()
      await pg.close()
    },
  }
}

/**
 * Counts the statements clients send to PostgreSQL on their way through: simple queries ('Q') and
 * extended-protocol exchanges (each ends with one Sync, 'S'). Every connection's first message is the
 * startup packet (no type byte).
 */
async function countingPgProxy(port: number): Promise<{ port: number; count(): number; close(): void }> {
  let statements = 0
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port })
    sockets.add(client)
    sockets.add(upstream)
    let buffer = Buffer.alloc(0)
    let started = false
    client.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk])
      for (;;) {
        if (!started) {
          if (buffer.length < 4) break
          const len = buffer.readInt32BE(0)
          if (buffer.length < len) break
          buffer = buffer.subarray(len)
          started = true
          continue
        }
        if (buffer.length < 5) break
        const type = String.fromCharCode(buffer[0] as number)
        const len = buffer.readInt32BE(1)
        if (buffer.length < len + 1) break
        if (type === 'Q' || type === 'S') statements++
        buffer = buffer.subarray(len + 1)
      }
      upstream.write(chunk)
    })
    upstream.on('data', (chunk) => client.write(chunk))
    const end = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('close', end)
    upstream.on('close', end)
    client.on('error', end)
    upstream.on('error', end)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as AddressInfo).port,
    count: () => statements,
    close: () => {
      for (const s of sockets) s.destroy()
      server.close()
    },
  }
}

async function startConsul(s: LeaseSettings): Promise<StoreRun> {
  const agent = await ConsulAgent.start()
  const target = (address: string): Target => ({
    driver: 'ballot',
    store: 'consul',
    ttlS: s.consulTtlS,
    floorMs: s.consulTtlS * 1000,
    note: `lock-delay ${s.lockDelayS} s (default 15 s); Consul waits up to 2 × TTL before it invalidates`,
    spawn: (election, id) =>
      new RaftProcess(
        id,
        {
          id,
          store: `consul://${address}`,
          election,
          ttlMs: s.consulTtlS * 1000,
          lockDelayMs: s.lockDelayS * 1000,
        },
        BALLOT,
      ),
  })
  const proxy = await countingProxy(agent.address)
  return {
    targets: [target(agent.address.replace('http://', ''))],
    idle: {
      count: async () => proxy.count(),
      seconds: s.consulTtlS * 3,
      candidates: [target(proxy.url)],
      follower: () => new ConsulBackend({ address: `http://${proxy.url}`, prefix: 'bench-idle' }),
      note: 'HTTP requests to the agent',
      close: () => proxy.close(),
    },
    close: async () => {
      proxy.close()
      await agent.close()
    },
  }
}

let serial = 0

/** Whether the process says it leads now (its last lead event). */
function leads(p: RaftProcess): boolean {
  for (let i = p.events.length - 1; i >= 0; i--)
    if (p.events[i]?.ev === 'lead') return p.events[i]?.leading === true
  return false
}

async function group(t: Target, n: number) {
  const election =
    t.store === 'zookeeper' ? `/bench/${t.driver}-${++serial}` : `bench-${t.driver}-${++serial}`
  const ps: RaftProcess[] = []
  for (let i = 0; i < n; i++) {
    const p = t.spawn(election, `${t.driver}-${i}`)
    ps.push(p)
    await waitFor('ready', () => p.events.some((e) => e.ev === 'ready'), 60_000)
  }
  return { election, ps }
}

async function end(ps: RaftProcess[]): Promise<void> {
  for (const p of ps) p.kill()
  await Promise.all(ps.map((p) => p.waitExit().catch(() => undefined)))
}

/** The leader resigns (hand-over) `runs` times among three candidates: ms until the next leads. */
export async function resignRuns(t: Target, runs: number): Promise<number[]> {
  const { ps } = await group(t, 3)
  const out: number[] = []
  try {
    for (let i = 0; i < runs; i++) {
      const leader = await waitFor('a leader', () => ps.find(leads), 60_000)
      const t0 = now()
      leader.send('resign')
      const next = await waitFor('the next leader', () => ps.find((p) => p !== leader && leads(p)), 60_000)
      const t1 = next.events.findLast((e) => e.ev === 'lead' && e.leading)?.t as number
      out.push(t1 - t0)
      await sleep(50)
    }
  } finally {
    await end(ps)
  }
  return out
}

/** The leader's process is killed (or frozen) `runs` times, two candidates each: ms until the next leads. */
export async function crashRuns(t: Target, runs: number, signal: 'SIGKILL' | 'SIGSTOP'): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < runs; i++) {
    const { ps } = await group(t, 2)
    try {
      const leader = await waitFor('a leader', () => ps.find(leads), 60_000)
      await sleep(Math.random() * t.ttlS * 333) // any point of a keep-alive period
      const t0 = now()
      leader.kill(signal)
      const next = await waitFor(
        'the next leader',
        () => ps.find((p) => p !== leader && leads(p)),
        t.ttlS * 3000 + 60_000,
      )
      out.push((next.events.findLast((e) => e.ev === 'lead' && e.leading)?.t as number) - t0)
    } finally {
      await end(ps)
    }
  }
  return out
}

/** Requests per second `count()` grows by while `setUp()`'s participants sit idle for `seconds`. */
async function idleRate(
  count: () => Promise<number>,
  seconds: number,
  setUp: () => Promise<() => Promise<void>>,
): Promise<number> {
  const tearDown = await setUp()
  await sleep(1000)
  const before = await count()
  await sleep(seconds * 1000)
  const after = await count()
  await tearDown()
  return Math.round(((after - before) / seconds) * 100) / 100
}

/** An idle candidate that leads, in its own process. */
function idleCandidate(t: Target) {
  return async () => {
    const { ps } = await group(t, 1)
    await waitFor('it leads', () => leads(ps[0] as RaftProcess), 60_000)
    return () => end(ps)
  }
}

/** An idle follower in this process. */
function idleFollower(backend: LeaseBackend) {
  return async () => {
    const f = new LeaseFollower({ backend })
    await f.start()
    return () => f.stop()
  }
}

/** One figure of the lease benchmark: a driver on a store, one kind of fault, its samples (ms). */
export interface LeaseFigure {
  driver: string
  store: string
  kind: FaultKind
  ttlS: number
  floorMs: number
  note?: string
  samples: number[]
}

/** Idle requests/s one candidate (leading) or one follower causes at a store. */
export interface LeaseIdle {
  store: string
  who: string
  perSecond: number
  counts: string
}

/** Runs the lease figures on every store named, one store server at a time. */
export async function leaseBench(o: {
  stores: string[]
  kinds: FaultKind[]
  runs: number
  settings: LeaseSettings
  idle: boolean
  log?: (line: string) => void
}): Promise<{ figures: LeaseFigure[]; idle: LeaseIdle[]; skipped: string[] }> {
  const figures: LeaseFigure[] = []
  const idle: LeaseIdle[] = []
  const skipped: string[] = []
  for (const name of o.stores) {
    const startStore = LEASE_STORES[name]
    if (!startStore) {
      skipped.push(`${name}: unknown store (known: ${Object.keys(LEASE_STORES).join(', ')})`)
      continue
    }
    let run: StoreRun
    try {
      run = await startStore(o.settings)
    } catch (err) {
      // A benchmark reports: a store that cannot start here is named in the report, not a failure.
      skipped.push(`${name}: could not start (${(err as Error).message.split('\n')[0]})`)
      continue
    }
    try {
      for (const t of run.targets)
        for (const kind of o.kinds) {
          const samples =
            kind === 'handover'
              ? await resignRuns(t, o.runs)
              : await crashRuns(t, o.runs, kind === 'crash' ? 'SIGKILL' : 'SIGSTOP')
          const s = summarize(samples)
          o.log?.(`lease ${t.store} ${t.driver} ${kind}: p50 ${s.p50} ms, p99 ${s.p99} ms`)
          figures.push({
            driver: t.driver,
            store: t.store,
            kind,
            ttlS: t.ttlS,
            floorMs: t.floorMs,
            ...(t.note ? { note: t.note } : {}),
            samples,
          })
        }
      const probe = run.idle
      if (o.idle && probe) {
        for (const t of probe.candidates)
          idle.push({
            store: name,
            who: `${t.driver} candidate (leading)`,
            perSecond: await idleRate(probe.count, probe.seconds, idleCandidate(t)),
            counts: probe.note,
          })
        if (probe.follower)
          idle.push({
            store: name,
            who: 'ballot follower',
            perSecond: await idleRate(probe.count, probe.seconds, idleFollower(probe.follower())),
            counts: probe.note,
          })
      }
    } finally {
      run.idle?.close?.()
      await run.close()
    }
  }
  return { figures, idle, skipped }
}

/** Counts HTTP requests on their way to `target` (blocking queries count once each). */
async function countingProxy(target: string): Promise<{ url: string; count(): number; close(): void }> {
  let requests = 0
  const upstream = new URL(target)
  const agent = new http.Agent({ keepAlive: true })
  const server = http.createServer((req, res) => {
    requests++
    const out = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        path: req.url,
        method: req.method,
        headers: req.headers,
        agent,
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers)
        up.pipe(res)
      },
    )
    out.on('error', () => res.destroy())
    req.pipe(out)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  return {
    url: `127.0.0.1:${port}`,
    count: () => requests,
    close: () => {
      server.closeAllConnections()
      server.close()
      agent.destroy()
    },
  }
}

if (isMain(import.meta.url)) {
  const { values: args } = parseArgs({
    options: {
      runs: { type: 'string', default: '20' },
      ttl: { type: 'string', default: '2' },
      'consul-ttl': { type: 'string', default: '10' },
      'lock-delay': { type: 'string', default: '1' },
      stores: { type: 'string', default: Object.keys(LEASE_STORES).join(',') },
      kinds: { type: 'string', default: 'handover,crash' },
    },
  })
  const settings = {
    ttlS: Number(args.ttl),
    consulTtlS: Number(args['consul-ttl']),
    lockDelayS: Number(args['lock-delay']),
  }
  const r = await leaseBench({
    stores: args.stores.split(',').filter(Boolean),
    kinds: args.kinds.split(',').filter(Boolean) as FaultKind[],
    runs: Number(args.runs),
    settings,
    idle: true,
    log: (l) => console.error(l),
  })
  const label = {
    handover: 'resign → next leads (ms)',
    crash: 'kill -9 → next leads (ms)',
    silent: 'SIGSTOP → next leads (ms)',
  }
  console.log(
    table(
      r.figures.map((f) => ({
        store: f.store,
        driver: f.driver,
        measure: `${label[f.kind]}, TTL ${f.ttlS} s`,
        ...summarize(f.samples),
      })),
    ),
  )
  console.log(
    `\nidle requests/s received by the store: ${r.idle.map((i) => `${i.store} ${i.who} ${i.perSecond}`).join(', ')}`,
  )
  for (const s of r.skipped) console.log(`skipped: ${s}`)
  console.log(JSON.stringify({ ...settings, runs: Number(args.runs), ...r }))
}
