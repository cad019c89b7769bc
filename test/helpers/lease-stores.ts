/**
 * The store descriptors the shared lease scenarios (./lease-scenarios.ts) run on: etcd, ZooKeeper, Consul,
 * Redis and PostgreSQL, each a real server started on free loopback ports with a temporary directory. A new store adds
 * one such object (see LeaseStore there for what each field is for).
 */
import assert from 'node:assert/strict'
import zookeeper from 'node-zookeeper-client'
import { ConsulBackend } from '../../src/lease/stores/consul.js'
import { EtcdBackend } from '../../src/lease/stores/etcd.js'
import { PostgresBackend, type PostgresBackendOptions } from '../../src/lease/stores/postgres.js'
import { RedisBackend, type RedisBackendOptions, redisKeys } from '../../src/lease/stores/redis.js'
import type { StoreTls } from '../../src/lease/stores/tls.js'
import { ZooKeeperBackend } from '../../src/lease/stores/zookeeper.js'
import { ConsulAgent } from './consul.js'
import { EtcdServer } from './etcd-server.js'
import type { LeaseStore, StoreServer } from './lease-scenarios.js'
import { PostgresServer } from './postgres.js'
import { RedisServer } from './redis.js'
import type { OwnedProcess } from './services.js'
import { TestCa } from './tls.js'
import { ZooKeeperServer } from './zookeeper.js'

let n = 0
const unique = () => `${process.pid}-${++n}`
/** `text` as a regular expression that matches it literally. */
const literally = (text: string) => new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))

// ---- etcd ---------------------------------------------------------------------------------------------

/** An etcd server for the scenarios; `etcd` is the helper's own handle (etcdctl and the rest). */
export interface EtcdUnderTest extends StoreServer {
  etcd: EtcdServer
}

function etcdUnderTest(etcd: EtcdServer): EtcdUnderTest {
  return {
    etcd,
    backend: (election) => new EtcdBackend({ hosts: [etcd.endpoint], election }),
    async plantForeign() {
      const election = `ballot-test-${unique()}`
      await etcd.etcdctl('put', `${election}/config`, 'not-a-candidate')
      return [{ election, names: new RegExp(`${election}/config.*no lease`) }]
    },
    async leftovers(election, lease) {
      const keys = (await etcd.etcdctl('get', '--prefix', election, '--keys-only')).stdout
        .split('\n')
        .filter(Boolean)
      const ttl = await etcd.etcdctl('lease', 'timetolive', lease)
      return /already expired|not found/i.test(ttl.stdout) ? keys : [...keys, `lease ${lease}`]
    },
    kill: () => etcd.stop('SIGKILL'),
    restart: () => etcd.restart(),
    freeze: () => etcd.freeze(),
    thaw: () => etcd.thaw(),
    close: () => etcd.close(),
  }
}

/** etcd 3.4 with --heartbeat-interval 10: TTL 2 s; resign measured at 5 s. */
export const etcdStore: LeaseStore<EtcdUnderTest> = {
  name: 'etcd',
  ttlMs: 2000,
  resignTtlMs: 5000,
  recoveryMs: 20_000,
  retriesBeforeRestart: true,
  start: async () => etcdUnderTest(await EtcdServer.start()),
  election: () => `ballot-test-${unique()}`,
  unreachable: (port) => new EtcdBackend({ hosts: [`127.0.0.1:${port}`], election: 'x' }),
  async deleteEntry(server, key) {
    const r = await server.etcd.etcdctl('del', key)
    if (r.stdout.trim() !== '1') throw new Error(`etcdctl del ${key}: ${r.stdout}${r.stderr}`)
  },
  async endSession(server, _election, lease) {
    const r = await server.etcd.etcdctl('lease', 'revoke', lease)
    if (r.code !== 0) throw new Error(`etcdctl lease revoke ${lease}: ${r.stderr}`)
  },
  processes: {
    options: (server, id) => ({
      id,
      hosts: [server.etcd.endpoint],
      election: `procs-${process.pid}`,
      ttlMs: 2000,
    }),
    // The lease lives 2/3 × TTL to TTL after the kill (the last keep-alive was at most TTL/3 before it),
    // plus up to 0.5 s of etcd's expiry check.
    failover: { min: (2000 * 2) / 3 - 50, max: 2000 + 1500 },
  },
}

// ---- ZooKeeper ----------------------------------------------------------------------------------------

