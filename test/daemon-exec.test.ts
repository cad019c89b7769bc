/**
 * `ballot exec` with a real child that records when it runs: across a kill -9 of the leading ballot
 * and a graceful hand-over, two children never run at once, each carries a larger fencing token, and
 * the child of a killed ballot does not outlive it.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { DaemonCluster, type DaemonProc, waitForAsync } from './helpers/daemon.js'
import { type ChildRun as Run, readRuns as runs } from './helpers/exec-runs.js'
import { sendForged } from './helpers/forge.js'

const CHILD = new URL('./fixtures/exec-child.mjs', import.meta.url).pathname

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

let c: DaemonCluster
after(() => c?.close())

test('exec: never two children at once, across kill -9 and hand-over; the killed ballot leaves no child', async () => {
  c = await DaemonCluster.create(3)
  const file = join(c.dir, 'runs.log')
  for (const id of ['n1', 'n2', 'n3'])
    c.start(id, ['--grace', '2000'], 'exec', [process.execPath, CHILD, file])
  const leaderNode = (r: Run) => c.procs.get(r.leader) as DaemonProc
  const first = await waitForAsync('a child to run', async () => runs(file).at(-1))
  assert.equal(first.leader, (await c.waitForAgreement()).id, 'it runs on the leader')

  // kill -9 of the leading ballot: its child dies with it; another node's child starts later.
  leaderNode(first).kill('SIGKILL')
  await leaderNode(first).waitExit()
  const second = await waitForAsync('a child on another node', async () => {
    const r = runs(file).at(-1)
    return r && r.pid !== first.pid ? r : undefined
  })
  await waitForAsync('the killed ballot child to be gone', async () => !alive(first.pid), 10_000)
  // Back to three nodes, so that a majority remains after the next one leaves.
  c.start(first.leader, ['--grace', '2000'], 'exec', [process.execPath, CHILD, file])
  await c.waitForAgreement(() => c.live())

  // SIGTERM of the leading ballot: it stops its child first, then hands over.
  leaderNode(second).kill('SIGTERM')
  await leaderNode(second).waitExit()
  const third = await waitForAsync('a child after the hand-over', async () => {
    const r = runs(file).at(-1)
    return r && r.pid !== second.pid ? r : undefined
  })
  assert.notEqual(third.leader, second.leader)
  assert.ok(
    readFileSync(file, 'utf8').includes(`stop ${second.pid}`),
    'the hand-over stopped the child gracefully',
  )

  await new Promise((r) => setTimeout(r, 200)) // let the last child tick a little
  const all = runs(file)
  assert.ok(all.length >= 3)
  for (let i = 1; i < all.length; i++) {
    const [a, b] = [all[i - 1] as Run, all[i] as Run]
    assert.ok(b.start > a.end, `child ${b.pid} started at ${b.start} before ${a.pid} ended at ${a.end}`)
    assert.ok(b.token > a.token, `tokens grow: ${a.token} then ${b.token}`)
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
