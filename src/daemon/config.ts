/**
 * The daemon's configuration: command-line flags, then BALLOT_* environment variables, then a JSON
 * config file (`--config`), then defaults, in that order of precedence. Everything is checked with one
 * schema; the first problem becomes one line naming the flag (or variable, or file field) at fault.
 */
import { readFileSync } from 'node:fs'
import ms from 'ms'
import { z } from 'zod'
import { InvalidOptionsError } from '../errors.js'
import { parseStoreUrl, type StoreScheme, storeTtlProblem } from '../lease/store-url.js'

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'expected host:port')
const PORT = 'must be a port number from 0 to 65535'
const port = z.coerce.number({ error: PORT }).int(PORT).min(0, PORT).max(65535, PORT)
const list = z.preprocess(
  (v) =>
    typeof v === 'string'
      ? v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : v,
  z.array(z.string().min(1)),
)
const DURATION = 'expected a duration such as 500ms, 2s or 1m'
/** "500ms", "2s", "1m" (a unit is required; numbers in a JSON config file are milliseconds). */
export function parseDuration(text: string): number {
  if (!/^\d+(\.\d+)?\s*[a-z]+$/i.test(text.trim())) return Number.NaN
  const value = ms(text.trim() as ms.StringValue)
  return typeof value === 'number' ? value : Number.NaN
}
const duration = z.preprocess(
  (v) => (typeof v === 'string' ? parseDuration(v) : v),
  z.number({ error: DURATION }).positive(DURATION).finite(DURATION),
)
/** A duration that may be 0 ("0s"), such as Consul's lock-delay. */
const durationOrZero = z.preprocess(
  (v) => (typeof v === 'string' ? parseDuration(v) : v),
  z.number({ error: DURATION }).min(0, DURATION).finite(DURATION),
)
const flag = z.preprocess(
  (v) => (v === 'true' || v === '1' ? true : v === 'false' || v === '0' ? false : v),
  z.boolean(),
)

