/**
 * The small clients (`ballot leader`, `status`, `watch`) against a real node, and `ballot run` handing
 * leadership over on SIGTERM.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { after, test } from 'node:test'
import { CLI, DaemonCluster, type DaemonProc, waitForAsync } from './helpers/daemon.js'
import { waitFor } from './helpers/raft-cluster.js'

let c: DaemonCluster
after(() => c?.close())

test('leader, status and watch read a node; SIGTERM on the leader hands over to the next term', async () => {
  c = await DaemonCluster.create(3)
  for (const id of ['n1', 'n2', 'n3']) c.start(id)
  const lead = await c.waitForAgreement()
  const node = c.procs.get('n1') as DaemonProc
  const cli = (args: string[]) =>
    spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 })

  const leader = cli(['leader', '--http', node.http])
  assert.equal(leader.status, 0)
  assert.equal(leader.stdout, `127.0.0.1:${c.members.find((m) => m.id === lead.id)?.port}\n`)
  const asJson = JSON.parse(cli(['leader', '--http', node.http, '--json']).stdout)
  assert.equal(asJson.id, lead.id)

  const status = cli(['status', '--http', node.http])
  assert.equal(status.status, 0)
  assert.match(status.stdout, new RegExp(`^leader: ${lead.id} \\(token ${lead.token}\\)`))
  for (const id of ['n1', 'n2', 'n3']) assert.match(status.stdout, new RegExp(`^${id}`, 'm'))

  // watch prints the current state at once, then every change.
  const watch = spawn(process.execPath, [CLI, 'watch', '--http', node.http], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  watch.stdout.on('data', (d: Buffer) => {
    out += d.toString()
  })
  try {
    await waitFor('the current state from watch', () => out.includes(`leader ${lead.id}`), 20_000)

    const old = c.procs.get(lead.id) as DaemonProc
    old.kill('SIGTERM')
    await old.waitExit()
    const next = await waitForAsync('the successor', async () => {
      const a = await c.agreed()
      return a && a.id !== lead.id ? a : undefined
    })
    // Handed over: a survivor won the very next term (no failed election in between). Read from the
    // logs, as a loaded machine may add a later term before the check.
    const won = c
      .live()
      .some((p) => p.logs.some((l) => l.role === 'leader' && l.token === String(lead.token + 1)))
    assert.ok(won, `a survivor led term ${lead.token + 1}; now ${next.id} at ${next.token}`)
    if (node !== old)
      await waitFor('watch to show the new leader', () => out.includes(`leader ${next.id}`), 20_000)
  } finally {
    watch.kill('SIGKILL')
  }
})
