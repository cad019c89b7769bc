/**
 * A `consul agent -dev` (or, `persistent`, a one-server cluster with its state on disk; optionally with
 * ACLs on) (Consul 1.8.7, from Debian bullseye; see scripts/install-services.sh) with every
 * address on 127.0.0.1 and every port free, a temporary data/config directory, no update checks. Ready
 * once the HTTP API names a raft leader. `stop()` then `start()` reuses the ports; a dev agent keeps its
 * state in memory, so a restart loses every session and key (which is how the tests lose a session).
 * Also runs `consul lock` against it.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before } from 'node:test'
import { freePorts, OwnedProcess, removeTempDir, service, tempDir, waitUntil } from './services.js'

export interface ConsulAgentOptions {
  /**
   * A one-server cluster with its state on disk (`-server -bootstrap-expect 1 -data-dir`) instead of
   * `-dev`: a restart keeps every session, key and index, as a production server's does.
   */
  persistent?: boolean
  /** ACLs on, default policy deny, with this master (management) token. */
  aclMasterToken?: string
  /**
   * The HTTPS API too (files, e.g. a TestCa's), on its own port (`httpsAddress`); the plain HTTP port
   * stays for the harness. `verifyClients`: the HTTPS API asks for a client certificate from `ca`.
   */
  tls?: { ca: string; cert: string; key: string; verifyClients?: boolean }
}

export class ConsulAgent {
  private proc: OwnedProcess | undefined
  private constructor(
    readonly dir: string,
    readonly ports: {
      http: number
      https: number
      dns: number
      serfLan: number
      serfWan: number
      server: number
    },
    readonly opts: ConsulAgentOptions,
  ) {}

  /** `http://127.0.0.1:port` */
  get address(): string {
    return `http://127.0.0.1:${this.ports.http}`
  }

  /** `https://127.0.0.1:port` (only with the `tls` option). */
  get httpsAddress(): string {
    return `https://127.0.0.1:${this.ports.https}`
  }

  static async start(opts: ConsulAgentOptions = {}): Promise<ConsulAgent> {
    service('BALLOT_CONSUL')
    const [http, https, dns, serfLan, serfWan, server] = (await freePorts(6)) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ]
    const agent = new ConsulAgent(tempDir('consul'), { http, https, dns, serfLan, serfWan, server }, opts)
    try {
      await agent.start()
    } catch (err) {
      await agent.close()
      throw err
    }
    return agent
  }

  async start(): Promise<void> {
    if (this.proc?.running) throw new Error('consul is already running')
    const config = join(this.dir, 'config.json')
    writeFileSync(
      config,
      JSON.stringify({
        bind_addr: '127.0.0.1',
        client_addr: '127.0.0.1',
        advertise_addr: '127.0.0.1',
        disable_update_check: true,
        log_level: 'warn',
        // Raft at full speed (a dev agent's setting), so a restarted server elects itself in ~1 s.
        performance: { raft_multiplier: 1 },
        ...(this.opts.aclMasterToken
          ? {
              primary_datacenter: 'dc1',
              acl: {
                enabled: true,
                default_policy: 'deny',
                enable_token_persistence: false,
                tokens: { master: this.opts.aclMasterToken, agent: this.opts.aclMasterToken },
              },
            }
          : {}),
        ...(this.opts.tls
          ? {
              ca_file: this.opts.tls.ca,
              cert_file: this.opts.tls.cert,
              key_file: this.opts.tls.key,
              verify_incoming_https: this.opts.tls.verifyClients ?? false,
            }
          : {}),
        ports: {
          http: this.ports.http,
          https: this.opts.tls ? this.ports.https : -1,
          grpc: -1,
          dns: this.ports.dns,
          serf_lan: this.ports.serfLan,
          serf_wan: this.ports.serfWan,
          server: this.ports.server,
        },
      }),
    )
    const proc = new OwnedProcess(
      'consul',
      service('BALLOT_CONSUL'),
      [
        'agent',
        ...(this.opts.persistent
          ? ['-server', '-bootstrap-expect=1', `-data-dir=${join(this.dir, 'data')}`]
          : ['-dev']),
        '-node',
        'ballot-test',
        `-config-file=${config}`,
      ],
      { cwd: this.dir, env: { ...process.env, CHECKPOINT_DISABLE: '1' } },
    )
    this.proc = proc
    await waitUntil(
      `consul on port ${this.ports.http} to elect a leader`,
      async () => {
        if (!proc.running) throw new Error(`consul exited (${proc.exitCode}):\n${proc.tail()}`)
        try {
          const res = await fetch(`${this.address}/v1/status/leader`, { signal: AbortSignal.timeout(1000) })
          const leader = (await res.json()) as string
          if (!res.ok || leader === '') return false
          // Sessions need the node registered with its serfHealth check (a restarted server does it anew).
          const checks = await fetch(`${this.address}/v1/health/node/ballot-test`, {
            headers: this.opts.aclMasterToken ? { 'X-Consul-Token': this.opts.aclMasterToken } : {},
            signal: AbortSignal.timeout(1000),
          })
          const list = (await checks.json()) as Array<{ CheckID: string; Status: string }>
          return list.some((c) => c.CheckID === 'serfHealth' && c.Status === 'passing')
        } catch {
          return false
        }
      },
      30_000,
      25,
    )
  }

  get pid(): number | undefined {
    return this.proc?.running ? this.proc.pid : undefined
  }

  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.proc?.stop(signal)
  }

  async close(): Promise<void> {
    await this.stop()
    removeTempDir(this.dir)
  }

  /** Raw HTTP against the agent (for checks that must not go through the backend's client). */
  async http(method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
    const res = await fetch(`${this.address}${path}`, {
      method,
      body,
      headers: this.opts.aclMasterToken ? { 'X-Consul-Token': this.opts.aclMasterToken } : {},
      signal: AbortSignal.timeout(10_000),
    })
    return { status: res.status, text: await res.text() }
  }

  /**
   * `consul lock PREFIX SCRIPT` as a child process (consul lock runs SCRIPT through a shell itself;
   * ended by PID; SIGINT makes consul lock release the lock, destroy its session and delete the key).
   */
  lock(prefix: string, script: string, extra: string[] = []): OwnedProcess {
    return new OwnedProcess(
      'consul lock',
      service('BALLOT_CONSUL'),
      ['lock', `-http-addr=${this.address}`, ...extra, prefix, script],
      {
        env: {
          ...process.env,
          CHECKPOINT_DISABLE: '1',
          ...(this.opts.aclMasterToken ? { CONSUL_HTTP_TOKEN: this.opts.aclMasterToken } : {}),
        },
      },
    )
  }
}

/**
 * One dev agent for a whole test file: started before its first test; after the last, everything `own`ed
 * is closed (even when a test failed), then the agent.
 */
export function agentForFile(): {
  readonly agent: ConsulAgent
  own<T extends { close(): unknown }>(x: T): T
} {
  let agent: ConsulAgent | undefined
  const owned: Array<{ close(): unknown }> = []
  before(async () => {
    agent = await ConsulAgent.start()
  })
  after(async () => {
    await Promise.allSettled(owned.map(async (o) => o.close()))
    await agent?.close()
  })
  return {
    get agent() {
      if (!agent) throw new Error('the Consul agent is not started yet (use it inside a test)')
      return agent
    },
    own(x) {
      owned.push(x)
      return x
    },
  }
}
