/**
 * `ballot demo`: the README's main job. A local cluster of 5 `ballot run` processes on loopback (free
 * ports, no external service), each with its HTTP API, and a dashboard for the whole cluster whose
 * address is printed first: it shows who leads, live, and has the controls to break the cluster (kill
 * -9, pause, restart a node, make the leader resign). The terminal prints who leads as it changes.
 * Ctrl-C or SIGTERM stops every process it started, by PID.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Command, Option } from 'commander'
import { InvalidOptionsError } from '../../errors.js'
import { DemoDashboard } from '../../server/dashboard/demo.js'
import { DemoCluster } from './demo-cluster.js'
import { votersFlag } from './sim.js'

async function freePort(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))
  const port = (s.address() as net.AddressInfo).port
  await new Promise((r) => s.close(r))
  return port
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('Start a local 5-node raft cluster on loopback, with a dashboard to watch and break it')
    .option('--voters <n>', 'how many nodes (1 to 9)', '5')
    .addOption(new Option('--nodes <n>', 'deprecated: use --voters').hideHelp())
    .option('--timing <profile>', 'default or fast', 'default')
    .option('--dashboard-port <port>', 'the dashboard on 127.0.0.1:<port> (0: any free port)', '0')
    .action(async (flags: { voters: string; nodes?: string; timing: string; dashboardPort: string }) => {
      const n = votersFlag(flags, 9)
      if (!['default', 'fast'].includes(flags.timing))
        throw new InvalidOptionsError(
          '--timing',
          `must be one of "default", "fast", got ${JSON.stringify(flags.timing)}`,
        )
      const dashboardPort = Number(flags.dashboardPort)
      if (!Number.isInteger(dashboardPort) || dashboardPort < 0 || dashboardPort > 65535)
        throw new InvalidOptionsError(
          '--dashboard-port',
          `must be a port number from 0 to 65535, got ${JSON.stringify(flags.dashboardPort)}`,
        )
      const members = await Promise.all(
        Array.from({ length: n }, async (_, i) => ({
          id: `n${i + 1}`,
          port: await freePort(),
          http: await freePort(),
        })),
      )
      const dir = mkdtempSync(join(tmpdir(), 'ballot-demo-'))
      // Two secrets, made fresh for each run: the nodes' HTTP token (only the demo uses it, to ask a
      // leader to resign) and the dashboard's key (the user's browser gets it through the address).
      const nodeToken = randomBytes(24).toString('base64url')
      const key = randomBytes(24).toString('base64url')
      let dashboard: DemoDashboard | undefined
      const cluster = new DemoCluster(members, {
        timing: flags.timing,
        dir,
        token: nodeToken,
        onChange: () => dashboard?.changed(),
      })
      dashboard = new DemoDashboard({ controls: cluster, key, algo: 'raft' })
      const address = await dashboard.listen('127.0.0.1', dashboardPort)
      cluster.startAll()
      dashboard.changed()

      console.log(`ballot demo: dashboard at http://${address}/#token=${key}`)
      console.log(
        `  ${n} raft nodes on loopback (pids ${cluster
          .nodes()
          .map((d) => d.pid)
          .join(' ')}); the address above carries the key to the dashboard's controls`,
      )
      for (const m of members)
        console.log(`  ${m.id}  cluster 127.0.0.1:${m.port}  http://127.0.0.1:${m.http}/leader`)
      console.log('Ctrl-C stops them all. Kill the leader (on the dashboard, or kill -9 its pid) and watch.')

      let stopping = false
      const stop = async () => {
        if (stopping) return
        stopping = true
        clearInterval(poll)
        await cluster.stop()
        await dashboard?.close()
        rmSync(dir, { recursive: true, force: true })
        console.log('ballot demo: stopped every node')
        process.exit(0)
      }
      process.on('SIGINT', () => void stop())
      process.on('SIGTERM', () => void stop())

      const seen = new Map<string, string>()
      let last = ''
      const poll = setInterval(async () => {
        await Promise.all(
          cluster.nodes().map(async (d) => {
            if (d.state !== 'running') {
              seen.set(d.id, d.state === 'paused' ? 'paused' : 'down')
              return
            }
            try {
              const res = await fetch(`http://${d.http}/leader`, {
                headers: { Accept: 'application/json' },
                signal: AbortSignal.timeout(500),
              })
              const body = (await res.json()) as { id?: string; token?: string }
              seen.set(d.id, res.ok ? `${body.id}@${body.token}` : 'no leader')
            } catch {
              seen.set(d.id, 'unreachable')
            }
          }),
        )
        const line = members.map((m) => `${m.id}→${seen.get(m.id) ?? 'starting'}`).join('  ')
        if (line !== last && !stopping) {
          last = line
          const agreed = new Set(
            [...seen.values()].filter((s) => s !== 'down' && s !== 'paused' && s !== 'unreachable'),
          )
          const leader = agreed.size === 1 ? [...agreed][0] : undefined
          const head = leader?.includes('@')
            ? `leader ${leader.replace('@', ' (token ')})`
            : 'no agreed leader'
          console.log(`${new Date().toISOString().slice(11, 23)}  ${head.padEnd(24)}  ${line}`)
        }
      }, 250)
      await new Promise(() => {})
    })
}
