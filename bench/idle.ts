/**
 * What an idle cluster costs: 5 `ballot run` processes (the built CLI, default timing, HTTP API on,
 * a data dir each), a leader agreed, then CPU (utime + stime from /proc/<pid>/stat) and RSS (VmRSS from
 * /proc/<pid>/status) of each node over a window in which nothing happens, and how often its event loop
 * woke (the main thread's voluntary context switches). Prints a table per node (CPU in ms of CPU per
 * second and as a percentage of one core, RSS in MB, wake-ups per second) and the same as JSON.
 *
 *   npm run build && node --import tsx bench/idle.ts [--nodes 5] [--seconds 60] [--timing default]
 *     [--settle-s 20] [--node-args='--flag ...']
 *     [--profile-dir DIR]   (each node also writes a --cpu-prof profile there; profiling costs CPU itself)
 *
 * CPU-seconds measure the work done, and so are less sensitive to other load on the machine than wall
 * times; RSS is read at the end of the window.
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { DaemonCluster, type DaemonProc } from '../test/helpers/daemon.js'
import { table } from './stats.js'

const { values: args } = parseArgs({
  options: {
    nodes: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '60' },
    timing: { type: 'string', default: 'default' },
    'profile-dir': { type: 'string' },
    'settle-s': { type: 'string', default: '20' },
    'node-args': { type: 'string', default: '' },
  },
})
const size = Number(args.nodes)
const seconds = Number(args.seconds)
const CLOCK_TICKS = 100 // USER_HZ on Linux

/** CPU time (user + system) a process has used, in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after "pid (comm) ".
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS
}

/**
 * Times the main thread went to sleep (its voluntary context switches): each is one wake-up of the event
 * loop, whose cost on a mostly idle machine is most of an idle node's CPU.
 */
function wakeUps(pid: number): number {
  const status = readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8')
  return Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN)
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN)
  return kb / 1024
}

let floor: ReturnType<typeof spawn> | undefined
const c = await DaemonCluster.create(size, { timing: args.timing as 'default' | 'fast' })
try {
  const profile = args['profile-dir']
  const nodeArgs = [
    ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : []),
    ...(args['node-args'] as string).split(' ').filter(Boolean),
  ]
  const procs: DaemonProc[] = c.members.map((m) => c.start(m.id, [], 'run', [], nodeArgs))
  const lead = await c.waitForAgreement(undefined, 60_000)
  // Let start-up work (JIT, first connections, and the memory reducer's full collections some 8 and 17 s
  // after start) settle before the window opens: this measures the steady state.
  await new Promise((r) => setTimeout(r, Number(args['settle-s']) * 1000))
  const sent = async () =>
    Promise.all(
      procs.map(async (p) => JSON.parse((await p.get('/status')).body).transport.messagesSent as number),
    )
  // The floor: a node process that does nothing but wake as often as a follower must (one heartbeat per
  // 100 ms at default timing). On a virtual machine whose idle CPUs sleep deeply, a wake-up costs far
  // more CPU than the work it does, and this row shows what the wake-ups alone cost here.
  floor = spawn(process.execPath, ['--max-opt=1', '-e', 'setInterval(() => {}, 100)'], {
    stdio: 'ignore',
  })
  const floorPid = floor.pid as number
  /** What the window is measured by: each process's CPU time and wake-ups so far. */
  const counters = (pid: number) => ({ cpu: cpuMs(pid), wakes: wakeUps(pid) })
  /** A process's use over the window, per second (CPU as ms and as a percentage of one core). */
  const usage = (pid: number, from: ReturnType<typeof counters>, elapsedS: number) => {
    const to = counters(pid)
    const msPerS = (to.cpu - from.cpu) / elapsedS
    return {
      cpuMsPerS: Math.round(msPerS * 100) / 100,
      cpuPercent: Math.round(msPerS * 10) / 100,
      rssMb: Math.round(rssMb(pid) * 10) / 10,
      wakeUpsPerS: Math.round((to.wakes - from.wakes) / elapsedS),
    }
  }
  const sentBefore = await sent()
  const floorBefore = counters(floorPid)
  const before = procs.map((p) => counters(p.pid))
  const t0 = performance.now()
  await new Promise((r) => setTimeout(r, seconds * 1000))
  const elapsedS = (performance.now() - t0) / 1000
  const used = procs.map((p, i) => usage(p.pid, before[i] as ReturnType<typeof counters>, elapsedS))
  const floorRow = {
    node: 'floor',
    role: 'node, a 100 ms timer',
    ...usage(floorPid, floorBefore, elapsedS),
    msgsSentPerS: 0,
  }
  floor.kill('SIGKILL')
  const sentAfter = await sent()
  const still = await c.agreed()
  const rows = procs.map((p, i) => ({
    node: p.name,
    role: p.name === lead.id ? 'leader' : 'follower',
    ...(used[i] as ReturnType<typeof usage>),
    msgsSentPerS: Math.round(((sentAfter[i] as number) - (sentBefore[i] as number)) / elapsedS),
  }))
  const mean = (k: 'cpuMsPerS' | 'rssMb' | 'wakeUpsPerS') =>
    Math.round((rows.reduce((a, r) => a + r[k], 0) / rows.length) * 100) / 100
  console.log(table([...rows, floorRow]))
  console.log(
    JSON.stringify({
      nodes: size,
      timing: args.timing,
      seconds: Math.round(elapsedS),
      sameLeader: still?.id === lead.id && still?.token === lead.token,
      meanCpuMsPerS: mean('cpuMsPerS'),
      meanRssMb: mean('rssMb'),
      meanWakeUpsPerS: mean('wakeUpsPerS'),
      perNode: rows,
      floor: floorRow,
    }),
  )
  if (profile) for (const p of procs) p.kill('SIGINT')
  if (profile) await Promise.all(procs.map((p) => p.waitExit()))
} finally {
  floor?.kill('SIGKILL')
  await c.close()
}
