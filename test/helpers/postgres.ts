/**
 * A real PostgreSQL 15 for tests (Debian's binaries in /usr/lib/postgresql/15/bin, or $BALLOT_PG_BIN), on
 * a free loopback port with a temporary data directory. PostgreSQL refuses to run as root, so the
 * directory is handed to the `postgres` user, `initdb` runs as that user (trust auth, no fsync), and the
 * server is started under `setpriv --reuid=postgres` (not runuser, whose wrapper delays SIGTERM): the
 * PID the harness holds is the postmaster's own. `freeze()` stops the postmaster and then every process
 * it forked (each backend is a process group of its own: PostgreSQL calls setsid() in each child, so a
 * group signal would miss them), found by their parent PID; `thaw()` resumes them all.
 * `stop()` then `start()` keeps the port and data; `close()` kills it by PID and removes the directory.
 *
 * Also PgBouncer (Debian's pgbouncer, `scripts/install-services.sh`) in front of it, in transaction mode.
 * A missing binary fails the test.
 */
import { execFileSync } from 'node:child_process'
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { freePorts, OwnedProcess, portOpen, removeTempDir, service, tempDir, waitUntil } from './services.js'

function postgresIds(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim())
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim())
  return { uid, gid }
}

const SETPRIV = ['--reuid=postgres', '--regid=postgres', '--init-groups', '--']

/** The PIDs whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      // pid (comm) state ppid ...: comm may hold spaces and parentheses; the last ')' ends it.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === pid) out.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return out
}

/** Runs `sql` as the superuser on `port` and returns its rows. */
export async function psql<R = Record<string, unknown>>(
  port: number,
  sql: string,
  values: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' })
  client.on('error', () => {})
  await client.connect()
  try {
    return (await client.query(sql, values)).rows as R[]
  } finally {
    await client.end().catch(() => {})
  }
}

export class PostgresServer {
  private proc: OwnedProcess | undefined
  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  /** Initialises a cluster in a temporary directory and starts it on a free port. */
  static async start(): Promise<PostgresServer> {
    const bin = service('BALLOT_PG_BIN')
    if (!existsSync(join(bin, 'postgres')) || !existsSync(join(bin, 'initdb')))
      throw new Error(`BALLOT_PG_BIN: no postgres or initdb in ${bin}: run scripts/install-services.sh`)
    const [port] = await freePorts(1)
    const dir = tempDir('pg')
    const server = new PostgresServer(port as number, dir)
    try {
      // mkdtemp makes 0700 directories: the postgres user must be able to reach its own.
      chmodSync(dir, 0o711)
      const { uid, gid } = postgresIds()
      chownSync(dir, uid, gid)
      execFileSync(
        'setpriv',
        [
          ...SETPRIV,
          join(bin, 'initdb'),
          '-D',
          join(dir, 'data'),
          '-U',
          'postgres',
          '-A',
          'trust',
          '--no-sync',
        ],
        { stdio: 'pipe' },
      )
      await server.start()
    } catch (err) {
      await server.close()
      throw err
    }
    return server
  }