export const daemonConfigSchema = z
  .object({
    algo: z.enum(['raft', 'bully', 'lease']).default('raft'),
    /** Lease driver: the coordination store, etcd://, zookeeper://, consul:// or postgres:// (see lease/store-url.ts). */
    store: z.string().min(1).optional(),
    /**
     * Lease driver: the election in the store: etcd, the key prefix (as with `etcdctl elect NAME`);
     * ZooKeeper, the latch path (Curator's LeaderLatch); Consul, the `consul lock` prefix.
     */
    election: z.string().min(1).max(256).optional(),
    /** Lease driver: session TTL. Default 5s (Consul: 10s, its shortest). */
    ttl: duration.optional(),
    /** Lease driver: store credentials, apart from the URL (never logged). */
    storeUser: z.string().min(1).optional(),
    storePassword: z.string().optional(),
    /** Lease driver on Consul: the ACL token (never logged). */
    storeToken: z.string().min(1).optional(),
    /** Lease driver, TLS (etcd+https://, zookeeper+https://, consul+https://, rediss://): a CA file to trust (PEM). Default: system roots. */
    storeCa: z.string().min(1).optional(),
    /** Lease driver, TLS: a client certificate file (PEM), for a store that asks for one; with storeKey. */
    storeCert: z.string().min(1).optional(),
    /** Lease driver, TLS: the client certificate's key file (PEM; read, never logged). */
    storeKey: z.string().min(1).optional(),
    /** Lease driver on Consul: the session's lock-delay. Default 15s, as `consul lock`. */
    lockDelay: durationOrZero.optional(),
    /** Lease driver on PostgreSQL: the schema of ballot's tables. Default ballot. */
    schema: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/, 'expected a plain SQL identifier such as ballot')
      .optional(),
    /** Lease driver: the address published for this node (default: --http). */
    advertise: hostPort.optional(),
    id: z.string().min(1).max(128).optional(),
    /** Cluster port to listen on (raft, bully over TCP). */
    port: port.default(8117),
    /** Address to bind the cluster port to. Default: this node's host in --nodes. */
    host: z.string().min(1).optional(),
    /** Every member (host:port or id=host:port), the same list on every node. */
    nodes: list.default([]),
    /** Member ids (from --nodes) that are raft observers: they follow, never vote or lead. */
    observers: list.default([]),
    /** HTTP API address (host:port); off when not set. */
    http: hostPort.optional(),
    /** Bearer token for mutating HTTP endpoints (POST /resign); without it they are off. */
    httpToken: z.string().min(8, 'must be at least 8 characters').optional(),
    /**
     * Shared HMAC key(s) for cluster messages: comma-separated (or a list in a config file); the first
     * signs, every one is accepted, so a key can be rotated node by node. A key cannot hold a comma.
     */
    key: z
      .preprocess(
        (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()) : v),
        z
          .array(z.string({ error: 'must be a string' }).min(8, 'must be at least 8 characters'))
          .min(1, 'must name at least one key'),
      )
      .optional(),
    /** Mutual TLS between members: this node's certificate (PEM file), signed by --tls-ca. */
    tlsCert: z.string().min(1).optional(),
    /** The private key of --tls-cert (PEM file). */
    tlsKey: z.string().min(1).optional(),
    /** The CA (PEM file) every member's certificate must be signed by. */
    tlsCa: z.string().min(1).optional(),
    cluster: z.string().min(1).max(128).default('ballot'),
    timing: z.enum(['default', 'fast']).default('default'),
    dataDir: z.string().min(1).optional(),
    /** key=value pairs. */
    tags: list.default([]),
    /** Bully rank: the highest pid leads. */
    pid: z.coerce.number({ error: 'must be an integer' }).int('must be an integer').optional(),
    /** Bully over UDP multicast: the group (host:port). */
    multicast: hostPort.optional(),
    /** Interface (name or IPv4) for multicast. */
    iface: z.string().min(1).optional(),
    notifyUrl: z.string().url('must be a URL such as http://host:port/path').optional(),
    readyWhenLeader: flag.default(false),
    logFormat: z.enum(['json', 'pretty']).optional(),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .strict()

/**
 * The checked configuration. `lone` is set when `ballot run` was given no members at all and made a
 * one-node group on 127.0.0.1 (see loadDaemonConfig's `loneDefault`).
 */
export type DaemonConfig = z.infer<typeof daemonConfigSchema> & { lone?: boolean }
type Key = keyof z.infer<typeof daemonConfigSchema>

/** Settings whose values never appear in a message. */
const SECRET: ReadonlySet<string> = new Set(['key', 'httpToken', 'storePassword'])

/**
 * One problem with one setting, in the CLI's one style: what is allowed, then what was given
 * (`must be one of "default", "fast", got "slow"`). Secrets are never echoed.
 */
