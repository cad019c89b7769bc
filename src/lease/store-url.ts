/**
 * `--store` URLs, one scheme per store:
 *
 *   etcd://[user:password@]host:port[,host:port...]       etcd+https://...  (TLS)
 *   zookeeper://[user:password@]host:port[,host:port...][/chroot]   zookeeper+https://... (TLS)   (user:password: digest auth)
 *   consul://host:port   consul+https://host:port                   (one agent; ACL token apart)
 *   redis://[user:password@]host:port[/db]   rediss://... (TLS)      (one server)
 *   redis+sentinel://[user:password@]host:port[,host:port...]/master[/db]   (rediss+sentinel: TLS)
 *   postgres://[user[:password]@]host:port[/database]                 (also postgresql://; one server)
 *
 * TLS: the `+https` schemes; the CA to trust and a client certificate and key come apart (the CLI's
 * --store-ca/--store-cert/--store-key, files). ZooKeeper's TLS (its secureClientPort) goes through
 * in-process forwarders, as node-zookeeper-client speaks plain TCP only (see stores/tls-tunnel.ts).
 *
 * Credentials may also come apart (flags, BALLOT_STORE_USER / BALLOT_STORE_PASSWORD / BALLOT_STORE_TOKEN);
 * they are never part of what is logged or printed. A Consul token is never taken from the URL: it has no
 * user name to hide it behind, so it would show in every log line that names the store.
 */
import { InvalidOptionsError } from '../errors.js'
import type { LeaseBackend } from './backend.js'
import { ConsulBackend } from './stores/consul.js'
import { EtcdBackend } from './stores/etcd.js'
import { PostgresBackend } from './stores/postgres.js'
import { RedisBackend } from './stores/redis.js'
import type { StoreTls } from './stores/tls.js'
import { ZooKeeperBackend } from './stores/zookeeper.js'

/** The stores a `--store` URL can name. */
export type StoreScheme = 'etcd' | 'zookeeper' | 'consul' | 'redis' | 'postgres'

/** A parsed `--store` URL. */
export interface StoreUrl {
  /** Which store. */
  scheme: StoreScheme
  /** Its endpoints, host:port. */
  hosts: string[]
  /** The user name from the URL, if any. */
  username?: string
  /** The password from the URL, if any (never printed). */
  password?: string
  /** `etcd+https://`, `consul+https://` or `zookeeper+https://`: TLS to the store (the CA and client certificate come apart). */
  tls?: boolean
  /** ZooKeeper: the chroot after the hosts (`/apps`), if any. */
  chroot?: string
  /** Redis: the database number after the host (`/2`), if any. */
  db?: number
  /** Redis through Sentinel: the master's name (the hosts are the sentinels). */
  sentinelMaster?: string
  /** PostgreSQL: the database after the host (default: the user's name, as libpq). */
  database?: string
}

const SCHEMES = [
  'etcd',
  'zookeeper',
  'zookeeper+https',
  'consul',
  'consul+https',
  'etcd+https',
  'redis',
  'rediss',
  'redis+sentinel',
  'rediss+sentinel',
  'postgres',
  'postgresql',
] as const
const REDIS_SCHEMES: readonly string[] = ['redis', 'rediss', 'redis+sentinel', 'rediss+sentinel']
const HOST_PORT = /^(\[[0-9a-fA-F:]+\]|[^:\s/@,[\]]+):(\d{1,5})$/
const EXAMPLES =
  'etcd://host:port[,host:port], zookeeper://host:port[,host:port], consul://host:port, redis://host:port or postgres://user@host:port/db'

/** Session TTLs Consul grants (ms): 10 s to 24 h. */
export const CONSUL_TTL_RANGE_MS: {
  /** The shortest TTL Consul grants (ms). */
  readonly min: number
  /** The longest TTL Consul grants (ms). */
  readonly max: number
} = {
  min: 10_000,
  max: 86_400_000,
}

/**
 * The TTL a store election uses when none is given (ms): 5 s, except on Consul, whose shortest TTL is
 * 10 s (asking less would be granted 10 s anyway, silently).
 */
export function defaultStoreTtlMs(scheme: StoreScheme): number {
  return scheme === 'consul' ? CONSUL_TTL_RANGE_MS.min : 5000
}

/**
 * Whether the store can grant `ttlMs` as asked; undefined when it can, else why not (one sentence).
 * ZooKeeper's range depends on the server's tickTime: that is checked when connecting (the granted
 * timeout must be the one asked for), not here.
 */
export function storeTtlProblem(scheme: StoreScheme, ttlMs: number): string | undefined {
  if (scheme === 'consul' && (ttlMs < CONSUL_TTL_RANGE_MS.min || ttlMs > CONSUL_TTL_RANGE_MS.max))
    return `Consul grants session TTLs from 10s to 24h, not ${ttlMs} ms`
  return undefined
}

