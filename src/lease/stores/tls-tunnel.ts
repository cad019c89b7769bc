/**
 * A local TLS tunnel for a store client that speaks plain TCP only (node-zookeeper-client): for each
 * remote `host:port` a forwarder listens on 127.0.0.1 (a free port) and pipes every connection it
 * accepts to `tls.connect` to that host, verifying the server's certificate against the CA given (or
 * the system's roots) and its name, and presenting the client certificate when one is given. The plain
 * leg never leaves the loopback interface of this process's host.
 *
 * Errors are kept as one line per host (the last attempt's, cleared by a handshake that succeeds) and
 * announced to listeners, so a client that cannot connect can say why at once; no certificate or key
 * text ever reaches them.
 */
import { createServer, isIP, type Server, type Socket } from 'node:net'
import { type TLSSocket, connect as tlsConnect } from 'node:tls'

/** The checked TLS material (see checkStoreTls). */
export interface TunnelTls {
  /** CA certificate(s) to trust. Default: the system's roots. */
  ca?: Buffer
  /** Client certificate (chain). */
  cert?: Buffer
  /** Its private key. */
  key?: Buffer
}

/** One remote host behind a local forwarder. */
interface Forwarder {
  readonly host: string
  readonly port: number
  readonly server: Server
  readonly local: string
}

/** "host:port" or "[v6]:port" to its parts. */
function splitHostPort(hp: string): { host: string; port: number } {
  const at = hp.lastIndexOf(':')
  return { host: hp.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(hp.slice(at + 1)) }
}

/**
 * An error as one line, from its code and message (which never hold PEM text). OpenSSL's errors carry
 * their short `reason` ("sslv3 alert certificate unknown"), said instead of the library's long message;
 * an alert is the server refusing the handshake, most often the client certificate.
 */
function oneLine(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown; reason?: unknown }
  const message = typeof e.message === 'string' ? e.message : String(err)
  // A failed write during the handshake is a system error (EPROTO) with OpenSSL's text in its message.
  const reason =
    typeof e.reason === 'string' && e.reason ? e.reason : /SSL routines:[^:]*:([^:]+):/.exec(message)?.[1]
  let text: string
  if (reason) {
    text = /alert/.test(reason)
      ? `the server refused the handshake (${reason}): is the client certificate from a CA it trusts?`
      : reason
  } else text = message
  text = text.replace(/\s+/g, ' ').trim()
  return typeof e.code === 'string' && !text.includes(e.code) ? `${text} (${e.code})` : text
}

/** Forwarders from local plain TCP to remote TLS, one per host; `close()` stops them and their connections. */
export class TlsTunnel {
  private readonly sockets = new Set<Socket>()
  /**
   * Per remote host: why its last connection failed after TCP connected (a TLS failure: an untrusted or
   * misnamed certificate, a refused client certificate) and when (a sequence number); absent once a
   * handshake succeeds. A host that does not answer at all is not here: that may pass, so a client waits.
   */
  private readonly problems = new Map<string, { problem: string; seq: number }>()
  private seq = 0
  private readonly listeners = new Set<(problem: string) => void>()
  private lastError: string | undefined
  private closed = false

  private constructor(
    private readonly forwarders: Forwarder[],
    private readonly tls: TunnelTls,
  ) {}

  /**
   * Opens one forwarder per `host:port` in `hosts`, each on 127.0.0.1 at a free port. Resolves once all
   * listen; the returned tunnel's `locals` are their addresses, in the order of `hosts`.
   */
  static async open(hosts: readonly string[], tls: TunnelTls): Promise<TlsTunnel> {
    const tunnel = new TlsTunnel([], tls)
    try {
      for (const hp of hosts) tunnel.forwarders.push(await tunnel.listen(hp))
    } catch (err) {
      await tunnel.close()
      throw err
    }
    return tunnel
  }

  /** The local `127.0.0.1:port` addresses, one per remote host, in the order given to `open`. */
  get locals(): string[] {
    return this.forwarders.map((f) => f.local)
  }

  /** The last TLS or connection error seen on any host, as one line naming the host (or undefined). */
  get lastProblem(): string | undefined {
    return this.lastError
  }

  /** A point in the tunnel's history, for `allFailingSince`. */
  mark(): number {
    return this.seq
  }

  /**
   * The problems of every host, joined in one line, when a connection to each of them failed after
   * `mark` (undefined while any host has not failed since, or its last handshake succeeded): a client
   * trying the hosts in turn has then found none it can reach.
   */
  allFailingSince(mark: number): string | undefined {
    const recent = [...this.problems.values()].filter((p) => p.seq > mark)
    if (this.forwarders.length === 0 || recent.length < this.forwarders.length) return undefined
    return recent.map((p) => p.problem).join('; ')
  }

  /** Calls `listener` with each TLS failure (one line; not for a host that does not answer); returns the unsubscribe. */
  onProblem(listener: (problem: string) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Stops listening and ends every forwarded connection. */
  async close(): Promise<void> {
    this.closed = true
    this.listeners.clear()
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
    await Promise.all(
      this.forwarders.map((f) => new Promise<void>((resolve) => f.server.close(() => resolve()))),
    )
  }

  private listen(hp: string): Promise<Forwarder> {
    const { host, port } = splitHostPort(hp)
    const server = createServer((local) => this.forward(local, host, port))
    return new Promise<Forwarder>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject)
        // A listener alone keeps no process alive: the client's connections through it do, while open.
        server.unref()
        // A listening socket's later errors (none expected on loopback) must not crash the process.
        server.on('error', (err) => {
          this.lastError = `TLS tunnel to ${hp}: ${oneLine(err)}`
        })
        const addr = server.address()
        const localPort = typeof addr === 'object' && addr ? addr.port : 0
        resolve({ host, port, server, local: `127.0.0.1:${localPort}` })
      })
    })
  }

  /** Pipes one accepted local connection to a fresh TLS connection to `host:port`. */
  private forward(local: Socket, host: string, port: number): void {
    if (this.closed) {
      local.destroy()
      return
    }
    const remote: TLSSocket = tlsConnect({
      host,
      port,
      // SNI takes names only; for an IP address the certificate is checked against the IP itself.
      ...(isIP(host) ? {} : { servername: host }),
      ...(this.tls.ca ? { ca: this.tls.ca } : {}),
      ...(this.tls.cert ? { cert: this.tls.cert } : {}),
      ...(this.tls.key ? { key: this.tls.key } : {}),
      rejectUnauthorized: true,
    })
    this.sockets.add(local)
    this.sockets.add(remote)
    const where = isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`
    let ended = false
    let tcpConnected = false
    remote.once('connect', () => {
      tcpConnected = true
    })
    const end = (err?: unknown) => {
      if (err !== undefined && !this.closed) {
        const problem = `TLS to ${where}: ${oneLine(err)}`
        this.lastError = problem
        if (tcpConnected) {
          this.problems.set(where, { problem, seq: ++this.seq })
          for (const listener of [...this.listeners]) listener(problem)
        }
      }
      if (ended) return
      ended = true
      local.destroy()
      remote.destroy()
      this.sockets.delete(local)
      this.sockets.delete(remote)
    }
    remote.once('secureConnect', () => {
      this.problems.delete(where)
      if (this.problems.size === 0) this.lastError = undefined
    })
    local.setNoDelay(true)
    remote.setNoDelay(true)
    local.pipe(remote)
    remote.pipe(local)
    local.on('error', () => end())
    remote.on('error', (err) => end(err))
    local.on('close', () => end())
    remote.on('close', () => end())
  }
}
