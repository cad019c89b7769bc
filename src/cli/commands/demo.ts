/**
 * `ballot demo`: the README's main job. A local cluster of 5 `ballot run` processes on loopback (free
 * ports, no external service), each with its HTTP API; prints who leads as it changes. Ctrl-C or
 * SIGTERM stops every process it started, by PID.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import net from 'node:net'
import { type Command, Option } from 'commander'
import { InvalidOptionsError } from '../../errors.js'
import { votersFlag } from './sim.js'

async function freePort(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))
  const port = (s.address() as net.AddressInfo).port
  await new Promise((r) => s.close(r))
  return port
}

interface DemoNode {
  id: string
  http: string
  child: ChildProcess
  seen: string
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('Start a local 5-node raft cluster on loopback and show who leads, live')
    .option('--voters <n>', 'how many nodes (1 to 9)', '5')
    .addOption(new Option('--nodes <n>', 'deprecated: use --voters').hideHelp())
    .option('--timing <profile>', 'default or fast', 'default')
    .action(async (flags: { voters: string; nodes?: string; timing: string }) => {
      const n = votersFlag(flags, 9)
      if (!['default', 'fast'].includes(flags.timing))
        throw new InvalidOptionsError(
          '--timing',
          `must be one of "default", "fast", got ${JSON.stringify(flags.timing)}`,
        )
      const cluster = await Promise.all(
        Array.from({ length: n }, async (_, i) => ({
          id: `n${i + 1}`,
          port: await freePort(),
          http: await freePort(),
        })),
      )
      const list = cluster.map((c) => `${c.id}=127.0.0.1:${c.port}`).join(',')
      const nodes: DemoNode[] = cluster.map((c) => ({
        id: c.id,
        http: `127.0.0.1:${c.http}`,
        seen: 'starting',
        // This very program again (the bundle, or tsc's output under a loader): argv[1] with the same
        // node flags, so the demo works however ballot was started.
        child: spawn(
          process.execPath,
          [
            ...process.execArgv,
            process.argv[1] as string,
            'run',
            '--id',
            c.id,
            '--nodes',
            list,
            '--http',
            `127.0.0.1:${c.http}`,
            '--timing',
            flags.timing,
            '--log-format',
            'json',
            '--log-level',
            'warn',
          ],
          { stdio: ['ignore', 'ignore', 'inherit'] },
        ),
      }))
      console.log(
        `ballot demo: ${n} raft nodes on loopback (pids ${nodes.map((d) => d.child.pid).join(' ')})`,
      )
      for (const d of nodes)
        console.log(
          `  ${d.id}  cluster 127.0.0.1:${cluster.find((c) => c.id === d.id)?.port}  http://${d.http}/leader`,
        )
      console.log('Ctrl-C stops them all. Try: kill -9 the leader pid, and watch the next one take over.')

      let stopping = false
      const stop = async () => {
        if (stopping) return
        stopping = true
        clearInterval(poll)
        await Promise.all(
          nodes.map(
            (d) =>
              new Promise<void>((resolve) => {
                if (d.child.exitCode !== null || d.child.signalCode !== null) return resolve()
                d.child.once('exit', () => resolve())
                d.child.kill('SIGTERM')
                setTimeout(() => d.child.kill('SIGKILL'), 3000).unref()
              }),
          ),
        )
        console.log('ballot demo: stopped every node')
        process.exit(0)
      }
      process.on('SIGINT', () => void stop())
      process.on('SIGTERM', () => void stop())

      let last = ''
      const poll = setInterval(async () => {
        await Promise.all(
          nodes.map(async (d) => {
            if (d.child.exitCode !== null || d.child.signalCode !== null) {
              d.seen = 'down'
              return
            }
            try {
              const res = await fetch(`http://${d.http}/leader`, {
                headers: { Accept: 'application/json' },
                signal: AbortSignal.timeout(500),
              })
              const body = (await res.json()) as { id?: string; token?: string }
              d.seen = res.ok ? `${body.id}@${body.token}` : 'no leader'
            } catch {
              d.seen = 'unreachable'
            }
          }),
        )
        const line = nodes.map((d) => `${d.id}→${d.seen}`).join('  ')
        if (line !== last && !stopping) {
          last = line
          const agreed = new Set(nodes.filter((d) => d.seen !== 'down').map((d) => d.seen))
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