/** Parses a store URL; throws InvalidOptionsError naming `field` (the password never in the message). */
export function parseStoreUrl(url: string, field = '--store'): StoreUrl {
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/.exec(url.trim())
  if (!m) throw new InvalidOptionsError(field, `expected ${EXAMPLES}, got "${redactStoreUrl(url)}"`)
  const given = m[1] as string
  if (!(SCHEMES as readonly string[]).includes(given))
    throw new InvalidOptionsError(field, `unknown store "${given}://" (supported: ${SCHEMES.join(', ')})`)
  const scheme: StoreScheme = given.endsWith('+https')
    ? (given.replace(/\+https$/, '') as StoreScheme)
    : REDIS_SCHEMES.includes(given)
      ? 'redis'
      : given === 'postgresql'
        ? 'postgres'
        : (given as StoreScheme)
  let rest = (m[2] as string).replace(/\/+$/, '')
  let username: string | undefined
  let password: string | undefined
  const at = rest.lastIndexOf('@')
  if (at >= 0) {
    if (scheme === 'consul')
      throw new InvalidOptionsError(
        field,
        'a Consul ACL token goes in --store-token or BALLOT_STORE_TOKEN, not in the URL',
      )
    const creds = rest.slice(0, at)
    rest = rest.slice(at + 1)
    const colon = creds.indexOf(':')
    username = decodeURIComponent(colon >= 0 ? creds.slice(0, colon) : creds)
    password = colon >= 0 ? decodeURIComponent(creds.slice(colon + 1)) : undefined
    // Redis: redis://:password@host (AUTH with the password only) is the usual form.
    if (!username && scheme === 'redis' && password !== undefined) username = undefined
    else if (!username) throw new InvalidOptionsError(field, 'the user name before "@" is empty')
  }
  let chroot: string | undefined
  const slash = rest.indexOf('/')
  if (scheme === 'zookeeper' && slash >= 0) {
    chroot = rest.slice(slash)
    rest = rest.slice(0, slash)
    if (!/^(\/[^/\s]+)+$/.test(chroot))
      throw new InvalidOptionsError(field, `"${chroot}" is not a ZooKeeper chroot like /apps`)
  }
  const redis = scheme === 'redis' ? redisPath(given, rest, field) : undefined
  if (redis) rest = redis.rest
  let database: string | undefined
  if (scheme === 'postgres' && slash >= 0) {
    database = decodeURIComponent(rest.slice(slash + 1))
    rest = rest.slice(0, slash)
    if (!database || /[/?#\s]/.test(database))
      throw new InvalidOptionsError(
        field,
        `"${database}" is not a database name (postgres://user@host:port/db)`,
      )
  }
  const hosts = rest.split(',').map((h) => h.trim())
  for (const h of hosts) {
    const hp = HOST_PORT.exec(h)
    if (!hp || Number(hp[2]) < 1 || Number(hp[2]) > 65535)
      throw new InvalidOptionsError(field, `expected host:port in ${given}://..., got "${h}"`)
  }
  if (scheme === 'consul' && hosts.length > 1)
    throw new InvalidOptionsError(
      field,
      'give one Consul agent (host:port): the agent forwards to the servers',
    )
  if (scheme === 'redis' && !redis?.sentinelMaster && hosts.length > 1)
    throw new InvalidOptionsError(
      field,
      'give one Redis server (host:port), or its sentinels as redis+sentinel://host:port,.../master',
    )
  if (scheme === 'postgres' && hosts.length > 1)
    throw new InvalidOptionsError(
      field,
      'give one PostgreSQL server (host:port), or PgBouncer in front of it',
    )
  const out: StoreUrl = { scheme, hosts, username, password }
  if (given.endsWith('+https') || given.startsWith('rediss')) out.tls = true
  if (database !== undefined) out.database = database
  if (redis?.db !== undefined) out.db = redis.db
  if (redis?.sentinelMaster !== undefined) out.sentinelMaster = redis.sentinelMaster
  if (chroot !== undefined) out.chroot = chroot
  return out
}

/** Redis URLs: splits `/db` (and, through Sentinel, `/master[/db]`) off the hosts. */
function redisPath(
  given: string,
  rest: string,
  field: string,
): { rest: string; db?: number; sentinelMaster?: string } {
  const slash = rest.indexOf('/')
  const parts = slash >= 0 ? rest.slice(slash + 1).split('/') : []
  const out: { rest: string; db?: number; sentinelMaster?: string } = {
    rest: slash >= 0 ? rest.slice(0, slash) : rest,
  }
  if (given.endsWith('+sentinel')) {
    const master = parts.shift()
    if (!master)
      throw new InvalidOptionsError(field, `name the master: ${given}://host:port[,host:port]/master[/db]`)
    out.sentinelMaster = decodeURIComponent(master)
  }
  if (parts.length > 1 || (parts.length === 1 && !/^\d{1,5}$/.test(parts[0] as string)))
    throw new InvalidOptionsError(
      field,
      `expected a database number after the host, got "/${parts.join('/')}"`,
    )
  if (parts.length === 1) out.db = Number(parts[0])
  return out
}

/** The URL with any password replaced by "***", for messages. */
export function redactStoreUrl(url: string): string {
  return url.replace(/([^:/@\s]*):[^@/\s]*@/, '$1:***@')
}

/** What `createBackend()` needs besides the URL. */
export interface BackendFactoryOptions {
  /** etcd, Redis: the election name; ZooKeeper: the latch path (`/services/x/leader`); Consul: the `consul lock` prefix. */
  election: string
  /** The user name for the store, if it needs one (wins over one in the URL). */
  username?: string
  /** The password for the store (wins over one in the URL; never printed). */
  password?: string
  /** Consul ACL token (X-Consul-Token). */
  token?: string
  /**
   * The session TTL the election will ask for (ms). ZooKeeper opens its session while connecting, with
   * this timeout, so that the election's first session is that one.
   */
  ttlMs?: number
  /**
   * ZooKeeper: refuse to connect (INVALID_OPTIONS, naming `ttl`) when the server grants another session
   * timeout than `ttlMs` (it clamps to 2–20 × its tickTime). The CLI sets it, so `--ttl` is what it says.
   */
  exactTtl?: boolean
  /** Consul: the session's lock-delay (ms). Default 15000, as `consul lock`. */
  lockDelayMs?: number
  /** PostgreSQL: the schema of ballot's tables. Default 'ballot'. */
  schema?: string
  /** With a `+https` URL: the CA to trust and a client certificate and key (PEM). Default: system roots. */
  tls?: StoreTls
}

/** The backend for a parsed store URL (credentials given apart win over those in the URL). */
export function createBackend(store: StoreUrl, opts: BackendFactoryOptions): LeaseBackend {
  const username = opts.username ?? store.username
  const password = opts.password ?? store.password
  if (opts.tls && !store.tls)
    throw new InvalidOptionsError(
      '--store',
      `TLS settings need a TLS store URL (${store.scheme === 'redis' ? 'rediss' : `${store.scheme}+https`}://host:port)`,
    )
  const tls = store.tls ? (opts.tls ?? {}) : undefined
  switch (store.scheme) {
    case 'etcd':
      return new EtcdBackend({ hosts: store.hosts, election: opts.election, username, password, tls })
    case 'zookeeper': {
      if (password !== undefined && username === undefined)
        throw new InvalidOptionsError('--store-user', 'ZooKeeper digest auth needs a user with the password')
      return new ZooKeeperBackend({
        connect: store.hosts.join(',') + (store.chroot ?? ''),
        path: opts.election,
        sessionTimeoutMs: opts.ttlMs,
        exactSessionTimeout: opts.exactTtl,
        digest: username === undefined ? undefined : { username, password: password ?? '' },
        tls,
      })
    }
    case 'consul':
      if (username !== undefined || password !== undefined)
        throw new InvalidOptionsError(
          '--store-user',
          'Consul takes an ACL token (--store-token, BALLOT_STORE_TOKEN), not a user and password',
        )
      return new ConsulBackend({
        address: `${store.tls ? 'https' : 'http'}://${store.hosts[0]}`,
        prefix: opts.election,
        token: opts.token,
        lockDelayMs: opts.lockDelayMs,
        tls,
      })
    case 'redis':
      return new RedisBackend({
        election: opts.election,
        host: store.sentinelMaster ? undefined : store.hosts[0],
        sentinels: store.sentinelMaster ? store.hosts : undefined,
        sentinelMaster: store.sentinelMaster,
        db: store.db,
        username,
        password,
        tls: tls && { ...tls },
      })
    case 'postgres': {
      const [host, port] = splitHostPort(store.hosts[0] as string)
      return new PostgresBackend({
        connection: { host, port, user: username, password, database: store.database },
        election: opts.election,
        schema: opts.schema,
      })
    }
  }
}

/** "host:port" or "[v6]:port" to its parts. */
function splitHostPort(hp: string): [string, number] {
  const at = hp.lastIndexOf(':')
  return [hp.slice(0, at).replace(/^\[|\]$/g, ''), Number(hp.slice(at + 1))]
}
