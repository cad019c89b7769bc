/**
 * A standalone ZooKeeper 3.8 (Debian's jars) on a free loopback port with a temporary data directory,
 * ready when it answers `ruok` with `imok` and
 * `srvr` shows it serving. `stop()` then `start()` again reuses the same port and data
 * (sessions survive a restart: ZooKeeper restores them from its snapshot); `close()` stops it and
 * removes the directory.
 *
 * With `tls`, it also serves TLS on a second port (`secureClientPort`, Netty's connection factory, PEM
 * key and trust stores); the plain port stays for the readiness check's four-letter words.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { freePorts, OwnedProcess, portOpen, removeTempDir, service, tempDir, waitUntil } from './services.js'

/** Sends a four-letter word and returns the whole answer ('' when the server cannot be reached). */
export function fourLetter(port: number, word: string): Promise<string> {
  return new Promise((resolve) => {
    let out = ''
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(word))
    s.setTimeout(2000, () => s.destroy())
    s.on('data', (b) => {
      out += b.toString()
    })
    s.on('close', () => resolve(out))
    s.on('error', () => resolve(''))
  })
}

export interface ZooKeeperOptions {
  /** tickTime in ms (the minimum session timeout is 2 × tickTime, the maximum 20 ×). Default 200. */
  tickTimeMs?: number
  /** Also serve TLS on `securePort`: the server's certificate and key files, and the CA its clients' certificates must come from. */
  tls?: {
    ca: string
    cert: string
    key: string
    /** Ask every client for a certificate from `ca` (`ssl.clientAuth=need`). Default false (`none`). */
    clientAuth?: boolean
  }
}

/** Netty (for the TLS connection factories of server and client) beside ZooKeeper's own jars, from Debian's /usr/share/java. */
export const NETTY_JARS = [
  'netty-handler',
  'netty-common',
  'netty-buffer',
  'netty-transport',
  'netty-codec',
  'netty-resolver',
  'netty-transport-native-epoll',
  'netty-transport-native-unix-common',
].map((j) => `/usr/share/java/${j}.jar`)

export class ZooKeeperServer {
  private proc: OwnedProcess | undefined
  private constructor(
    readonly port: number,
    readonly dir: string,
    readonly tickTimeMs: number,
    /** The TLS port (0 without `tls`). */
    readonly securePort: number,
    private readonly tls: ZooKeeperOptions['tls'],
  ) {}

  /** `127.0.0.1:securePort`, the connection string for TLS clients. */
  get secureConnectString(): string {
    return `127.0.0.1:${this.securePort}`
  }

  /** `127.0.0.1:port`, the connection string for clients. */
  get connectString(): string {
    return `127.0.0.1:${this.port}`
  }

  static async start(opts: ZooKeeperOptions = {}): Promise<ZooKeeperServer> {
    // Check the binaries before making anything, so a missing install fails with its own message.
    service('BALLOT_JAVA')
    service('BALLOT_ZOOKEEPER_CP')
    const [port, securePort] = await freePorts(opts.tls ? 2 : 1)
    const zk = new ZooKeeperServer(port!, tempDir('zk'), opts.tickTimeMs ?? 200, securePort ?? 0, opts.tls)
    try {
      await zk.start()
    } catch (err) {
      await zk.close()
      throw err
    }
    return zk
  }

  /** Starts (again) on the same port and data directory; resolves once it serves clients. */
  async start(): Promise<void> {
    if (this.proc?.running) throw new Error('zookeeper is already running')
    const cfg = join(this.dir, 'zoo.cfg')
    const tlsLines: string[] = []
    if (this.tls) {
      // ZooKeeper's PEM key store takes the key and the certificate in one file.
      const keyStore = join(this.dir, 'server.pem')
      writeFileSync(
        keyStore,
        `${readFileSync(this.tls.key, 'utf8')}\n${readFileSync(this.tls.cert, 'utf8')}`,
        {
          mode: 0o600,
        },
      )
      tlsLines.push(
        `secureClientPort=${this.securePort}`,
        'secureClientPortAddress=127.0.0.1',
        'serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory',
        `ssl.keyStore.location=${keyStore}`,
        'ssl.keyStore.type=PEM',
        `ssl.trustStore.location=${this.tls.ca}`,
        'ssl.trustStore.type=PEM',
        `ssl.clientAuth=${this.tls.clientAuth ? 'need' : 'none'}`,
      )
    }
    writeFileSync(
      cfg,
      [
        `tickTime=${this.tickTimeMs}`,
        `dataDir=${join(this.dir, 'data')}`,
        `clientPort=${this.port}`,
        'clientPortAddress=127.0.0.1',
        'admin.enableServer=false',
        '4lw.commands.whitelist=ruok,srvr,stat,cons,wchc,wchp',
        'maxClientCnxns=0',
        ...tlsLines,
        '',
      ].join('\n'),
    )
    const proc = new OwnedProcess(
      'zookeeper',
      service('BALLOT_JAVA'),
      [
        '-Xmx256m',
        '-XX:+UseSerialGC',
        '-XX:TieredStopAtLevel=1',
        `-Dzookeeper.log.dir=${this.dir}`,
        '-cp',
        [service('BALLOT_ZOOKEEPER_CP'), ...(this.tls ? NETTY_JARS : [])].join(':'),
        'org.apache.zookeeper.server.ZooKeeperServerMain',
        cfg,
      ],
      { cwd: this.dir },
    )
    this.proc = proc
    await waitUntil(
      `zookeeper on port ${this.port} to answer ruok`,
      async () => {
        if (!proc.running) throw new Error(`zookeeper exited (${proc.exitCode}):\n${proc.tail()}`)
        // `ruok` answers `imok` as soon as the port is open; `srvr` names the mode once it serves.
        return (
          (await fourLetter(this.port, 'ruok')) === 'imok' &&
          /Mode: /.test(await fourLetter(this.port, 'srvr')) &&
          (!this.tls || (await portOpen(this.securePort)))
        )
      },
      30_000,
      50,
    )
  }

  get pid(): number | undefined {
    return this.proc?.running ? this.proc.pid : undefined
  }

  /** Stops the server by PID (SIGKILL by default: a crash; 'SIGTERM' for a clean stop). */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.proc?.stop(signal)
  }

  async close(): Promise<void> {
    await this.stop()
    removeTempDir(this.dir)
  }
}
