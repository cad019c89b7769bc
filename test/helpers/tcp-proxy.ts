/**
 * A loopback TCP proxy in front of a server, to cut one client off without touching the server:
 * `cut()` closes every connection through it and closes each new one at once (the client sees its
 * connection drop and its reconnects fail); `heal()` forwards again. Used to let a store session expire
 * at the server while the client lives.
 */
import net from 'node:net'

export class TcpProxy {
  private readonly sockets = new Set<net.Socket>()
  private cutOff = false

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    readonly targetPort: number,
  ) {}

  static async start(targetPort: number): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined
    const server = net.createServer((client) => proxy!.accept(client))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve())
    })
    proxy = new TcpProxy(server, (server.address() as net.AddressInfo).port, targetPort)
    return proxy
  }

  get address(): string {
    return `127.0.0.1:${this.port}`
  }

  private accept(client: net.Socket): void {
    if (this.cutOff) {
      client.destroy()
      return
    }
    const upstream = net.connect({ host: '127.0.0.1', port: this.targetPort })
    for (const s of [client, upstream]) {
      this.sockets.add(s)
      s.on('close', () => this.sockets.delete(s))
      s.on('error', () => {
        client.destroy()
        upstream.destroy()
      })
    }
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
    client.pipe(upstream)
    upstream.pipe(client)
  }

  cut(): void {
    this.cutOff = true
    for (const s of this.sockets) s.destroy()
  }

  heal(): void {
    this.cutOff = false
  }

  async close(): Promise<void> {
    this.cut()
    await new Promise<void>((r) => this.server.close(() => r()))
  }
}
