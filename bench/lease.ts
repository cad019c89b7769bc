/**
 * Lease driver figures on real stores started here (test/helpers/: etcd, ZooKeeper, Consul, PostgreSQL), and, on the
 * same etcd, for the etcd3 package's own Election:
 *   resign     the leader resigns → the next candidate leads (three candidates in three processes)
 *   kill -9    the leader's process is SIGKILLed → the next one leads (it must wait out the session at the
 *              store: the TTL; on Consul, up to 2 × TTL plus the lock-delay)
 *   idle       requests the store receives per second from one idle candidate (while it leads), and from
 *              one idle follower: etcd, grpc_server_msg_received_total from its /metrics (every method);
 *              ZooKeeper, the server's packet count (`srvr`: requests and pings); Consul, HTTP requests
 *              counted by a proxy in front of the agent (renewals, reads, blocking queries); PostgreSQL,
 *              statements (simple queries and extended-protocol Syncs) counted by a proxy in front of
 *              the server (NOTIFYs it pushes to LISTEN connections are not requests)
 *
 *   node --import tsx bench/lease.ts [--runs 20] [--ttl 2] [--consul-ttl 10] [--lock-delay 1]
 *                                    [--stores etcd,zookeeper,consul,postgres]
 *
 * --ttl is the TTL (s) on etcd, ZooKeeper and PostgreSQL (tickTime 200 ms, so 2 s is within what it grants);
 * Consul's shortest TTL is 10 s; --lock-delay (s) is the Consul sessions' lock-delay.
 */
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import type { LeaseBackend } from '../src/lease/backend.js'
import { LeaseFollower } from '../src/lease/follower.js'
import { ConsulBackend } from '../src/lease/stores/consul.js'
import { EtcdBackend } from '../src/lease/stores/etcd.js'
import { PostgresBackend } from '../src/lease/stores/postgres.js'
import { ZooKeeperBackend } from '../src/lease/stores/zookeeper.js'
import { ConsulAgent } from '../test/helpers/consul.js'
import { EtcdServer } from '../test/helpers/etcd-server.js'
import { PostgresServer } from '../test/helpers/postgres.js'
import { RaftProcess, waitFor } from '../test/helpers/raft-cluster.js'
import { fourLetter, ZooKeeperServer } from '../test/helpers/zookeeper.js'
import { summarize, table } from './stats.js'

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    ttl: { type: 'string', default: '2' },
    'consul-ttl': { type: 'string', default: '10' },
    'lock-delay': { type: 'string', default: '1' },
    stores: { type: 'string', default: 'etcd,zookeeper,consul,postgres' },
  },
})
const runs = Number(args.runs)
const ttlS = Number(args.ttl)
const consulTtlS = Number(args['consul-ttl'])
const lockDelayS = Number(args['lock-delay'])
const stores = new Set(args.stores.split(','))
const BALLOT = new URL('../test/fixtures/lease-node.ts', import.meta.url).pathname
const ETCD3 = new URL('./etcd3-election-node.ts', import.meta.url).pathname
const now = () => performance.timeOrigin + performance.now()

/** One kind of candidate on one store: how to start one in its own process, and its TTL. */
interface Target {
  driver: string
  store: string
  ttlS: number
  spawn(election: string, id: string): RaftProcess
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
    await waitFor('ready', () => p.events.some((e) => e.ev === 'ready'), 30_000)
  }
  return { election, ps }
}

async function end(ps: RaftProcess[]): Promise<void> {
  for (const p of ps) p.kill()
  await Promise.all(ps.map((p) => p.waitExit().catch(() => undefined)))
}

async function resignRuns(t: Target): Promise<number[]> {
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
      await new Promise((r) => setTimeout(r, 50))
    }
  } finally {
    await end(ps)
  }
  return out
}