/** A ZooKeeper server for the scenarios, with a plain client to write what another tool would. */
export interface ZooKeeperUnderTest extends StoreServer {
  zk: ZooKeeperServer
  /** A plain node-zookeeper-client connected to it (closed with the server). */
  raw(): Promise<zookeeper.Client>
  /** Over TLS: the files another TLS client (Curator) needs: the CA, and a client certificate and key. */
  tlsFiles?: { ca: string; cert: string; key: string }
}

/** Runs a node-zookeeper-client call as a promise. */
export const zkCall = <T>(run: (cb: (err: unknown, value?: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => run((err, value) => (err ? reject(err) : resolve(value as T))))

/** With `tls`: backends dial the TLS port with these settings (plain clients keep the plain port). */
function zookeeperUnderTest(zk: ZooKeeperServer, tls?: { store: StoreTls; ca: TestCa }): ZooKeeperUnderTest {
  const clients: zookeeper.Client[] = []
  const server: ZooKeeperUnderTest = {
    zk,
    async raw() {
      const client = zookeeper.createClient(zk.connectString, { sessionTimeout: 4000 })
      clients.push(client)
      await new Promise<void>((resolve) => {
        client.once('connected', () => resolve())
        client.connect()
      })
      return client
    },
    backend: (path, ttlMs) =>
      tls
        ? new ZooKeeperBackend({
            connect: zk.secureConnectString,
            path,
            sessionTimeoutMs: ttlMs,
            tls: tls.store,
          })
        : new ZooKeeperBackend({ connect: zk.connectString, path, sessionTimeoutMs: ttlMs }),
    async plantForeign() {
      const path = zookeeperStore.election()
      const client = await server.raw()
      await zkCall((cb) => client.mkdirp(`${path}/config`, (e) => cb(e)))
      return [{ election: path, names: new RegExp(`${path}/config`) }]
    },
    async leftovers(path) {
      const client = await server.raw()
      const children = async (p: string) =>
        (await zkCall<string[]>((cb) => client.getChildren(p, cb))).map((c) => `${p}/${c}`)
      return [...(await children(path)), ...(await children(`${path}-meta`))]
    },
    kill: () => zk.stop('SIGKILL'),
    restart: () => zk.start(),
    freeze: () => process.kill(zk.pid as number, 'SIGSTOP'),
    thaw: () => {
      process.kill(zk.pid as number, 'SIGCONT')
    },
    async close() {
      for (const c of clients) c.close()
      await zk.close()
      tls?.ca.close()
    },
  }
  if (tls)
    server.tlsFiles = { ca: tls.ca.ca.file, cert: tls.ca.client.cert.file, key: tls.ca.client.key.file }
  return server
}

/** ZooKeeper 3.8 with tickTime 200 ms (session timeouts 400 to 4000 ms): TTL 2 s; resign at 4 s. */
export const zookeeperStore: LeaseStore<ZooKeeperUnderTest> = {
  name: 'ZooKeeper',
  ttlMs: 2000,
  resignTtlMs: 4000,
  recoveryMs: 30_000,
  start: async () => zookeeperUnderTest(await ZooKeeperServer.start({ tickTimeMs: 200 })),
  election: () => `/ballot-lease-test/e${unique()}`,
  unreachable: (port) =>
    new ZooKeeperBackend({ connect: `127.0.0.1:${port}`, path: '/x', connectTimeoutMs: 2000 }),
  async deleteEntry(server, key) {
    const client = await server.raw()
    await zkCall((cb) => client.remove(key, -1, (e) => cb(e)))
  },
  processes: {
    options: (server, id) => ({
      id,
      store: `zookeeper://${server.zk.connectString}`,
      election: `/procs/${process.pid}`,
      ttlMs: 2000,
    }),
    // The server expires the session a session timeout after the last packet it got (at most TTL/3 before
    // the kill), in tickTime buckets.
    failover: { min: (2000 * 2) / 3 - 50, max: 2000 + 2 * 200 + 1500 },
  },
}

/**
 * The same ZooKeeper, its backends over TLS to the secureClientPort with a client certificate (the server
 * asks for one), through ZooKeeperBackend's in-process forwarders; a CA of its own per server.
 */
export const zookeeperTlsStore: LeaseStore<ZooKeeperUnderTest> = {
  ...zookeeperStore,
  name: 'ZooKeeper over TLS',
  processes: undefined,
  unreachable: (port) =>
    new ZooKeeperBackend({ connect: `127.0.0.1:${port}`, path: '/x', connectTimeoutMs: 2000, tls: {} }),
  async start() {
    const ca = TestCa.make()
    try {
      const zk = await ZooKeeperServer.start({
        tickTimeMs: 200,
        tls: { ca: ca.ca.file, cert: ca.server.cert.file, key: ca.server.key.file, clientAuth: true },
      })
      return zookeeperUnderTest(zk, {
        ca,
        store: { ca: ca.ca.pem, cert: ca.client.cert.pem, key: ca.client.key.pem },
      })
    } catch (err) {
      ca.close()
      throw err
    }
  },
}

// ---- Consul -------------------------------------------------------------------------------------------

/** A Consul agent for the scenarios. */
export interface ConsulUnderTest extends StoreServer {
  agent: ConsulAgent
}

/** The lock-delay the scenarios use (1 s; the default is 15 s, as `consul lock`). */
export const CONSUL_TEST_LOCK_DELAY_MS = 1000

function consulUnderTest(agent: ConsulAgent): ConsulUnderTest {
  return {
    agent,
    backend: (prefix) =>
      new ConsulBackend({
        address: agent.address,
        prefix,
        lockDelayMs: CONSUL_TEST_LOCK_DELAY_MS,
        retryMs: 200,
      }),
    async plantForeign() {
      // A lock key of another kind (a `consul lock -n` semaphore's flags).
      const semaphore = consulStore.election()
      const put = await agent.http('PUT', `/v1/kv/${semaphore}/.lock?flags=42`, 'x')
      if (put.status !== 200) throw new Error(`PUT: ${put.status} ${put.text}`)
      // A live session's key in ballot's line that is not a candidate entry (a key whose session ended is
      // ballot's own leftover, and tidied away).
      const stranger = consulStore.election()
      const session = JSON.parse((await agent.http('PUT', '/v1/session/create', '{"TTL":"60s"}')).text).ID
      const acquired = await agent.http(
        'PUT',
        `/v1/kv/${stranger}.ballot/line/oops?acquire=${session}`,
        'not json',
      )
      if (acquired.text.trim() !== 'true') throw new Error(`acquire: ${acquired.text}`)
      return [
        { election: semaphore, names: new RegExp(`${semaphore}/\\.lock has flags 42`) },
        { election: stranger, names: new RegExp(`${stranger}\\.ballot/line/oops`) },
      ]
    },
    async leftovers(prefix, session) {
      const out: string[] = []
      for (const path of [`/v1/kv/${prefix}?recurse=true`, `/v1/kv/${prefix}.ballot/?recurse=true`]) {
        const r = await agent.http('GET', path)
        if (r.status !== 404) out.push(`${path}: ${r.text}`)
      }
      const info = (await agent.http('GET', `/v1/session/info/${session}`)).text.trim()
      if (info !== '[]') out.push(`session ${session}: ${info}`)
      return out
    },
    kill: () => agent.stop('SIGKILL'),
    restart: () => agent.start(),
    freeze: () => process.kill(agent.pid as number, 'SIGSTOP'),
    thaw: () => {
      process.kill(agent.pid as number, 'SIGCONT')
    },
    close: () => agent.close(),
  }
}

/** Consul 1.8.7: TTL 10 s, its shortest; a persistent one-server cluster for the failure scenario. */
export const consulStore: LeaseStore<ConsulUnderTest> = {
  name: 'Consul',
  ttlMs: 10_000,
  recoveryMs: 60_000,
  start: async (opts = {}) =>
    consulUnderTest(await ConsulAgent.start({ persistent: opts.persistent ?? false })),
  election: () => `ballot-lease-test/e${unique()}`,
  unreachable: (port) => new ConsulBackend({ address: `http://127.0.0.1:${port}`, prefix: 'x' }),
  async deleteEntry(server, key) {
    // The candidate's line key (the lock stays held by its session: the candidate must let it go and
    // acquire anew, with a larger token).
    const r = await server.agent.http('DELETE', `/v1/kv/${key}`)
    if (r.status !== 200) throw new Error(`DELETE ${key}: ${r.status} ${r.text}`)
  },
  processes: {
    options: (server, id) => ({
      id,
      store: server.agent.address.replace('http://', 'consul://'),
      election: `procs/${process.pid}`,
      ttlMs: 10_000,
      lockDelayMs: CONSUL_TEST_LOCK_DELAY_MS,
    }),
    // Consul invalidates no sooner than the TTL after the last renew (sent at most TTL/3 before the kill)
    // and, in practice, 2 × TTL after it; then the lock-delay; then the next acquire try (every 1 s).
    failover: {
      min: (10_000 * 2) / 3 + CONSUL_TEST_LOCK_DELAY_MS - 50,
      max: 2 * 10_000 + CONSUL_TEST_LOCK_DELAY_MS + 4000,
    },
  },
}

// ---- Redis --------------------------------------------------------------------------------------------

/** A redis-server for the scenarios; `redis` is the helper's own handle (redis-cli and the rest). */
export interface RedisUnderTest extends StoreServer {
  redis: RedisServer
  /** A backend on this server, with more options (password, TLS, another host such as a proxy). */
  backend(election: string, ttlMs?: number, extra?: Partial<RedisBackendOptions>): RedisBackend
}

function redisUnderTest(redis: RedisServer): RedisUnderTest {
  let sleeper: OwnedProcess | undefined
  return {
    redis,
    backend: (election, _ttlMs, extra = {}) => new RedisBackend({ host: redis.endpoint, election, ...extra }),
    async plantForeign() {
      const election = redisStore.election()
      const keys = redisKeys(election)
      redis.cli('LPUSH', keys.line, 'x')
      return [{ election, names: literally(`${keys.line} is a list`) }]
    },
    async leftovers(election) {
      // The counters stay (tokens must grow across elections of the same name); nothing else may.
      const left = redis
        .cli('--scan', '--pattern', `ballot:{${election}}:*`)
        .stdout.split('\n')
        .filter(Boolean)
      const keys = redisKeys(election)
      const counters = [keys.seq, keys.token, keys.version]
      return [
        ...left.filter((k) => !counters.includes(k)),
        ...counters.filter((k) => !left.includes(k)).map((k) => `counter ${k} missing`),
      ]
    },
    kill: () => redis.stop('SIGKILL'),
    // A persistent server saves at SIGTERM: the sessions come back.
    shutDown: () => redis.stop('SIGTERM'),
    restart: () => redis.start(),
    // DEBUG SLEEP, longer than the TTL (2 s): the server itself stops answering, as a stall would (SIGSTOP
    // would too, but this is what an operator's DEBUG SLEEP or a long fork looks like to clients).
    freeze() {
      sleeper = redis.debugSleep(4)
    },
    async thaw() {
      const s = sleeper
      sleeper = undefined
      try {
        await s?.waitExit()
      } finally {
        await s?.stop('SIGKILL')
      }
    },
    async close() {
      await sleeper?.stop('SIGKILL')
      await redis.close()
    },
  }
}

/** Redis 7: TTL 2 s, granted to the ms; resign at 5 s; the failure scenario on a server that keeps nothing. */
export const redisStore: LeaseStore<RedisUnderTest> = {
  name: 'Redis',
  ttlMs: 2000,
  resignTtlMs: 5000,
  recoveryMs: 20_000,
  retriesBeforeRestart: true,
  // A persistent server restarted is Redis's own test (sessions resumed); the shared one loses everything.
  volatileRestart: true,
  start: async (opts = {}) => redisUnderTest(await RedisServer.start({ persistent: opts.persistent })),
  election: () => `ballot-test-${unique()}`,
  unreachable: (port) => new RedisBackend({ host: `127.0.0.1:${port}`, election: 'x' }),
  async deleteEntry(server, key) {
    // The candidate's session hash: its keep-alive finds it gone.
    assert.equal(server.redis.cli('DEL', key).stdout.trim(), '1')
  },
  async endSession(server, election, sid) {
    const keys = redisKeys(election)
    assert.equal(server.redis.cli('DEL', keys.sessionPrefix + sid, keys.leader).stdout.trim(), '2')
  },
  processes: {
    options: (server, id) => ({
      id,
      store: `redis://${server.redis.endpoint}`,
      election: `procs-${process.pid}`,
      ttlMs: 2000,
    }),
    // The lock expires TTL after the last keep-alive reached the server (at most TTL/3 before the kill);
    // the next in line looks at once then (its timer at the lock's PTTL), not at its next keep-alive.
    failover: { min: (2000 * 2) / 3 - 50, max: 2000 + 500 },
    handoverMaxMs: 300,
  },
}

// ---- PostgreSQL ---------------------------------------------------------------------------------------

/** A PostgreSQL 15 server for the scenarios; `pg` is the helper's own handle (SQL as the superuser). */
export interface PostgresUnderTest extends StoreServer {
  pg: PostgresServer
  /** A backend on this server (or on `port`, such as PgBouncer's), with more options (schema, listen). */
  backend(
    election: string,
    ttlMs?: number,
    extra?: Partial<PostgresBackendOptions>,
    port?: number,
  ): PostgresBackend
}

function postgresUnderTest(pg: PostgresServer): PostgresUnderTest {
  const server: PostgresUnderTest = {
    pg,
    backend: (election, _ttlMs, extra = {}, port = pg.port) =>
      new PostgresBackend({
        connection: { host: '127.0.0.1', port, user: 'postgres', database: 'postgres' },
        election,
        ...extra,
      }),
    async plantForeign() {
      await pg.query('CREATE SCHEMA IF NOT EXISTS foreign_data')
      await pg.query('CREATE TABLE IF NOT EXISTS foreign_data.leases (id int)')
      await pg.query('CREATE TABLE IF NOT EXISTS foreign_data.candidates (id int)')
      await pg.query('CREATE SEQUENCE IF NOT EXISTS foreign_data.lease_tokens')
      await pg.query('CREATE SEQUENCE IF NOT EXISTS foreign_data.line_order')
      const election = postgresStore.election()
      return [
        {
          // A schema holding tables of the same names that are not ballot's.
          election,
          names: /not ballot's: name another with --schema/,
          backend: () => server.backend(election, undefined, { schema: 'foreign_data' }),
        },
        {
          election,
          names: /database "nosuchdb" does not exist/,
          backend: () =>
            new PostgresBackend({
              connection: { port: pg.port, user: 'postgres', database: 'nosuchdb' },
              election,
            }),
        },
        {
          // No schema, and not allowed to make one: the refusal says how to.
          election,
          names: /ballot migrate/,
          backend: () =>
            server.backend(election, undefined, { schema: `unmade_${process.pid}`, createSchema: false }),
        },
      ]
    },
    async leftovers(election, _session, lastToken) {
      const out = (await pg.query('SELECT * FROM ballot.candidates WHERE election = $1', [election])).map(
        (r) => `candidate ${JSON.stringify(r)}`,
      )
      // The lease row stays, released, with its token (the next leadership must have a larger one).
      const [lease] = await pg.query<{ holder: string | null; token: string }>(
        'SELECT holder, token FROM ballot.leases WHERE election = $1',
        [election],
      )
      if (!lease) out.push('no leases row')
      else {
        if (lease.holder !== null) out.push(`the lease still held by ${lease.holder}`)
        if (BigInt(lease.token) !== lastToken) out.push(`lease token ${lease.token}, not ${lastToken}`)
      }
      return out
    },
    kill: () => pg.stop('SIGKILL'),
    restart: () => pg.start(),
    freeze: () => pg.freeze(),
    thaw: () => pg.thaw(),
    close: () => pg.close(),
  }
  return server
}

/** PostgreSQL 15 (always keeps its data): TTL 2 s; frozen longer than the TTL in the failure scenario. */
export const postgresStore: LeaseStore<PostgresUnderTest> = {
  name: 'PostgreSQL',
  ttlMs: 2000,
  recoveryMs: 20_000,
  retriesBeforeRestart: true,
  holdFrozenMs: 2000 * 1.5,
  resignHandovers: 8,
  start: async () => postgresUnderTest(await PostgresServer.start()),
  election: () => `e${unique()}`,
  unreachable: (port) =>
    new PostgresBackend({
      connection: { host: '127.0.0.1', port, user: 'postgres', database: 'postgres' },
      election: 'x',
    }),
  unreachableNames: (port) => new RegExp(`127\\.0\\.0\\.1:${port}/postgres`),
  async checkElected(server, election, leader) {
    const [row] = await server.pg.query<{ holder_id: string; token: string }>(
      'SELECT holder_id, token FROM ballot.leases WHERE election = $1',
      [election],
    )
    assert.equal(row?.holder_id, leader.id)
    assert.equal(BigInt(row?.token as string), leader.token)
  },
  async endSession(server, _election, session) {
    await server.pg.query('DELETE FROM ballot.candidates WHERE session = $1', [session])
  },
  processes: {
    options: (server, id) => ({ id, store: server.pg.url, election: `procs-${process.pid}`, ttlMs: 2000 }),
    // The lease expires a TTL after the last renewal (sent at most TTL/3 before the kill); the next in line
    // has a timer at that expiry (plus a few ms), or takes at its own keep-alive just after it.
    failover: { min: (2000 * 2) / 3 - 50, max: 2000 + 1000 },
  },
}