function issueMessage(issue: z.core.$ZodIssue, key: string, given: unknown): string {
  const shown = SECRET.has(key) ? '(not shown)' : JSON.stringify(given)
  if (issue.code === 'invalid_value')
    return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${shown}`
  if (/, got /.test(issue.message)) return issue.message
  return `${issue.message.replace(/^Invalid input: /, '')}, got ${shown}`
}

const KEYS = Object.keys(daemonConfigSchema.shape) as Key[]
const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
const envName = (k: string) => `BALLOT_${kebab(k).replace(/-/g, '_').toUpperCase()}`

/** Where each value came from, to name it in an error. */
type Source = 'flag' | 'env' | 'file'

function describe(key: string, source: Source | undefined, file?: string): string {
  if (source === 'env') return envName(key)
  if (source === 'file') return `${file}: ${key}`
  return `--${kebab(key)}`
}

/**
 * Merges flags (as commander parsed them: strings, booleans, undefined when absent), the environment and
 * the config file, and validates the result. Throws InvalidOptionsError naming the offending setting.
 */
export function loadDaemonConfig(
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
  opts: {
    /**
     * `ballot run` with no members (no --nodes, --multicast or --store anywhere): a one-node group on
     * 127.0.0.1:--port with its HTTP API on 127.0.0.1:8080 unless --http says otherwise, so a new user
     * can try it at once.
     */
    loneDefault?: boolean
  } = {},
): DaemonConfig {
  const configPath = (flags.config as string | undefined) ?? env.BALLOT_CONFIG
  let file: Record<string, unknown> = {}
  if (configPath) {
    let text: string
    try {
      text = readFileSync(configPath, 'utf8')
    } catch (err) {
      throw new InvalidOptionsError('--config', `cannot read ${configPath}: ${(err as Error).message}`)
    }
    try {
      file = JSON.parse(text) as Record<string, unknown>
    } catch (err) {
      throw new InvalidOptionsError('--config', `${configPath} is not valid JSON: ${(err as Error).message}`)
    }
    if (typeof file !== 'object' || file === null || Array.isArray(file))
      throw new InvalidOptionsError('--config', `${configPath} must hold a JSON object`)
    for (const key of Object.keys(file)) {
      if (!(KEYS as string[]).includes(key))
        throw new InvalidOptionsError(`${configPath}: ${key}`, `unknown setting (known: ${KEYS.join(', ')})`)
    }
  }
  const merged: Record<string, unknown> = {}
  const source: Record<string, Source> = {}
  for (const key of KEYS) {
    if (flags[key] !== undefined) {
      merged[key] = flags[key]
      source[key] = 'flag'
    } else if (env[envName(key)] !== undefined) {
      merged[key] = env[envName(key)]
      source[key] = 'env'
    } else if (file[key] !== undefined) {
      merged[key] = file[key]
      source[key] = 'file'
    }
  }
  // --store alone is enough to pick the lease driver.
  if (merged.store !== undefined && merged.algo === undefined) merged.algo = 'lease'
  const parsed = daemonConfigSchema.safeParse(merged)
  if (!parsed.success) {
    const issue = parsed.error.issues[0] as z.core.$ZodIssue
    const key = String(issue.path[0] ?? '')
    throw new InvalidOptionsError(
      describe(key, source[key], configPath),
      issueMessage(issue, key, merged[key]),
    )
  }
  const config: DaemonConfig = parsed.data
  for (const tag of config.tags) {
    if (!/^[^=]+=.*$/.test(tag))
      throw new InvalidOptionsError(
        describe('tags', source.tags, configPath),
        `must be key=value, got ${JSON.stringify(tag)}`,
      )
  }
  if (config.algo === 'lease') {
    const name = (k: string) => describe(k, source[k], configPath)
    for (const key of ['tlsCert', 'tlsKey', 'tlsCa'] as const)
      if (config[key] !== undefined)
        throw new InvalidOptionsError(name(key), 'applies to raft and bully over TCP only, not --algo lease')
    if (!config.store)
      throw new InvalidOptionsError('--store', 'required with --algo lease (e.g. etcd://127.0.0.1:2379)')
    const store = parseStoreUrl(config.store, name('store'))
    if (!config.election)
      throw new InvalidOptionsError('--election', 'required with --store (the election name)')
    checkStoreSettings(store.scheme, { ...config, tls: store.tls }, name)
    if (!config.id)
      throw new InvalidOptionsError('--id', 'required with --store (the value of this candidate entry)')
    return config
  }
  const tlsGiven = (['tlsCert', 'tlsKey', 'tlsCa'] as const).filter((k) => config[k] !== undefined)
  if (tlsGiven.length > 0 && tlsGiven.length < 3) {
    const missing = (['tlsCert', 'tlsKey', 'tlsCa'] as const).find((k) => config[k] === undefined) as string
    throw new InvalidOptionsError(
      `--${kebab(missing)}`,
      'required with --tls-cert, --tls-key and --tls-ca: TLS between members is mutual, give all three',
    )
  }
  if (tlsGiven.length > 0 && config.multicast)
    throw new InvalidOptionsError(
      '--tls-cert',
      'multicast cannot use TLS (datagrams to a group); authenticate with --key instead, or use TCP (--nodes)',
    )
  for (const key of [
    'store',
    'storeToken',
    'lockDelay',
    'schema',
    'storeCa',
    'storeCert',
    'storeKey',
  ] as const)
    if (config[key] !== undefined)
      throw new InvalidOptionsError(`--${kebab(key)}`, `applies to --algo lease only (not ${config.algo})`)
  if (config.algo === 'raft' && config.multicast)
    throw new InvalidOptionsError('--multicast', 'applies to --algo bully only')
  if (!config.multicast && config.nodes.length === 0 && opts.loneDefault) {
    const address = `127.0.0.1:${config.port}`
    config.nodes = [config.id ? `${config.id}=${address}` : address]
    config.id ??= address
    config.http ??= '127.0.0.1:8080'
    config.lone = true
    return config
  }
  if (!config.multicast && config.nodes.length === 0)
    throw new InvalidOptionsError(
      '--nodes',
      'give the cluster members as host:port,... (or --multicast with bully)',
    )
  return config
}

/**
 * What only some stores take: an election that is a ZooKeeper path, a TTL the store can grant, a token
 * and a lock-delay only for Consul, a user and password not for Consul. `name` names each setting as the
 * user gave it (flag, variable or file field). Also used by `ballot leader|watch --store`.
 */
export function checkStoreSettings(
  scheme: StoreScheme,
  s: {
    election?: string
    ttl?: number
    storeUser?: string
    storePassword?: string
    storeToken?: string
    lockDelay?: number
    schema?: string
    storeCa?: string
    storeCert?: string
    storeKey?: string
    /** The URL asks for TLS (`+https`). */
    tls?: boolean | undefined
  },
  name: (key: string) => string = (k) => `--${kebab(k)}`,
): void {
  if (scheme !== 'postgres' && s.schema !== undefined)
    throw new InvalidOptionsError(name('schema'), 'applies to postgres:// stores only')
  for (const key of ['storeCa', 'storeCert', 'storeKey'] as const) {
    if (s[key] === undefined) continue
    if (scheme === 'postgres')
      throw new InvalidOptionsError(
        name(key),
        'TLS to PostgreSQL is a library option (PostgresBackend connection.ssl), not a --store setting yet',
      )
    if (!s.tls)
      throw new InvalidOptionsError(
        name(key),
        `needs a TLS store URL (${scheme === 'redis' ? 'rediss' : `${scheme}+https`}://host:port)`,
      )
  }
  if ((s.storeCert === undefined) !== (s.storeKey === undefined))
    throw new InvalidOptionsError(
      name(s.storeCert === undefined ? 'storeCert' : 'storeKey'),
      'a client certificate and its key come together (--store-cert and --store-key)',
    )
  if (scheme === 'zookeeper' && s.election !== undefined && !/^(\/[^/\s]+)+$/.test(s.election))
    throw new InvalidOptionsError(
      name('election'),
      `on ZooKeeper, the latch path (as Curator's LeaderLatch takes it), like /services/my-service/leader; got "${s.election}"`,
    )
  if (s.ttl !== undefined) {
    const problem = storeTtlProblem(scheme, s.ttl)
    if (problem) throw new InvalidOptionsError(name('ttl'), problem)
  }
  if (scheme !== 'consul') {
    for (const key of ['storeToken', 'lockDelay'] as const)
      if (s[key] !== undefined) throw new InvalidOptionsError(name(key), 'applies to consul:// stores only')
  } else {
    for (const key of ['storeUser', 'storePassword'] as const)
      if (s[key] !== undefined)
        throw new InvalidOptionsError(
          name(key),
          'Consul takes an ACL token (--store-token or BALLOT_STORE_TOKEN), not a user and password',
        )
  }
}