async function killRuns(t: Target): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < runs; i++) {
    const { ps } = await group(t, 2)
    try {
      const leader = await waitFor('a leader', () => ps.find(leads), 60_000)
      await new Promise((r) => setTimeout(r, Math.random() * t.ttlS * 333)) // any point of a keep-alive period
      const t0 = now()
      leader.kill('SIGKILL')
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
  await new Promise((r) => setTimeout(r, 1000))
  const before = await count()
  await new Promise((r) => setTimeout(r, seconds * 1000))
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

const rows: Array<Record<string, string | number>> = []
const idle: Record<string, number> = {}
const notes: string[] = []

async function measure(t: Target, killNote = ''): Promise<void> {
  rows.push({
    store: t.store,
    driver: t.driver,
    measure: 'resign → next leads (ms)',
    ...summarize(await resignRuns(t)),
  })
  rows.push({
    store: t.store,
    driver: t.driver,
    measure: `kill -9 → next leads (ms), TTL ${t.ttlS} s${killNote}`,
    ...summarize(await killRuns(t)),
  })
}

if (stores.has('etcd')) {
  const etcd = await EtcdServer.start()
  try {
    const targets: Target[] = [
      {
        driver: 'ballot',
        store: 'etcd',
        ttlS,
        spawn: (election, id) =>
          new RaftProcess(id, { id, hosts: [etcd.endpoint], election, ttlMs: ttlS * 1000 }, BALLOT),
      },
      {
        driver: 'etcd3',
        store: 'etcd',
        ttlS,
        spawn: (election, id) => new RaftProcess(id, { id, hosts: [etcd.endpoint], election, ttlS }, ETCD3),
      },
    ]
    for (const t of targets) await measure(t)
    const received = async () => {
      const text = await (await fetch(`http://${etcd.endpoint}/metrics`)).text()
      let sum = 0
      for (const line of text.split('\n'))
        if (line.startsWith('grpc_server_msg_received_total{')) sum += Number(line.split(' ').at(-1))
      return sum // each /metrics scrape is HTTP, not gRPC: not counted
    }
    const seconds = Math.max(6, ttlS * 3)
    idle['etcd ballot candidate'] = await idleRate(received, seconds, idleCandidate(targets[0] as Target))
    idle['etcd etcd3 Election candidate'] = await idleRate(
      received,
      seconds,
      idleCandidate(targets[1] as Target),
    )
    idle['etcd ballot follower'] = await idleRate(
      received,
      seconds,
      idleFollower(new EtcdBackend({ hosts: [etcd.endpoint], election: 'bench-idle' })),
    )
  } finally {
    await etcd.close()
  }
}

if (stores.has('zookeeper')) {
  const zk = await ZooKeeperServer.start({ tickTimeMs: 200 })
  try {
    const url = `zookeeper://${zk.connectString}`
    const t: Target = {
      driver: 'ballot',
      store: 'zookeeper',
      ttlS,
      spawn: (election, id) => new RaftProcess(id, { id, store: url, election, ttlMs: ttlS * 1000 }, BALLOT),
    }
    await measure(t)
    const packets = async () => Number(/Received: (\d+)/.exec(await fourLetter(zk.port, 'srvr'))?.[1])
    const seconds = Math.max(6, ttlS * 3)
    idle['zookeeper ballot candidate'] = await idleRate(packets, seconds, idleCandidate(t))
    idle['zookeeper ballot follower'] = await idleRate(
      packets,
      seconds,
      idleFollower(
        new ZooKeeperBackend({
          connect: zk.connectString,
          path: '/bench-idle',
          sessionTimeoutMs: ttlS * 1000,
        }),
      ),
    )
    notes.push('ZooKeeper: tickTime 200 ms; idle counts are packets the server received (requests and pings)')
  } finally {
    await zk.close()
  }
}

if (stores.has('consul')) {
  const agent = await ConsulAgent.start()
  try {
    const t = (address: string): Target => ({
      driver: 'ballot',
      store: 'consul',
      ttlS: consulTtlS,
      spawn: (election, id) =>
        new RaftProcess(
          id,
          {
            id,
            store: `consul://${address}`,
            election,
            ttlMs: consulTtlS * 1000,
            lockDelayMs: lockDelayS * 1000,
          },
          BALLOT,
        ),
    })
    const direct = agent.address.replace('http://', '')
    await measure(t(direct), `, lock-delay ${lockDelayS} s`)
    const proxy = await countingProxy(agent.address)
    try {
      const seconds = consulTtlS * 3
      const count = async () => proxy.count()
      idle['consul ballot candidate'] = await idleRate(count, seconds, idleCandidate(t(proxy.url)))
      idle['consul ballot follower'] = await idleRate(
        count,
        seconds,
        idleFollower(new ConsulBackend({ address: `http://${proxy.url}`, prefix: 'bench-idle' })),
      )
    } finally {
      proxy.close()
    }
    notes.push(
      `Consul: -dev agent, TTL ${consulTtlS} s, lock-delay ${lockDelayS} s (default 15 s); idle counts are HTTP requests to the agent`,
    )
  } finally {
    await agent.close()
  }
}

if (stores.has('postgres')) {
  const pg = await PostgresServer.start()
  try {
    const t = (port: number): Target => ({
      driver: 'ballot',
      store: 'postgres',
      ttlS,
      spawn: (election, id) =>
        new RaftProcess(
          id,
          { id, store: `postgres://postgres@127.0.0.1:${port}/postgres`, election, ttlMs: ttlS * 1000 },
          BALLOT,
        ),
    })
    await measure(t(pg.port))
    const proxy = await countingPgProxy(pg.port)
    try {
      const seconds = Math.max(6, ttlS * 3)
      const count = async () => proxy.count()
      idle['postgres ballot candidate'] = await idleRate(count, seconds, idleCandidate(t(proxy.port)))
      idle['postgres ballot follower'] = await idleRate(
        count,
        seconds,
        idleFollower(
          new PostgresBackend({
            connection: { port: proxy.port, user: 'postgres', database: 'postgres' },
            election: 'bench-idle',
          }),
        ),
      )
      // A waiting candidate and a follower cost something only while someone leads: measured beside a leader.
      const besideLeader = (extra: (election: string) => Promise<() => Promise<void>>) => async () => {
        const leader = await group(t(proxy.port), 1)
        await waitFor('it leads', () => leads(leader.ps[0] as RaftProcess), 60_000)
        const before = await idleRate(count, seconds, async () => async () => {})
        const stop = await extra(leader.election)
        return async () => {
          await stop()
          await end(leader.ps)
          baseline.push(before)
        }
      }
      const baseline: number[] = []
      const pair = await idleRate(
        count,
        seconds,
        besideLeader(async (election) => {
          const w = t(proxy.port).spawn(election, 'waiting')
          await waitFor('ready', () => w.events.some((e) => e.ev === 'ready'), 30_000)
          return () => end([w])
        }),
      )
      idle['postgres ballot waiting candidate'] = Math.round((pair - (baseline.at(-1) ?? 0)) * 100) / 100
      const watched = await idleRate(
        count,
        seconds,
        besideLeader(async (election) => {
          const f = new LeaseFollower({
            backend: new PostgresBackend({
              connection: { port: proxy.port, user: 'postgres', database: 'postgres' },
              election,
            }),
          })
          await f.start()
          return () => f.stop()
        }),
      )
      idle['postgres ballot follower beside a leader'] =
        Math.round((watched - (baseline.at(-1) ?? 0)) * 100) / 100
    } finally {
      proxy.close()
    }
    notes.push(
      'PostgreSQL 15: idle counts are statements sent to the server (keep-alives, reads at expiries); NOTIFYs pushed to LISTEN connections are not counted',
    )
  } finally {
    await pg.close()
  }
}

console.log(table(rows))
console.log(
  `\nidle requests/s received by the store: ${Object.entries(idle)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')}`,
)
for (const n of notes) console.log(n)
console.log(JSON.stringify({ runs, ttlS, consulTtlS, lockDelayS, rows, idle }))
