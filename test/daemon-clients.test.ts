/**
 * The small clients (`ballot leader`, `status`, `watch`) against a real node, and `ballot run` handing
 * leadership over on SIGTERM.
 */
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { after, test } from 'node:test'
import { CLI, DaemonCluster, type DaemonProc, waitForAsync } from './helpers/daemon.js'

let c: DaemonCluster
after(() => c?.close())

test('leader, status and watch read a node; SIGTERM on the leader hands over to the next term', async () => {
  // The default timing: this test is about what the clients print, not about speed. On a loaded
  // machine the 'fast' profile (100 ms election timeout) lets a late heartbeat start an election
  // between two lines of the test.
  c = await DaemonCluster.create(3, { timing: 'default' })
  try {
    for (const id of ['n1', 'n2', 'n3']) c.start(id)
    await c.waitForAgreement()
    const node = c.procs.get('n1') as DaemonProc
    // Asynchronous, so that the test's event loop keeps running while a client starts (seconds, on a
    // loaded machine): blocked, it would hand fetch keep-alive sockets the nodes have closed meanwhile.
    const cli = (args: string[]) =>
      new Promise<{ status: number | null; stdout: string }>((resolve) => {
        execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 }, (err, stdout) =>
          resolve({ status: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout }),
        )
      })
    const portOf = (id: string) => c.members.find((m) => m.id === id)?.port

    /**
     * Runs a client while the cluster names one leader before and after it (the same id and token; tokens
     * only grow, so nothing changed in between): its output must then name that leader. A leader that
     * changed meanwhile (a late heartbeat on a loaded machine) proves nothing either way: run it again.
     */
    const whileStable = (what: string, args: string[]) =>
      waitForAsync(
        what,
        async () => {
          const before = await c.agreed()
          const out = await cli(args)
          const after = await c.agreed()
          return before && after && before.id === after.id && before.token === after.token
            ? { lead: before, out }
            : undefined
        },
        60_000,
      )

    const leader = await whileStable('ballot leader under a stable leader', ['leader', '--http', node.http])
    assert.equal(leader.out.status, 0)
    assert.equal(leader.out.stdout, `127.0.0.1:${portOf(leader.lead.id)}\n`)
    const asJson = await whileStable('ballot leader --json under a stable leader', [
      'leader',
      '--http',
      node.http,
      '--json',
    ])
    assert.equal(JSON.parse(asJson.out.stdout).id, asJson.lead.id)

    const status = await whileStable('ballot status under a stable leader', ['status', '--http', node.http])
    assert.equal(status.out.status, 0)
    assert.match(status.out.stdout, new RegExp(`^leader: ${status.lead.id} \\(token ${status.lead.token}\\)`))
    for (const id of ['n1', 'n2', 'n3']) assert.match(status.out.stdout, new RegExp(`^${id}`, 'm'))

    // watch prints the current state at once, then every change: whatever leader the node names now,
    // and whatever it comes to name, watch's output names it too.
    const watch = spawn(process.execPath, [CLI, 'watch', '--http', node.http], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    watch.stdout.on('data', (d: Buffer) => {
      out += d.toString()
    })
    const watchShows = (what: string, ok: (lead: { id: string; token: number }) => boolean) =>
      waitForAsync(
        what,
        async () => {
          const a = await node.leaderJson()
          return a &&
            ok({ id: a.id, token: Number(a.token) }) &&
            out.includes(`leader ${a.id} (token ${a.token})`)
            ? a
            : undefined
        },
        60_000,
      )
    try {
      await watchShows('watch to show the current leader', () => true)

      // SIGTERM to the node that leads now: it hands over, so a survivor wins the very next term (no
      // failed election in between). Read from the logs, as a loaded machine may add a later term
      // before the check.
      const lead = await waitForAsync('an agreed leader', async () => {
        const a = await c.agreed()
        return a && { ...a, proc: c.procs.get(a.id) as DaemonProc }
      })
      lead.proc.kill('SIGTERM')
      await lead.proc.waitExit()
      const next = await waitForAsync(
        'the successor',
        async () => {
          const a = await c.agreed()
          return a && a.id !== lead.id ? a : undefined
        },
        60_000,
      )
      const won = c
        .live()
        .some((p) => p.logs.some((l) => l.role === 'leader' && l.token === String(lead.token + 1)))
      assert.ok(won, `a survivor led term ${lead.token + 1}; now ${next.id} at ${next.token}`)
      if (lead.proc !== node)
        await watchShows('watch to show the new leader', (a) => a.id !== lead.id && a.token > lead.token)
    } finally {
      watch.kill('SIGKILL')
    }
  } catch (err) {
    process.stderr.write(`${c.history()}\n`)
    throw err
  }
})