/** The flags every election command takes (run, exec); values stay strings for loadDaemonConfig. */
export const ELECTION_FLAGS: Array<[string, string]> = [
  ['--algo <name>', 'raft (default), bully, or lease (implied by --store)'],
  [
    '--store <url>',
    'lease: the store, etcd[+https]://[user:pass@]host:port[,...], zookeeper://[user:pass@]host:port[,...][/chroot], consul[+https]://host:port, postgres://[user:pass@]host:port/db, redis[s]://[user:pass@]host:port[/db] or redis[s]+sentinel://host:port[,...]/master',
  ],
  [
    '--election <name>',
    'lease: the election: etcd key prefix (etcdctl elect NAME), ZooKeeper latch path (/a/b), Consul lock prefix, PostgreSQL lease name',
  ],
  [
    '--schema <name>',
    "lease on PostgreSQL: the schema of ballot's tables (default ballot; created if missing)",
  ],
  ['--ttl <duration>', 'lease: session TTL, e.g. 5s (default; Consul: 10s, its shortest), 500ms, 1m'],
  ['--store-user <name>', 'lease: etcd user, ZooKeeper digest user (or in the URL; never logged)'],
  ['--store-password <secret>', 'lease: store password (or BALLOT_STORE_PASSWORD; never logged)'],
  ['--store-token <token>', 'lease: Consul ACL token (or BALLOT_STORE_TOKEN; never logged)'],
  [
    '--store-ca <file>',
    'lease, etcd+https://, zookeeper+https://, consul+https://, rediss://: CA certificate file to trust (PEM)',
  ],
  ['--store-cert <file>', 'lease, TLS: client certificate file (PEM), with --store-key'],
  ['--store-key <file>', "lease, TLS: the client certificate's key file (PEM; never logged)"],
  [
    '--lock-delay <duration>',
    'lease on Consul: lock-delay after a crashed leader, before anyone may lead (default 15s; 0s: none)',
  ],
  ['--advertise <host:port>', 'lease: the address published for this node (default: --http)'],
  ['--id <id>', 'this node id (default: its host:port in --nodes)'],
  ['--port <port>', 'cluster port (default 8117; with no --nodes, `ballot run` is a one-node group on it)'],
  ['--host <host>', "address to bind the cluster port to (default: this node's host in --nodes)"],
  ['--nodes <list>', 'members: host:port or id=host:port, comma-separated, the same on every node'],
  ['--observers <ids>', 'raft: member ids that follow but never vote or lead'],
  ['--http <host:port>', 'serve the HTTP API here (a lone `ballot run`: 127.0.0.1:8080)'],
  ['--http-token <token>', 'bearer token for POST /resign (without it, mutating endpoints are off)'],
  [
    '--key <secret[,old]>',
    'shared key: authenticate every cluster message (HMAC); a comma-separated list rotates keys: the first signs, all are accepted',
  ],
  ['--tls-cert <file>', "mutual TLS between members: this node's certificate (PEM), signed by --tls-ca"],
  ['--tls-key <file>', 'the private key of --tls-cert (PEM)'],
  ['--tls-ca <file>', "the CA (PEM) every member's certificate must be signed by"],
  ['--cluster <name>', 'cluster name (default ballot)'],
  ['--timing <profile>', 'default (LAN) or fast (loopback, one rack)'],
  ['--data-dir <dir>', 'keep the durable term/vote (raft) or epoch (bully) here'],
  ['--tags <k=v,...>', 'raft: tags announced to every member'],
  [
    '--pid <n>',
    'bully: rank; the highest pid leads (give each node its own, 0-999: it keeps tokens distinct)',
  ],
  ['--multicast <group:port>', 'bully over UDP multicast, e.g. 239.255.41.17:9999'],
  ['--iface <name|ip>', 'bully multicast interface'],
  ['--notify-url <url>', 'POST a JSON event here when this node gains or loses leadership'],
  ['--ready-when-leader', 'GET /readyz answers 200 only on the leader'],
  ['--log-format <fmt>', 'json or pretty (default: pretty on a terminal)'],
  ['--log-level <level>', 'info (default), debug, warn, ...'],
  ['--config <file>', 'JSON config file (flags and BALLOT_* variables override it)'],
]
