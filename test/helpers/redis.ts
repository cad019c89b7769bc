/**
 * Redis servers for the tests: a standalone `redis-server` (Debian's 7.0) on a free loopback port with a
 * temporary directory, no persistence unless asked, `DEBUG` allowed from loopback (to freeze it with
 * DEBUG SLEEP); optionally TLS only (a CA and a server certificate made here with openssl), a password,
 * keyspace notifications; and a master, a replica and a Sentinel (redis-server --sentinel, the same
 * binary). Ready when PING answers. Everything is ended by PID and its directory removed on close().
 */
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import tls from 'node:tls'
import { freePorts, OwnedProcess, removeTempDir, service, tempDir, waitUntil } from './services.js'

export interface RedisServerOptions {
  /** Keep data across a restart (an RDB snapshot written on a SIGTERM shutdown). Default false. */
  persistent?: boolean
  /** requirepass. */
  password?: string
  /** notify-keyspace-events (e.g. 'Kx'). */
  notify?: string
  /** Serve TLS only (port 0), with a CA made here: `caFile` trusts it. */
  tls?: boolean
  /** `replicaof 127.0.0.1 <port>`. */
  replicaOf?: number
}

/** Sends one command in RESP (inline) and returns the raw answer ('' when unreachable). */
export function rawCommand(port: number, line: string, opts: { tlsCa?: string } = {}): Promise<string> {
  return new Promise((resolve) => {
    let out = ''
    const s = opts.tlsCa
      ? tls.connect({ host: '127.0.0.1', port, ca: opts.tlsCa, servername: 'localhost' }, () =>
          s.write(`${line}\r\n`),
        )
      : net.connect({ host: '127.0.0.1', port }, () => s.write(`${line}\r\n`))
    s.setTimeout(2000, () => s.destroy())
    s.on('data', (b) => {
      out += b.toString()
      if (out.endsWith('\r\n')) s.end()
    })
    s.on('close', () => resolve(out))
    s.on('error', () => resolve(''))
  })
}

export class RedisServer {
  private proc: OwnedProcess | undefined
  /** The CA certificate (PEM) clients must trust when `tls`. */
  caFile = ''
  private constructor(
    readonly port: number,
    readonly dir: string,
    readonly opts: RedisServerOptions,
  ) {}

  /** host:port for clients. */
  get endpoint(): string {
    return `127.0.0.1:${this.port}`
  }

  get pid(): number | undefined {
    return this.proc?.running ? this.proc.pid : undefined
  }

  static async start(opts: RedisServerOptions = {}): Promise<RedisServer> {
    service('BALLOT_REDIS_SERVER')
    const [port] = await freePorts(1)
    const r = new RedisServer(port as number, tempDir('redis'), opts)
    try {
      if (opts.tls) r.makeCerts()
      await r.start()
    } catch (err) {
      await r.close()
      throw err
    }
    return r
  }

