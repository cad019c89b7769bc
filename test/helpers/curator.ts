/**
 * Curator's own LeaderLatch as a participant in a ballot ZooKeeper election: the Java program in
 * test/fixtures/CuratorParticipant.java, compiled here (once per test process) with `javac -cp` against
 * Debian's Curator jars into a temporary directory, and run as a child process stopped by PID.
 */
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { OwnedProcess, service, tempDir, waitUntil } from './services.js'
import { NETTY_JARS } from './zookeeper.js'

/** PEM files for a Curator participant that reaches ZooKeeper over TLS (its secureClientPort). */
export interface CuratorTls {
  ca: string
  cert: string
  key: string
}

/**
 * The JVM flags that make ZooKeeper's own client (under Curator) speak TLS through Netty, as ZooKeeper's
 * admin guide sets them: PEM trust and key stores (the key store holds key and certificate in one file).
 */
function tlsFlags(tls: CuratorTls): string[] {
  const keyStore = join(tempDir('curator-tls'), 'client.pem')
  writeFileSync(keyStore, `${readFileSync(tls.key, 'utf8')}\n${readFileSync(tls.cert, 'utf8')}`, {
    mode: 0o600,
  })
  return [
    '-Dzookeeper.client.secure=true',
    '-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty',
    `-Dzookeeper.ssl.keyStore.location=${keyStore}`,
    '-Dzookeeper.ssl.keyStore.type=PEM',
    `-Dzookeeper.ssl.trustStore.location=${tls.ca}`,
    '-Dzookeeper.ssl.trustStore.type=PEM',
  ]
}

const source = fileURLToPath(new URL('../fixtures/CuratorParticipant.java', import.meta.url))
let compiled: Promise<string> | undefined

/** Compiles the participant (once) and returns the directory holding its class. */
export function compileCuratorParticipant(): Promise<string> {
  compiled ??= (async () => {
    const out = tempDir('curator-classes')
    await promisify(execFile)(service('BALLOT_JAVAC'), [
      '-nowarn',
      '-cp',
      service('BALLOT_CURATOR_CP'),
      '-d',
      out,
      source,
    ])
    return out
  })()
  return compiled
}

export class CuratorParticipant {
  readonly lines: string[] = []
  private buffer = ''

  private constructor(readonly proc: OwnedProcess) {
    proc.child.stdout?.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString()
      let nl = this.buffer.indexOf('\n')
      while (nl >= 0) {
        this.lines.push(this.buffer.slice(0, nl))
        this.buffer = this.buffer.slice(nl + 1)
        nl = this.buffer.indexOf('\n')
      }
    })
  }

  /**
   * Starts a participant with `id` in the latch at `path`; resolves once its node exists. With `tls`,
   * `connect` must be the server's TLS port.
   */
  static async start(
    connect: string,
    path: string,
    id: string,
    sessionTimeoutMs = 4000,
    tls?: CuratorTls,
  ): Promise<CuratorParticipant> {
    const classes = await compileCuratorParticipant()
    const proc = new OwnedProcess(
      `curator ${id}`,
      service('BALLOT_JAVA'),
      [
        '-Xmx128m',
        '-XX:+UseSerialGC',
        '-XX:TieredStopAtLevel=1',
        '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
        ...(tls ? tlsFlags(tls) : []),
        '-cp',
        [classes, service('BALLOT_CURATOR_CP'), ...(tls ? NETTY_JARS : [])].join(':'),
        'CuratorParticipant',
        connect,
        path,
        id,
        String(sessionTimeoutMs),
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    )
    const participant = new CuratorParticipant(proc)
    try {
      await participant.waitLine(/^node /, 30_000)
    } catch (err) {
      await proc.stop('SIGKILL')
      throw err
    }
    return participant
  }

  /** The latch node path Curator created. */
  get node(): string {
    return this.lines.find((l) => l.startsWith('node '))!.slice(5)
  }

  /** Whether the last leadership line says `leader`. */
  get isLeader(): boolean {
    const last = this.lines.filter((l) => l === 'leader' || l === 'not leader').at(-1)
    return last === 'leader'
  }

  async waitLine(pattern: RegExp, timeoutMs = 15_000, from = 0): Promise<string> {
    return waitUntil(
      `curator line ${pattern} (lines: ${JSON.stringify(this.lines)}; output: ${this.proc.tail(5)})`,
      () => {
        if (!this.proc.running && !this.lines.slice(from).some((l) => pattern.test(l)))
          throw new Error(`curator participant exited (${this.proc.exitCode}):\n${this.proc.tail()}`)
        return this.lines.slice(from).find((l) => pattern.test(l))
      },
      timeoutMs,
    )
  }

  /** Asks Curator for its view of the line: ids in latch order. */
  async participants(): Promise<string[]> {
    const from = this.lines.length
    this.proc.child.stdin?.write('participants\n')
    const line = await this.waitLine(/^participants /, 10_000, from)
    return line.slice('participants '.length).split(',').filter(Boolean)
  }

  /** Closes stdin: the participant closes its latch (deleting its node) and exits 0. */
  async closeStdin(): Promise<number | null | undefined> {
    this.proc.child.stdin?.end()
    await this.proc.waitExit()
    return this.proc.exitCode
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.proc.stop(signal)
  }
}
