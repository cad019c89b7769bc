/**
 * `ballot run` as operators use it: real processes on loopback with the same command line, their HTTP
 * API (plain text and JSON, status, health, metrics parsed by a Prometheus parser, server-sent events
 * read by a real EventSource client, the token-guarded resign), a paused leader, bully, and webhooks.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import { after, afterEach, describe, test } from 'node:test'
import { EventSource } from 'eventsource'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { DaemonCluster, type DaemonProc, waitForAsync } from './helpers/daemon.js'
import { freePorts } from './helpers/raft-cluster.js'

const clusters: DaemonCluster[] = []
// Each test's processes end with it (and whatever is left, with the file): the tests run one after
// another, and clusters left running would load the machine for every test after them.
const closeClusters = async () => {
  await Promise.all(clusters.splice(0).map((c) => c.close()))
}
after(closeClusters)
async function cluster(size: number) {
  const c = await DaemonCluster.create(size)
  clusters.push(c)
  return c
}

describe('ballot run', () => {
  afterEach(closeClusters)

  test('started one by one: 503 until a majority is up, then all name one leader; kill -9 gives the next', async () => {
    const c = await cluster(3)
    const n1 = c.start('n1')
    const first = await waitForAsync('n1 to answer', () => n1.leader())
    assert.equal(first.status, 503, 'alone, n1 has no leader')
    assert.match(first.body, /no leader/)
    c.start('n2')
    const lead = await c.waitForAgreement()
    c.start('n3')
    const all = await c.waitForAgreement(() => c.live())
    assert.deepEqual(all.id, lead.id)
    const text = await (c.procs.get('n3') as DaemonProc).get('/leader')
    assert.equal(text.status, 200)
    const leaderPort = c.members.find((m) => m.id === lead.id)?.port
    assert.equal(text.body, `127.0.0.1:${leaderPort}\n`, 'plain text: the address')

    c.procs.get(lead.id)?.kill('SIGKILL')
    await c.procs.get(lead.id)?.waitExit()
    const next = await waitForAsync('a new agreed leader', async () => {
      const a = await c.agreed()
      return a && a.id !== lead.id ? a : undefined
    })
    assert.ok(next.token > lead.token, `token ${next.token} must exceed ${lead.token}`)
  })

  test('HTTP API: JSON, status, health, metrics, events, and resign guarded by a token', async () => {
    const c = await cluster(3)
    for (const id of ['n1', 'n2', 'n3']) c.start(id, ['--http-token', 'sekrit-token', '--ready-when-leader'])
    const lead = await c.waitForAgreement()
    const leader = c.procs.get(lead.id) as DaemonProc
    const follower = c.live().find((p) => p !== leader) as DaemonProc

    const json = JSON.parse((await follower.get('/leader', { Accept: 'application/json' })).body)
    assert.equal(json.id, lead.id)
    assert.equal(typeof json.token, 'string')
    assert.ok(!Number.isNaN(Date.parse(json.since)))

    const status = JSON.parse((await leader.get('/status')).body)
    assert.equal(status.self, lead.id)
    assert.equal(status.isLeader, true)
    assert.equal(status.members.length, 3)
    assert.equal((await follower.get('/healthz')).status, 200)
    assert.equal((await leader.get('/readyz')).status, 200)
    assert.equal((await follower.get('/readyz')).status, 503, 'ready only on the leader')

    const metrics = parsePrometheusTextFormat((await leader.get('/metrics')).body)
    const byName = new Map(metrics.map((m) => [m.name, m]))
    for (const name of [
      'ballot_state',
      'ballot_is_leader',
      'ballot_term',
      'ballot_leader_changes_total',
      'ballot_elections_started_total',
      'ballot_elections_won_total',
      'ballot_messages_sent_total',
      'ballot_messages_received_total',
      'ballot_peer_last_contact_seconds',
      'ballot_failover_seconds',
    ])
      assert.ok(byName.has(name), `metric ${name}`)
    const isLeader = byName.get('ballot_is_leader')?.metrics[0] as { value: string }
    assert.equal(isLeader.value, '1')
    assert.equal((byName.get('ballot_peer_last_contact_seconds')?.metrics ?? []).length, 2)

    // Bad requests are refused cleanly.
    assert.equal((await follower.get('/nope')).status, 404)
    const post = (p: DaemonProc, path: string, token?: string) =>
      fetch(`http://${p.http}${path}`, {
        method: 'POST',
        headers: token ? { Authorization: `Bearer ${token}` } : {},
      })
    assert.equal((await post(follower, '/leader')).status, 405)
    assert.equal((await post(leader, '/resign')).status, 401)
    assert.equal((await post(leader, '/resign', 'wrong-token')).status, 403)
    assert.equal((await post(follower, '/resign', 'sekrit-token')).status, 409, 'only the leader can resign')

    // Live events, read by a real EventSource client, while the leader resigns.
    const events: Array<{ type: string; data: { role: string; leader: { id: string } | null } }> = []
    const es = new EventSource(`http://${follower.http}/events`)
    es.addEventListener('state', (e) => events.push({ type: 'state', data: JSON.parse(e.data) }))
    es.addEventListener('change', (e) => events.push({ type: 'change', data: JSON.parse(e.data) }))
    try {
      await waitForAsync('the initial state event', async () => events.length > 0)
      assert.equal(events[0]?.type, 'state')
      assert.equal((await post(leader, '/resign', 'sekrit-token')).status, 202)
      const next = await waitForAsync('a new leader after resign', async () => {
        const a = await c.agreed()
        return a && a.id !== lead.id ? a : undefined
      })
      await waitForAsync('the change to reach the event stream', async () =>
        events.some((e) => e.type === 'change' && e.data.leader?.id === next.id),
      )
    } finally {
      es.close()
    }
  })

  test('a node without a token refuses state changes', async () => {
    const c = await cluster(1)
    const n1 = c.start('n1')
    await c.waitForAgreement()
    const res = await fetch(`http://${n1.http}/resign`, {
      method: 'POST',
      headers: { Authorization: 'Bearer x' },
    })
    assert.equal(res.status, 403)
  })

  test('a paused leader does not name itself once its lease has lapsed', async () => {
    const c = await cluster(3)
    for (const id of ['n1', 'n2', 'n3']) c.start(id)
    const lead = await c.waitForAgreement()
    const old = c.procs.get(lead.id) as DaemonProc
    const oldAddress = `127.0.0.1:${c.members.find((m) => m.id === lead.id)?.port}\n`
    old.kill('SIGSTOP')
    try {
      await waitForAsync('the others to elect a new leader', async () => {
        const a = await c.agreed(c.live().filter((p) => p !== old))
        return a && a.id !== lead.id ? a : undefined
      })
    } finally {
      old.kill('SIGCONT')
    }
    // The first answer after waking: whatever it has or has not heard yet, it must not name itself.
    const res = await waitForAsync('the old leader to answer', () => old.leader())
    assert.notEqual(res.body, oldAddress, `the paused leader named itself: ${res.status} ${res.body}`)
  })

  test('bully through the daemon: GET /leader answers with the leader IP', async () => {
    const c = await cluster(3)
    c.members.forEach((m, i) => {
      c.start(m.id, ['--algo', 'bully', '--pid', String(i + 1)])
    })
    const lead = await c.waitForAgreement()
    assert.equal(lead.id, 'n3', 'the highest pid leads')
    const text = await (c.procs.get('n1') as DaemonProc).get('/leader')
    assert.equal(text.body, '127.0.0.1\n')
    c.procs.get('n3')?.kill('SIGKILL')
    const next = await waitForAsync('n2 to lead', async () => {
      const a = await c.agreed()
      return a?.id === 'n2' ? a : undefined
    })
    assert.ok(next.token > lead.token)
  })

  test('--notify-url: a webhook hears elected, with the fencing token, retried after a failure', async () => {
    const got: Array<Record<string, unknown>> = []
    let calls = 0
    const server = http.createServer((req, res) => {
      let body = ''
      req.on('data', (d) => {
        body += d
      })
      req.on('end', () => {
        // The first attempt fails: the event must come again.
        if (++calls === 1) {
          res.statusCode = 500
          res.end('try again')
          return
        }
        got.push(JSON.parse(body))
        res.end('ok')
      })
    })
    const [port] = (await freePorts(1)) as [number]
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()))
    try {
      const c = await cluster(1)
      c.start('n1', ['--notify-url', `http://127.0.0.1:${port}/hook`])
      await waitForAsync('the webhook to be called', async () => got.length > 0)
      assert.equal(got[0]?.event, 'elected')
      assert.equal(got[0]?.node, 'n1')
      assert.equal(got[0]?.token, '1')
      assert.equal(calls, 2, 'one failed attempt, then the retry')
    } finally {
      server.close()
    }
  })
})
