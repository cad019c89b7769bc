/** The TCP transport with real sockets on loopback. */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { test } from 'node:test'
import { z } from 'zod'
import { Codec } from '../src/codec/envelope.js'
import { TcpTransport } from '../src/transport/tcp.js'
import { freePorts, waitFor } from './helpers/raft-cluster.js'

const schema = z.object({ text: z.string() })
type Note = z.infer<typeof schema>

function transport(self: string, port: number, peers: Record<string, number>, reconnectInitialMs: number) {
  const heard: Array<{ from: string; msg: Note }> = []
  const t = new TcpTransport<Note>({
    self,
    listen: { host: '127.0.0.1', port },
    peers: new Map(Object.entries(peers).map(([id, p]) => [id, `127.0.0.1:${p}`])),
    codec: new Codec({ cluster: 'ballot', self, schema }),
    reconnectInitialMs,
    reconnectMaxMs: reconnectInitialMs,
  })
  const handlers = {
    onMessage: (from: string, msg: Note) => heard.push({ from, msg }),
    onPeerConnected: () => {},
    onPeerUnreachable: () => {},
  }
  return { t, heard, start: () => t.start(handlers) }
}

test('a peer that speaks to us is dialled at once, not after our reconnect backoff', async (t) => {
  const [pa, pb] = (await freePorts(2)) as [number, number]
  // a's backoff is far longer than the test's deadline: only the redial on contact can connect it in time.
  const a = transport('a', pa, { b: pb }, 120_000)
  const b = transport('b', pb, { a: pa }, 50)
  t.after(() => Promise.all([a.t.close(), b.t.close()]))
  await a.start() // b is down: a's first dial is refused and waits out its backoff
  await new Promise((r) => setTimeout(r, 200)) // let the refused dial happen
  await b.start()
  await waitFor('a to hear b', () => {
    b.t.send('a', { text: 'hello' })
    return a.heard.length > 0
  })
  await waitFor(
    'b to hear a reply within the deadline (a redialled on contact)',
    () => {
      a.t.send('b', { text: 'reply' })
      return b.heard.some((h) => h.msg.text === 'reply')
    },
    15_000,
  )
  assert.equal(b.heard.find((h) => h.msg.text === 'reply')?.from, 'a')
})

test('connections use TCP keepalive, so a peer that vanished from an idle connection is noticed', async (t) => {
  const [pa, pb] = (await freePorts(2)) as [number, number]
  const connected: string[] = []
  const a = transport('a', pa, { b: pb }, 50)
  const b = transport('b', pb, {}, 50)
  t.after(() => Promise.all([a.t.close(), b.t.close()]))
  await b.start()
  await a.t.start({
    onMessage: () => {},
    onPeerConnected: (p) => connected.push(p),
    onPeerUnreachable: () => {},
  })
  await waitFor('a to connect to b', () => connected.includes('b'))
  // ss names the keepalive timer of each socket that has one: a's outbound and b's inbound end.
  const sockets = (filter: string) =>
    execFileSync('ss', ['-tnoH', 'state', 'established', filter], { encoding: 'utf8' }).trim().split('\n')
  const outbound = sockets(`( dport = :${pb} and sport != :${pb} )`)
  const inbound = sockets(`( sport = :${pb} )`)
  assert.ok(outbound.length === 1 && /keepalive/.test(outbound[0] ?? ''), `outbound: ${outbound}`)
  assert.ok(inbound.length === 1 && /keepalive/.test(inbound[0] ?? ''), `inbound: ${inbound}`)
})
