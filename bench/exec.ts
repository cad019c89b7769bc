/**
 * `ballot exec` figures: 3 real `ballot exec` processes on loopback supervising a child that records
 * when it runs (test/fixtures/exec-child.mjs):
 *   kill -9    of the leading ballot → a child runs on another node (includes waiting out the dead
 *              leader's lease: that wait is what keeps two children from ever running at once)
 *   handover   SIGTERM to the leading ballot (child stopped first, then hand-over) → a child runs on
 *              another node
 * for the default and fast profiles, and the overlaps seen between any two children (must be 0).
 *
 *   node --import tsx bench/exec.ts [--runs 10] [--profiles default,fast]
 */
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { DaemonCluster, type DaemonProc, waitForAsync } from '../test/helpers/daemon.js'
import { overlaps, readRuns } from '../test/helpers/exec-runs.js'
import { summarize, table } from './stats.js'

const { values: args } = parseArgs({
  options: { runs: { type: 'string', default: '10' }, profiles: { type: 'string', default: 'default,fast' } },
})
const runs = Number(args.runs)
const CHILD = new URL('../test/fixtures/exec-child.mjs', import.meta.url).pathname
const now = () => performance.timeOrigin + performance.now()

async function measure(profile: string, kind: 'kill' | 'handover') {
  const c = await DaemonCluster.create(3)
  const file = join(c.dir, 'runs.log')
  const start = (id: string) =>
    c.start(id, ['--timing', profile, '--grace', '2000', '--log-level', 'warn'], 'exec', [
      process.execPath,
      CHILD,
      file,
    ])
  const times: number[] = []
  try {
    for (const id of ['n1', 'n2', 'n3']) start(id)
    for (let i = 0; i < runs; i++) {
      await c.waitForAgreement(() => c.live(), 60_000)
      const current = await waitForAsync('a running child', async () => readRuns(file).at(-1), 60_000)
      await new Promise((r) => setTimeout(r, 300 + Math.random() * 200))
      const leader = c.procs.get(current.leader) as DaemonProc
      const t0 = now()
      leader.kill(kind === 'kill' ? 'SIGKILL' : 'SIGTERM')
      const next = await waitForAsync(
        'a child on another node',
        async () => {
          const r = readRuns(file).at(-1)
          return r && r.pid !== current.pid ? r : undefined
        },
        60_000,
      )
      times.push(next.start - t0)
      await leader.waitExit()
      start(current.leader)
    }
    await new Promise((r) => setTimeout(r, 300))
    return { times, overlaps: overlaps(readRuns(file)).length, children: readRuns(file).length }
  } finally {
    await c.close()
  }
}

const rows: Array<Record<string, string | number>> = []
const json: Record<string, unknown> = { runs }
for (const profile of (args.profiles as string).split(',')) {
  for (const kind of ['kill', 'handover'] as const) {
    const m = await measure(profile, kind)
    const s = summarize(m.times)
    rows.push({
      profile,
      kind,
      runs: s.runs,
      p50: s.p50,
      max: s.max,
      children: m.children,
      overlaps: m.overlaps,
    })
    json[`${profile}.${kind}`] = { ...s, overlaps: m.overlaps, children: m.children }
    console.error(`${profile} ${kind}: p50 ${s.p50} ms, max ${s.max} ms, overlaps ${m.overlaps}`)
  }
}
console.log(table(rows))
console.log(JSON.stringify(json))
