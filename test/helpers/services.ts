/**
 * What every store-server harness shares: where the binaries are (the same variables and defaults as
 * scripts/services-env.sh, which scripts/install-services.sh prints), free loopback ports, temporary
 * directories, and child processes stopped by PID. Everything a harness starts is registered here and
 * ended on `process.on('exit')` too, so a failing test leaves no server, port or directory behind.
 *
 * A missing binary is an error (the test fails and names scripts/install-services.sh), never a skip.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process'
import { accessSync, constants, existsSync, mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const servicesDir = process.env.BALLOT_SERVICES_DIR ?? '/opt/ballot-services'
const javaDir = '/usr/share/java'
const zkJars = ['zookeeper.jar', 'zookeeper-jute.jar', 'slf4j-api.jar', 'slf4j-simple.jar']
const curatorJars = [
  'curator-recipes.jar',
  'curator-framework.jar',
  'curator-client.jar',
  'guava.jar',
  ...zkJars,
]

/** Binary locations; each can be overridden by the environment variable of the same name. */
export const SERVICES = {
  BALLOT_ETCD: '/usr/bin/etcd',
  BALLOT_ETCDCTL: '/usr/bin/etcdctl',
  BALLOT_REDIS_SERVER: '/usr/bin/redis-server',
  BALLOT_PG_BIN: '/usr/lib/postgresql/15/bin',
  BALLOT_PGBOUNCER: '/usr/sbin/pgbouncer',
  BALLOT_CONSUL: `${servicesDir}/consul/usr/bin/consul`,
  BALLOT_JAVA: '/usr/bin/java',
  BALLOT_JAVAC: '/usr/bin/javac',
  BALLOT_ZOOKEEPER_CP: zkJars.map((j) => `${javaDir}/${j}`).join(':'),
  BALLOT_CURATOR_CP: curatorJars.map((j) => `${javaDir}/${j}`).join(':'),
} as const

export type ServiceName = keyof typeof SERVICES

/** The path (or class path) of a service binary; throws, naming the install script, when absent. */
export function service(name: ServiceName): string {
  const value = process.env[name] ?? SERVICES[name]
  const paths = name.endsWith('_CP') ? value.split(':') : [value]
  for (const p of paths) {
    if (!existsSync(p))
      throw new Error(
        `${name}: ${p} is missing: run \`bash scripts/install-services.sh\` as root (or set ${name})`,
      )
  }
  if (!name.endsWith('_CP') && name !== 'BALLOT_PG_BIN') accessSync(value, constants.X_OK)
  return value
}

export { freePorts } from './raft-cluster.js'

/** True while something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port })
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Polls an async probe until it returns something other than undefined/false. */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  intervalMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(intervalMs)
  }
}

const liveChildren = new Set<ChildProcess>()
const liveDirs = new Set<string>()
let exitHook = false

function installExitHook(): void {
  if (exitHook) return
  exitHook = true
  process.on('exit', () => {
    for (const child of liveChildren) {
      try {
        if (child.pid) process.kill(child.pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true })
  })
}

/** A temporary directory, removed by `removeTempDir` or at exit. */
export function tempDir(prefix: string): string {
  installExitHook()
  const dir = mkdtempSync(join(tmpdir(), `ballot-${prefix}-`))
  liveDirs.add(dir)
  return dir
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
  liveDirs.delete(dir)
}

/** A child process the harness owns: its output is kept (for failure messages) and it is ended by PID. */
export class OwnedProcess {
  readonly child: ChildProcess
  output = ''
  exitCode: number | null | undefined = undefined
  private readonly exited: Promise<void>

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    options: SpawnOptions = {},
  ) {
    installExitHook()
    this.child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options })
    liveChildren.add(this.child)
    const keep = (chunk: Buffer) => {
      this.output += chunk.toString()
      if (this.output.length > 200_000) this.output = this.output.slice(-100_000)
    }
    this.child.stdout?.on('data', keep)
    this.child.stderr?.on('data', keep)
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : null)
        liveChildren.delete(this.child)
        resolve()
      })
      this.child.once('error', (err) => {
        this.output += `\nspawn error: ${err.message}`
        this.exitCode = -1
        liveChildren.delete(this.child)
        resolve()
      })
    })
  }

  get pid(): number {
    return this.child.pid ?? -1
  }

  get running(): boolean {
    return this.exitCode === undefined
  }

  waitExit(): Promise<void> {
    return this.exited
  }

  /** Sends `signal` to this PID; after `graceMs` without exit, SIGKILL. Resolves once it exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
    if (!this.running) return
    try {
      process.kill(this.pid, signal)
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      try {
        process.kill(this.pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }, graceMs)
    await this.exited
    clearTimeout(timer)
  }

  /** The last lines of its output, for error messages. */
  tail(lines = 20): string {
    return this.output.trimEnd().split('\n').slice(-lines).join('\n')
  }
}
