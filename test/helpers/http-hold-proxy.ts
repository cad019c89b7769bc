/**
 * A loopback HTTP proxy in front of a store's HTTP API that can hold back one chosen request (as a slow
 * network would) until the test lets it through: `hold(match)` arms it, the first request that `match`
 * accepts is kept, unforwarded, until `release()`; every other request goes straight through. Used to land
 * a request at the store *after* requests the client sent later (a late, or retried, leave).
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { waitUntil } from './services.js'

/** What a hold matches on: the request's method and path with its query string. */
export type RequestMatch = (method: string, url: string) => boolean

export class HttpHoldProxy {
  /** Every request seen, in arrival order (method and URL). */
  readonly seen: Array<{ method: string; url: string }> = []
  private armed: RequestMatch | undefined
  private held: { method: string; url: string; go: () => void } | undefined

  private constructor(
    private readonly server: http.Server,
    readonly port: number,
  ) {}

  static async start(target: string): Promise<HttpHoldProxy> {
    const to = new URL(target)
    let proxy: HttpHoldProxy | undefined
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const forward = () => {
          const up = http.request(
            {
              host: to.hostname,
              port: to.port,
              method: req.method,
              path: req.url,
              headers: { ...req.headers, host: to.host },
            },
            (upRes) => {
              res.writeHead(upRes.statusCode ?? 502, upRes.headers)
              upRes.pipe(res)
            },
          )
          up.on('error', () => res.destroy())
          // A client that gives up (a cancelled blocking query) ends its request upstream too: abandoned
          // long polls would pile up connections at the store (Consul allows 200 per client address).
          res.on('close', () => {
            if (!res.writableFinished) up.destroy()
          })
          up.end(Buffer.concat(chunks))
        }
        const p = proxy!
        const method = req.method ?? 'GET'
        const url = req.url ?? '/'
        p.seen.push({ method, url })
        if (p.armed && !p.held && p.armed(method, url)) {
          p.armed = undefined
          p.held = { method, url, go: forward }
        } else forward()
      })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve())
    })
    proxy = new HttpHoldProxy(server, (server.address() as AddressInfo).port)
    return proxy
  }

  /** `http://127.0.0.1:port` */
  get address(): string {
    return `http://127.0.0.1:${this.port}`
  }

  /** Holds back the next request `match` accepts. */
  hold(match: RequestMatch): void {
    this.armed = match
  }

  /** Waits until a request is held; returns its method and URL. */
  async waitHeld(timeoutMs = 10_000): Promise<{ method: string; url: string }> {
    return waitUntil(
      'a request to be held',
      () => this.held && { method: this.held.method, url: this.held.url },
      timeoutMs,
    )
  }

  /** Lets the held request through (to the store, now). */
  release(): void {
    const h = this.held
    this.held = undefined
    this.armed = undefined
    h?.go()
  }

  async close(): Promise<void> {
    this.release()
    this.server.closeAllConnections()
    await new Promise<void>((r) => this.server.close(() => r()))
  }
}
