/**
 * A real etcd for tests: free loopback ports, a temporary data directory, fast raft timings
 * (--heartbeat-interval 10 --election-timeout 100), started and stopped by PID. `stop()` and
 * `restart()` keep the ports and the data (the same cluster comes back); `close()` kills the server
 * and every `etcdctl` started through it, and removes the directory. A process exit handler does the
 * same as a last resort, so nothing is left behind even when a test fails or throws.
 *
 * etcd and etcdctl must be on PATH (Debian: etcd-server, etcd-client): a missing binary fails the test.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { get as httpsGet } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePorts, waitFor } from './raft-cluster.js'

const live = new Set<ChildProcess>()
const dirs = new Set<string>()
process.on('exit', () => {
  for (const c of live)
    if (c.exitCode === null && c.signalCode === null && c.pid) process.kill(c.pid, 'SIGKILL')
  for (const d of dirs) rmSync(d, { recursive: true, force: true, maxRetries: 5 })
})

export function requireBinary(name: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' })
  } catch {
    throw new Error(`${name} is not on PATH: install it (apt-get install etcd-server etcd-client)`)
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

/** A child process with its output collected, tracked so close() can end it. */
export class Tracked {
  stdout = ''
  stderr = ''
  readonly exit: Promise<void>
  constructor(readonly child: ChildProcess) {
    live.add(child)
    child.stdout?.on('data', (b: Buffer) => {
      this.stdout += b.toString()
    })
    child.stderr?.on('data', (b: Buffer) => {
      this.stderr += b.toString()
    })
    this.exit = exited(child).then(() => {
      live.delete(child)
    })
  }
  get pid(): number {
    return this.child.pid ?? -1
  }
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.running && this.child.pid) process.kill(this.child.pid, signal)
  }
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    this.kill(signal)
    await this.exit
  }
}

/** TLS for a test etcd's client URL: files (a TestCa's); `clientCertAuth` also asks clients for a certificate. */
export interface EtcdTls {
  ca: string
  cert: string
  key: string
  clientCertAuth?: boolean
}

/** GET /health over https, trusting the test CA (and presenting the server's certificate as a client). */
function httpsHealth(url: string, tls: EtcdTls): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpsGet(
      url,
      {
        ca: readFileSync(tls.ca),
        cert: readFileSync(tls.cert),
        key: readFileSync(tls.key),
        timeout: 500,
      },
      (res) => {
        let body = ''
        res.on('data', (d) => {
          body += d
        })
        res.on('end', () => resolve(res.statusCode === 200 && body.includes('"health":"true"')))
      },
    )
    req.on('error', () => resolve(false))
    req.on('timeout', () => req.destroy())
  })
}

export class EtcdServer {
  readonly dataDir: string
  private proc: Tracked | undefined
  private readonly children = new Set<Tracked>()

  private constructor(
    readonly clientPort: number,
    readonly peerPort: number,
    readonly tls?: EtcdTls,
  ) {
    this.dataDir = mkdtempSync(join(tmpdir(), 'ballot-etcd-'))
    dirs.add(this.dataDir)
  }

  /** Starts a one-member etcd on free loopback ports and waits until it is healthy. */
  static async start(opts: { tls?: EtcdTls } = {}): Promise<EtcdServer> {
    requireBinary('etcd')
    requireBinary('etcdctl')
    const [cp, pp] = await freePorts(2)
    const server = new EtcdServer(cp as number, pp as number, opts.tls)
    try {
      await server.restart()
    } catch (err) {
      await server.close()
      throw err
    }
    return server
  }

  /** host:port of the client URL. */
  get endpoint(): string {
    return `127.0.0.1:${this.clientPort}`
  }

  get url(): string {
    return `etcd://${this.endpoint}`
  }

  get pid(): number | undefined {
    return this.proc?.running ? this.proc.pid : undefined
  }

  /** (Re)starts the server on the same ports and data directory, and waits until it is healthy. */
  async restart(): Promise<void> {
    if (this.proc?.running) return
    const tls = this.tls
    const client = `${tls ? 'https' : 'http'}://127.0.0.1:${this.clientPort}`
    const peer = `http://127.0.0.1:${this.peerPort}`
    this.proc = new Tracked(
      spawn(
        'etcd',
        [
          '--name',
          'n',
          '--data-dir',
          this.dataDir,
          '--listen-client-urls',
          client,
          '--advertise-client-urls',
          client,
          '--listen-peer-urls',
          peer,
          '--initial-advertise-peer-urls',
          peer,
          '--initial-cluster',
          `n=${peer}`,
          '--initial-cluster-state',
          'new',
          '--heartbeat-interval',
          '10',
          '--election-timeout',
          '100',
          '--log-level',
          'error',
          ...(tls
            ? [
                '--cert-file',
                tls.cert,
                '--key-file',
                tls.key,
                ...(tls.clientCertAuth ? ['--client-cert-auth', '--trusted-ca-file', tls.ca] : []),
              ]
            : []),
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      ),
    )
    const proc = this.proc
    let healthy = false
    const probe = async () => {
      try {
        if (tls) {
          healthy = await httpsHealth(`${client}/health`, tls)
          return
        }
        const res = await fetch(`${client}/health`, { signal: AbortSignal.timeout(500) })
        healthy = res.ok && ((await res.json()) as { health?: string }).health === 'true'
      } catch {
        healthy = false
      }
    }
    await waitFor(
      `etcd on ${this.endpoint} to be healthy`,
      () => {
        if (!proc.running) throw new Error(`etcd exited: ${proc.stderr.slice(-2000)}`)
        void probe()
        return healthy
      },
      20_000,
    )
  }

  /** Stops the server (SIGKILL by default; SIGSTOP freezes it, `resume()` thaws it). */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.proc?.stop(signal)
  }

  freeze(): void {
    this.proc?.kill('SIGSTOP')
  }

  thaw(): void {
    this.proc?.kill('SIGCONT')
  }

  /** Runs `etcdctl --endpoints <this> ...args` to completion. */
  async etcdctl(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const t = this.spawnEtcdctl(...args)
    await t.exit
    return { code: t.child.exitCode, stdout: t.stdout, stderr: t.stderr }
  }

  /** Starts `etcdctl --endpoints <this> ...args` and returns at once; close() kills it if still running. */
  spawnEtcdctl(...args: string[]): Tracked {
    const t = new Tracked(
      spawn('etcdctl', ['--endpoints', this.endpoint, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ETCDCTL_API: '3' },
      }),
    )
    this.children.add(t)
    void t.exit.then(() => this.children.delete(t))
    return t
  }

  async close(): Promise<void> {
    await Promise.all([...this.children].map((c) => c.stop('SIGKILL')))
    if (this.proc) {
      this.proc.kill('SIGCONT')
      await this.proc.stop('SIGKILL')
    }
    rmSync(this.dataDir, { recursive: true, force: true })
    dirs.delete(this.dataDir)
  }
}