  /** `postgres://postgres@127.0.0.1:port/postgres` */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`
  }

  get pid(): number | undefined {
    return this.proc?.running ? this.proc.pid : undefined
  }

  /** Starts (again) on the same port and data; resolves once it accepts a query. */
  async start(): Promise<void> {
    if (this.proc?.running) throw new Error('postgres is already running')
    const bin = service('BALLOT_PG_BIN')
    const proc = new OwnedProcess('postgres', 'setpriv', [
      ...SETPRIV,
      join(bin, 'postgres'),
      '-D',
      join(this.dir, 'data'),
      '-p',
      String(this.port),
      '-h',
      '127.0.0.1',
      '-k',
      this.dir,
      '-c',
      'fsync=off',
      '-c',
      'max_connections=200',
    ])
    this.proc = proc
    await waitUntil(
      `postgres on port ${this.port} to accept queries`,
      async () => {
        if (!proc.running) throw new Error(`postgres exited (${proc.exitCode}):\n${proc.tail()}`)
        if (!(await portOpen(this.port))) return false
        try {
          await psql(this.port, 'SELECT 1')
          return true
        } catch {
          return false
        }
      },
      30_000,
      50,
    )
  }

  /** Stops the postmaster by PID (SIGKILL by default: a crash; backends then exit on their own). */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.proc
    if (!proc?.running) return
    this.thaw()
    const children = childrenOf(proc.pid)
    await proc.stop(signal)
    if (signal === 'SIGKILL') {
      // The backends would notice the postmaster's death and exit: a crash of the whole server, now.
      for (const child of children) this.signal(child, 'SIGKILL')
      await waitUntil('postgres backends to exit', async () => !(await portOpen(this.port)), 10_000)
    }
  }

  /** SIGSTOP to the postmaster (first: it forks no more) and to every process it started. */
  freeze(): void {
    const pid = this.proc?.running ? this.proc.pid : undefined
    if (!pid) return
    this.signal(pid, 'SIGSTOP')
    for (const child of childrenOf(pid)) this.signal(child, 'SIGSTOP')
  }

  /** SIGCONT to the postmaster's children, then to the postmaster. */
  thaw(): void {
    const pid = this.proc?.running ? this.proc.pid : undefined
    if (!pid) return
    for (const child of childrenOf(pid)) this.signal(child, 'SIGCONT')
    this.signal(pid, 'SIGCONT')
  }

  private signal(pid: number, signal: NodeJS.Signals): void {
    try {
      process.kill(pid, signal)
    } catch {
      // already gone
    }
  }

  /** Runs SQL as the superuser. */
  query<R = Record<string, unknown>>(sql: string, values: unknown[] = []): Promise<R[]> {
    return psql<R>(this.port, sql, values)
  }

  async close(): Promise<void> {
    await this.stop('SIGKILL')
    removeTempDir(this.dir)
  }
}

/** PgBouncer in transaction mode in front of a PostgresServer (any user name maps to postgres). */
export class PgBouncer {
  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly proc: OwnedProcess,
  ) {}

  static async start(server: PostgresServer, poolMode: 'transaction' | 'session' = 'transaction') {
    const bin = service('BALLOT_PGBOUNCER')
    const [port] = await freePorts(1)
    const dir = tempDir('pgbouncer')
    chmodSync(dir, 0o711)
    const { uid, gid } = postgresIds()
    chownSync(dir, uid, gid)
    mkdirSync(join(dir, 'run'))
    chownSync(join(dir, 'run'), uid, gid)
    const ini = join(dir, 'pgbouncer.ini')
    writeFileSync(
      ini,
      [
        '[databases]',
        `postgres = host=127.0.0.1 port=${server.port} dbname=postgres user=postgres`,
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${port}`,
        'unix_socket_dir =',
        'auth_type = any',
        `pool_mode = ${poolMode}`,
        'default_pool_size = 4',
        'max_client_conn = 200',
        `logfile = ${join(dir, 'pgbouncer.log')}`,
        `pidfile = ${join(dir, 'run', 'pgbouncer.pid')}`,
        'ignore_startup_parameters = extra_float_digits,application_name',
        '',
      ].join('\n'),
    )
    chownSync(ini, uid, gid)
    const proc = new OwnedProcess('pgbouncer', 'setpriv', [...SETPRIV, bin, ini])
    const bouncer = new PgBouncer(port as number, dir, proc)
    try {
      await waitUntil(
        `pgbouncer on port ${port}`,
        async () => {
          if (!proc.running) throw new Error(`pgbouncer exited (${proc.exitCode}):\n${proc.tail()}`)
          if (!(await portOpen(port as number))) return false
          try {
            await psql(port as number, 'SELECT 1')
            return true
          } catch {
            return false
          }
        },
        20_000,
        50,
      )
    } catch (err) {
      await bouncer.close()
      throw err
    }
    return bouncer
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`
  }

  async close(): Promise<void> {
    await this.proc.stop('SIGKILL')
    removeTempDir(this.dir)
  }
}
