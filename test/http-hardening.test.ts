/**
 * The HTTP API against hostile clients, on real `ballot run` processes: malformed requests, oversized
 * heads and bodies, slow heads (slowloris), dripping bodies, idle keep-alive connections, more
 * connections and event streams than the caps, wrong methods and tokens, repeated resigns, an API
 * exposed without a token; each gets its status and changes nothing. And a burst of thousands of
 * connections to the leader's HTTP port, opened and reset at once, must not move the leadership.
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { after, afterEach, describe, test } from 'node:test'
import { DaemonCluster, type DaemonProc, waitForAsync } from './helpers/daemon.js'
import { httpBurst } from './helpers/http-burst.js'
import { waitFor } from './helpers/raft-cluster.js'

const clusters: DaemonCluster[] = []
const closeClusters = async () => {
  await Promise.all(clusters.splice(0).map((c) => c.close()))
}
after(closeClusters)
async function cluster(size: number, timing: 'fast' | 'default' = 'fast') {
  const c = await DaemonCluster.create(size, { timing })
  clusters.push(c)
  return c
}

const TOKEN = 'sekrit-token'

/** A raw connection: what it received, and whether the server closed it. */
class Raw {
  readonly socket: net.Socket
  data = ''
  closed = false
  constructor(address: string) {
    const [host, port] = address.split(':') as [string, string]
    this.socket = net.connect({ host, port: Number(port) })
    this.socket.setEncoding('utf8')
    this.socket.on('data', (d: string) => {
      this.data += d
    })
    this.socket.on('error', () => {})
    this.socket.on('close', () => {
      this.closed = true
    })
  }
  get status(): number | undefined {
    const m = /^HTTP\/1\.1 (\d{3})/.exec(this.data)
    return m ? Number(m[1]) : undefined
  }
  async connected(): Promise<void> {
    if (!this.socket.connecting) return
    await new Promise((resolve, reject) => {
      this.socket.once('connect', resolve)
      this.socket.once('error', reject)
    })
  }
  write(text: string): void {
    if (!this.socket.destroyed) this.socket.write(text)
  }
  async waitClosed(what: string, timeoutMs = 30_000): Promise<void> {
    await waitFor(what, () => this.closed, timeoutMs)
  }
  destroy(): void {
    this.socket.destroy()
  }
}

async function status(p: DaemonProc) {
  return JSON.parse((await p.get('/status')).body) as {
    term: string
    counters: { electionsStarted: number; leaderChanges: number }
    transport: { messagesSent: number }
    eventLoop: { maxMs: number; recentMaxMs: number; warnMs: number; sampling: boolean }
    http: { connections: number; streams: number; refused: Record<string, number> }
  }
}

async function request(p: DaemonProc, method: string, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`http://${p.http}${path}`, { method, headers, signal: AbortSignal.timeout(20_000) })
  return { status: res.status, body: await res.text(), headers: res.headers }
}

/**
 * Log lines at warn level or above, and any line that carries a stack; but for the event-loop stall
 * warning, which a loaded machine may cause and which is no client's doing.
 */
const loud = (p: DaemonProc) =>
  p.logs.filter(
    (l) =>
      (Number(l.level) >= 40 || JSON.stringify(l).includes('    at ')) &&
      !String(l.msg).startsWith('the event loop stalled'),
  )

