/**
 * `ballot exec` with a real child that records when it runs: across a kill -9 of the leading ballot
 * and a graceful hand-over, two children never run at once, each new leader's child carries a larger
 * fencing token, and the child of a killed ballot does not outlive it.
 */
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { DaemonCluster, type DaemonProc, waitForAsync } from './helpers/daemon.js'
import { type ChildRun as Run, readRuns as runs } from './helpers/exec-runs.js'
import { sendForged } from './helpers/forge.js'

const CHILD = new URL('./fixtures/exec-child.mjs', import.meta.url).pathname

const STARTED = 'exec: started the command'
const STOPPED = 'exec: the command stopped'

/** Whether a process still runs. A zombie does not: it has exited and only waits to be reaped. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return false
  }
}

/** Every child a ballot started, by its own log. */
function childrenOf(p: DaemonProc): number[] {
  return p.logs.filter((l) => l.msg === STARTED).map((l) => Number(l.pid))
}

/** The child a ballot runs now, by its own log: started and not yet stopped. */
function runningChild(p: DaemonProc): number | undefined {
  let pid: number | undefined
  for (const l of p.logs) {
    if (l.msg === STARTED) pid = Number(l.pid)
    else if (l.msg === STOPPED && Number(l.pid) === pid) pid = undefined
  }
  return pid
}

/** What happened, for a failure message: each child's start and stop, and what each ballot said. */
function history(c: DaemonCluster, file: string): string {
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n') : []
  return ['children:', ...lines.filter((l) => !l.startsWith('tick') && l !== ''), c.history()].join('\n')
}

let c: DaemonCluster
after(() => c?.close())

test('exec: never two children at once, across kill -9 and hand-over; the killed ballot leaves no child', async () => {
  // The default timing: this test is about who runs the child, not about speed. With 'fast' (a 90 ms
  // lease) a loaded machine keeps letting the leader's lease lapse, and the watchdog then stops and
  // restarts the child every second or so, as it must; the steps below would chase those restarts.
  c = await DaemonCluster.create(3, { timing: 'default' })
  const file = join(c.dir, 'runs.log')
  const start = (id: string) => c.start(id, ['--grace', '2000'], 'exec', [process.execPath, CHILD, file])
  try {
    for (const id of ['n1', 'n2', 'n3']) start(id)
    // The fact each step starts from: the nodes agree on a leader, and that leader's child runs (its
    // ballot started it and has not stopped it, and it logged its start with the leader's token).
    const leaderWithChild = () =>
      waitForAsync(
        "the agreed leader's child to run",
        async () => {
          const lead = await c.agreed()
          const proc = lead && c.procs.get(lead.id)
          const pid = proc && runningChild(proc)
          const run = runs(file).find((r) => r.pid === pid)
          return proc && run?.leader === lead.id && run.token === lead.token ? { proc, run } : undefined
        },
        60_000,
      )

    // kill -9 of the leading ballot: every child it started dies with it; another node's child starts.
    const first = await leaderWithChild()
    first.proc.kill('SIGKILL')
    await first.proc.waitExit()
    const second = await waitForAsync(
      'a child on another node',
      async () => runs(file).find((r) => r.leader !== first.run.leader && r.start > first.run.start),
      60_000,
    )
    assert.ok(second.token > first.run.token, `tokens grow: ${first.run.token} then ${second.token}`)
    for (const pid of childrenOf(first.proc))
      await waitForAsync(`child ${pid} of the killed ballot to be gone`, async () => !alive(pid), 20_000)

    // Back to three nodes, so that a majority remains after the next one leaves.
    start(first.run.leader)
    await c.waitForAgreement(() => c.live(), 60_000)

    // SIGTERM of the leading ballot: it stops its child first, then hands over.
    const before = await leaderWithChild()
    before.proc.kill('SIGTERM')
    await before.proc.waitExit()
    const third = await waitForAsync(
      'a child after the hand-over',
      async () => runs(file).find((r) => r.leader !== before.run.leader && r.start > before.run.start),
      60_000,
    )
    assert.ok(third.token > before.run.token, `tokens grow: ${before.run.token} then ${third.token}`)
    assert.ok(
      readFileSync(file, 'utf8').includes(`stop ${before.run.pid} `),
      `the hand-over stopped the child ${before.run.pid} gracefully`,
    )

    // Every child that logged its start, in order: none started before the one before it had ended. A
    // leader whose lease lapsed for a moment restarts its child in the same term, with the same token;
    // a child of another leader has a larger one.
    const all = runs(file)
    assert.ok(all.length >= 3)
    for (let i = 1; i < all.length; i++) {
      const [a, b] = [all[i - 1] as Run, all[i] as Run]
      assert.ok(b.start > a.end, `child ${b.pid} started at ${b.start} before ${a.pid} ended at ${a.end}`)
      assert.ok(
        b.token > a.token || (b.token === a.token && b.leader === a.leader),
        `tokens grow from leader to leader: ${a.leader}@${a.token} then ${b.leader}@${b.token}`,
      )
    }
  } catch (err) {
    process.stderr.write(`${history(c, file)}\n`)
    throw err
  }
})

test('exec --exit-with-child: ballot leaves and exits with the command exit code', async () => {
  const solo = await DaemonCluster.create(1)
  try {
    const p = solo.start('n1', ['--exit-with-child'], 'exec', [
      process.execPath,
      '-e',
      'setTimeout(() => process.exit(7), 100)',
    ])
    await p.waitExit(30_000)
    assert.equal(p.child.exitCode, 7)
    assert.ok(p.logs.some((l) => String(l.msg).includes('leaving with its exit code')))
  } finally {
    await solo.close()
  }
})

test('exec --algo bully: a leader that claims again restarts the command with the new BALLOT_TOKEN, never two at once', async () => {
  const solo = await DaemonCluster.create(1)
  try {
    const file = join(solo.dir, 'runs.log')
    const p = solo.start('n1', ['--algo', 'bully', '--pid', '5'], 'exec', [process.execPath, CHILD, file])
    const first = await waitForAsync('a child to run', async () => runs(file).at(-1))
    // A lower node that led on the other side of a partition speaks with the same epoch: this node
    // claims again with a larger one. The child's token is no longer current.
    const port = solo.members[0]?.port as number
    await sendForged(`127.0.0.1:${port}`, [
      { from: 'low', msg: { t: 'hb', pid: 1, addr: '127.0.0.1:1', epoch: first.token } },
    ])
    const second = await waitForAsync('a child with the new token', async () => {
      const r = runs(file).at(-1)
      return r && r.pid !== first.pid ? r : undefined
    })
    assert.ok(second.token > first.token, `new token ${second.token} after ${first.token}`)
    assert.equal((await p.leaderJson())?.token, String(second.token), 'the token this node now leads with')
    await waitForAsync('the old child to be gone', async () => !alive(first.pid), 10_000)
    // Ballot saw the old child exit before it started the new one (its own log, in order).
    const log = p.logs.map((l) => `${l.msg} ${l.pid}`)
    const stopped = log.indexOf(`exec: the command stopped ${first.pid}`)
    const started = log.indexOf(`exec: started the command ${second.pid}`)
    assert.ok(
      stopped >= 0 && started > stopped,
      `old child stopped before the new one started: ${log.join('; ')}`,
    )
    assert.ok(second.start > first.end, 'the two children never ran at once')
  } finally {
    await solo.close()
  }
})