  private makeCerts(): void {
    const d = this.dir
    const run = (args: string[]) => {
      const r = spawnSync('openssl', args, { cwd: d, encoding: 'utf8' })
      if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`)
    }
    run([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '1',
      '-subj',
      '/CN=ballot test CA',
    ])
    run([
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
      '-subj',
      '/CN=localhost',
    ])
    writeFileSync(join(d, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n')
    run([
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.crt',
      '-days',
      '1',
      '-extfile',
      'ext.cnf',
    ])
    this.caFile = join(d, 'ca.crt')
  }

  private args(): string[] {
    const o = this.opts
    const a = [
      '--bind',
      '127.0.0.1',
      '--dir',
      this.dir,
      '--save',
      o.persistent ? '3600 1' : '',
      '--appendonly',
      'no',
      '--enable-debug-command',
      'local',
      '--loglevel',
      'warning',
    ]
    if (o.tls)
      a.push(
        '--port',
        '0',
        '--tls-port',
        String(this.port),
        '--tls-cert-file',
        join(this.dir, 'server.crt'),
        '--tls-key-file',
        join(this.dir, 'server.key'),
        '--tls-ca-cert-file',
        join(this.dir, 'ca.crt'),
        '--tls-auth-clients',
        'no',
      )
    else a.push('--port', String(this.port))
    if (o.persistent) a.push('--dbfilename', 'dump.rdb')
    if (o.password) a.push('--requirepass', o.password)
    if (o.notify) a.push('--notify-keyspace-events', o.notify)
    if (o.replicaOf) a.push('--replicaof', '127.0.0.1', String(o.replicaOf))
    return a
  }

  /** Starts (again) on the same port and directory; resolves once PING answers. */
  async start(): Promise<void> {
    if (this.proc?.running) throw new Error('redis is already running')
    const proc = new OwnedProcess('redis-server', service('BALLOT_REDIS_SERVER'), this.args())
    this.proc = proc
    const ca = this.opts.tls ? readFileSync(this.caFile, 'utf8') : undefined
    const auth = this.opts.password ? `AUTH ${this.opts.password}\r\nPING` : 'PING'
    await waitUntil(
      `redis-server on port ${this.port}`,
      async () => {
        if (!proc.running) throw new Error(`redis-server exited (${proc.exitCode}):\n${proc.tail()}`)
        return (await rawCommand(this.port, auth, { tlsCa: ca })).includes('+PONG')
      },
      20_000,
      10,
    )
  }

  /** One command through redis-cli (TLS and password as configured); its output. */
  cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
    const base = ['-h', '127.0.0.1', '-p', String(this.port)]
    if (this.opts.tls) base.push('--tls', '--cacert', this.caFile)
    if (this.opts.password) base.push('--no-auth-warning', '-a', this.opts.password)
    const r = spawnSync('redis-cli', [...base, ...args], { encoding: 'utf8', timeout: 10_000 })
    return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' }
  }

  /** `DEBUG SLEEP seconds` on its own connection: the server is frozen meanwhile (not awaited here). */
  debugSleep(seconds: number): OwnedProcess {
    const base = ['-h', '127.0.0.1', '-p', String(this.port)]
    if (this.opts.password) base.push('--no-auth-warning', '-a', this.opts.password)
    return new OwnedProcess('redis-cli debug sleep', 'redis-cli', [
      ...base,
      'DEBUG',
      'SLEEP',
      String(seconds),
    ])
  }

  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.proc?.stop(signal)
  }

  async close(): Promise<void> {
    await this.stop()
    removeTempDir(this.dir)
  }
}

/** A master, one replica and one Sentinel watching them (quorum 1, fast failover settings). */
export class RedisSentinelGroup {
  private constructor(
    readonly master: RedisServer,
    readonly replica: RedisServer,
    readonly sentinelPort: number,
    private readonly sentinel: OwnedProcess,
    private readonly dir: string,
  ) {}

  /** The Sentinel, as host:port. */
  get sentinelEndpoint(): string {
    return `127.0.0.1:${this.sentinelPort}`
  }

  static async start(masterName = 'mymaster'): Promise<RedisSentinelGroup> {
    const master = await RedisServer.start()
    const replica = await RedisServer.start({ replicaOf: master.port })
    const dir = tempDir('sentinel')
    const [port] = (await freePorts(1)) as [number]
    const conf = join(dir, 'sentinel.conf')
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${masterName} 127.0.0.1 ${master.port} 1`,
        `sentinel down-after-milliseconds ${masterName} 1000`,
        `sentinel failover-timeout ${masterName} 5000`,
        `sentinel parallel-syncs ${masterName} 1`,
        '',
      ].join('\n'),
    )
    const proc = new OwnedProcess('redis-sentinel', service('BALLOT_REDIS_SERVER'), [conf, '--sentinel'])
    const group = new RedisSentinelGroup(master, replica, port, proc, dir)
    try {
      await waitUntil('the replica to sync', async () =>
        (await rawCommand(replica.port, 'INFO replication')).includes('master_link_status:up'),
      )
      await waitUntil('the sentinel to see the replica', async () =>
        /num-slaves\r\n:?1|slaves\r\n1/.test(
          await rawCommand(port, `SENTINEL master ${masterName}`).then((t) => t.replace(/\$\d+\r\n/g, '')),
        ),
      )
    } catch (err) {
      await group.close()
      throw err
    }
    return group
  }

  /** The master's port as the Sentinel names it now. */
  async masterPort(masterName = 'mymaster'): Promise<number> {
    const t = await rawCommand(this.sentinelPort, `SENTINEL get-master-addr-by-name ${masterName}`)
    const parts = t.split('\r\n').filter((l) => l && !l.startsWith('*') && !l.startsWith('$'))
    return Number(parts[1])
  }

  async close(): Promise<void> {
    await this.sentinel.stop('SIGKILL')
    await this.master.close()
    await this.replica.close()
    removeTempDir(this.dir)
  }
}

/**
 * A loopback TCP proxy that can turn into a black hole: `blackhole()` keeps every connection open but
 * drops every byte both ways (requests hang, nothing closes), as a network partition looks to a client.
 */
export class BlackholeProxy {
  private holed = false
  private readonly sockets = new Set<net.Socket>()
  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<BlackholeProxy> {
    let proxy: BlackholeProxy | undefined
    const server = net.createServer((client) => {
      const upstream = net.connect({ host: '127.0.0.1', port: targetPort })
      for (const [from, to] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        proxy?.sockets.add(from)
        from.on('data', (chunk) => {
          if (!proxy?.holed) to.write(chunk)
        })
        from.on('error', () => to.destroy())
        from.on('close', () => {
          proxy?.sockets.delete(from)
          to.destroy()
        })
      }
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    proxy = new BlackholeProxy(server, (server.address() as net.AddressInfo).port)
    return proxy
  }

  get endpoint(): string {
    return `127.0.0.1:${this.port}`
  }

  blackhole(): void {
    this.holed = true
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((r) => this.server.close(() => r()))
  }
}