describe('HTTP API under hostile clients', () => {
  afterEach(closeClusters)

  test('malformed, oversized, slow and idle clients: each its status, no log line, nothing changes', async () => {
    const c = await cluster(1)
    const n1 = c.start('n1', ['--http-token', TOKEN])
    await c.waitForAgreement()
    const before = await status(n1)

    // `GET http://[` is no URL: 400, and no stack in the log (anyone could flood it).
    for (let i = 0; i < 20; i++) {
      const r = new Raw(n1.http)
      r.write('GET http://[ HTTP/1.1\r\nHost: x\r\n\r\n')
      await waitFor('an answer to a malformed target', () => r.status, 20_000)
      assert.equal(r.status, 400)
      r.destroy()
    }
    // Not HTTP at all: 400 from the parser, also silent.
    const junk = new Raw(n1.http)
    junk.write('\u0000\u0001garbage\r\n\r\n')
    await waitFor('an answer to junk', () => junk.status, 20_000)
    assert.equal(junk.status, 400)

    // A head larger than 8 KiB: 431.
    const big = new Raw(n1.http)
    big.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
    await waitFor('an answer to an oversized head', () => big.status, 20_000)
    assert.equal(big.status, 431)

    // A body announced larger than 1 KiB: 413 before anything happens, even with the right token.
    const raw413 = new Raw(n1.http)
    raw413.write(
      `POST /resign HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`,
    )
    await waitFor('an answer to an oversized body', () => raw413.status, 20_000)
    assert.equal(raw413.status, 413)
    await raw413.waitClosed('the oversized body connection to close')

    // Slowloris: a head that drips in never completes; the server answers 408 and closes (5 s limit).
    const slow = new Raw(n1.http)
    await slow.connected()
    const t0 = performance.now()
    slow.write('GET /healthz HTTP/1.1\r\n')
    const drip = setInterval(() => slow.write('X-Drip: 1\r\n'), 500)
    try {
      await slow.waitClosed('the slow head to be cut off')
    } finally {
      clearInterval(drip)
    }
    const slowMs = performance.now() - t0
    assert.ok(slowMs < 12_000, `a slow head held a connection ${Math.round(slowMs)} ms`)
    assert.equal(slow.status, 408)

    // A dripping body (small enough to be allowed): the request must complete within 10 s.
    const dripping = new Raw(n1.http)
    await dripping.connected()
    const t1 = performance.now()
    dripping.write('GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n')
    const drip2 = setInterval(() => dripping.write('x'), 200)
    try {
      await dripping.waitClosed('the dripping body to be cut off')
    } finally {
      clearInterval(drip2)
    }
    const dripMs = performance.now() - t1
    assert.ok(dripMs < 17_000, `a dripping body held a connection ${Math.round(dripMs)} ms`)

    // An idle keep-alive connection is closed after 5 s.
    const idle = new Raw(n1.http)
    idle.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
    await waitFor('the first answer', () => idle.status, 20_000)
    const t2 = performance.now()
    await idle.waitClosed('the idle keep-alive connection to close')
    assert.ok(performance.now() - t2 < 12_000)

    const afterAll = await status(n1)
    assert.equal(afterAll.term, before.term, 'nothing changed')
    assert.equal(afterAll.counters.electionsStarted, before.counters.electionsStarted)
    assert.ok((afterAll.http.refused['bad-request'] ?? 0) >= 21, JSON.stringify(afterAll.http.refused))
    assert.ok((afterAll.http.refused['headers-too-large'] ?? 0) >= 1)
    assert.ok((afterAll.http.refused['body-too-large'] ?? 0) >= 1)
    assert.ok((afterAll.http.refused.timeout ?? 0) >= 1)
    assert.deepEqual(loud(n1), [], 'client errors are not logged')
    junk.destroy()
    big.destroy()
  })

  test('methods and tokens: 405 with Allow, 401 without a token, 403 with a wrong one or none configured, 429 on a resign too soon', async () => {
    const c = await cluster(1)
    const n1 = c.start('n1', ['--http-token', TOKEN])
    await c.waitForAgreement()
    const before = await status(n1)

    const del = await request(n1, 'DELETE', '/leader')
    assert.equal(del.status, 405)
    assert.equal(del.headers.get('allow'), 'GET, HEAD')
    const getResign = await request(n1, 'GET', '/resign')
    assert.equal(getResign.status, 405)
    assert.equal(getResign.headers.get('allow'), 'POST')
    const none = await request(n1, 'POST', '/resign')
    assert.equal(none.status, 401)
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/)
    const basic = await request(n1, 'POST', '/resign', { Authorization: 'Basic eDp5' })
    assert.equal(basic.status, 401)
    for (const wrong of ['wrong-token', `${TOKEN}x`, TOKEN.slice(0, -1), 'a'.repeat(4096)]) {
      const r = await request(n1, 'POST', '/resign', { Authorization: `Bearer ${wrong}` })
      assert.equal(r.status, 403, `token ${JSON.stringify(wrong)}`)
    }
    const mid = await status(n1)
    assert.equal(mid.term, before.term, 'no refused request changed anything')

    // The right token resigns; the lone node is elected again at once, and a second resign so soon is
    // refused (429) rather than keeping the cluster electing.
    assert.equal((await request(n1, 'POST', '/resign', { Authorization: `Bearer ${TOKEN}` })).status, 202)
    await waitForAsync('n1 to lead again', async () => {
      const s = await status(n1)
      return s.term !== before.term && (await n1.leaderJson()) !== undefined
    })
    const again = await request(n1, 'POST', '/resign', { Authorization: `Bearer ${TOKEN}` })
    assert.ok(again.status === 429 || again.status === 202, `got ${again.status}`)
    if (again.status === 429) assert.ok(Number(again.headers.get('retry-after')) >= 1)
    assert.deepEqual(loud(n1), [])
  })

  test('a node without a token refuses state changes (403); exposed beyond loopback, it warns once', async () => {
    const c = await cluster(1)
    const m = c.members[0] as { http: number }
    const n1 = c.start('n1', ['--http', `0.0.0.0:${m.http}`])
    await c.waitForAgreement()
    const before = await status(n1)
    const r = await request(n1, 'POST', '/resign', { Authorization: 'Bearer anything' })
    assert.equal(r.status, 403)
    assert.match(r.body, /no --http-token/)
    assert.equal((await status(n1)).term, before.term)
    const warnings = n1.logs.filter((l) => /without --http-token/.test(String(l.msg)))
    assert.equal(warnings.length, 1, 'one warning at start')
  })

  test('caps: connections past 256 are closed as accepted, streams past 64 get 503, and the API still answers', async () => {
    const c = await cluster(1)
    const n1 = c.start('n1')
    await c.waitForAgreement()
    const held: Raw[] = []
    try {
      for (let i = 0; i < 300; i++) held.push(new Raw(n1.http))
      // Those past the cap are closed at once, before any answer (the others would get a 408 later).
      await waitFor(
        'the connections past the cap to be closed',
        () => held.filter((h) => h.closed && h.data === '').length >= 44,
      )
      // Every held connection is idle (no request yet): once the head timeout cuts them, the API is free.
      for (const h of held) h.destroy()
      held.length = 0
      await waitForAsync('the API to answer again', async () => (await n1.leader())?.status === 200)
      // Event streams: 64 at most.
      for (let i = 0; i < 64; i++) {
        const s = new Raw(n1.http)
        s.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n')
        held.push(s)
      }
      await waitFor('64 open streams', () => held.every((s) => s.status === 200), 30_000)
      const extra = await request(n1, 'GET', '/events')
      assert.equal(extra.status, 503)
      assert.ok(extra.headers.get('retry-after'))
      const s = await status(n1)
      assert.equal(s.http.streams, 64)
      assert.ok((s.http.refused.connections ?? 0) >= 44, JSON.stringify(s.http.refused))
      assert.ok((s.http.refused.streams ?? 0) >= 1)
    } finally {
      for (const h of held) h.destroy()
    }
    assert.deepEqual(loud(n1), [])
  })

  test('a burst of 9,000 connections to the leader, opened and reset at once, moves no leadership', async () => {
    // The default timing: a stall of the leader's loop longer than ~350 ms costs its lease.
    const c = await cluster(3, 'default')
    for (const m of c.members) c.start(m.id)
    for (let round = 1; round <= 2; round++) {
      const lead = await c.waitForAgreement()
      const leader = c.procs.get(lead.id) as DaemonProc
      const before = await Promise.all(c.live().map(status))
      const [host, port] = leader.http.split(':') as [string, string]
      const burst = await httpBurst(host, Number(port), 9000)
      const right = await status(leader)
      // The fact to wait for: the leader has sent two election timeouts' worth of heartbeats since the
      // burst (20 per peer); a stall it caused would have ended in an election by then.
      await waitForAsync('heartbeats after the burst', async () => {
        const s = await status(leader)
        return s.transport.messagesSent >= right.transport.messagesSent + 40
      })
      const afterBurst = await Promise.all(c.live().map(status))
      const now = await c.waitForAgreement()
      const elections =
        afterBurst.reduce((a, s) => a + s.counters.electionsStarted, 0) -
        before.reduce((a, s) => a + s.counters.electionsStarted, 0)
      const figures = `round ${round}: ${JSON.stringify(burst)}; leader stall ${right.eventLoop.recentMaxMs} ms`
      assert.equal(elections, 0, `elections after the burst (${figures})\n${c.history()}`)
      // Only the leader samples its loop (a follower's stall costs no lease, and sampling wakes it).
      assert.deepEqual(
        afterBurst.map((s) => s.eventLoop.sampling),
        c.live().map((p) => p.name === now.id),
      )
      assert.deepEqual({ id: now.id, token: now.token }, { id: lead.id, token: lead.token }, figures)
      assert.ok(burst.established + burst.failed >= 9000)
    }
  })
})
