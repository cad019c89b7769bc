/** The TCP transport with real sockets on loopback. */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import net from 'node:net'
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

test('a connection that stops moving data is redialled once its data goes unacknowledged', async (t) => {
  // a dials b through a proxy that, once frozen, swallows everything on the connections it carries
  // (as a cut does: no FIN, no RST) but forwards new ones: only a redial gets a's messages through.
  const [pa, pb] = (await freePorts(2)) as [number, number]
  const frozen = new Set<net.Socket>()
  let freezing = false
  const proxy = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: pb })
    const pair = [client, upstream] as const
    for (const [from, to] of [pair, [upstream, client] as const]) {
      from.on('data', (d: Buffer) => {
        if (!frozen.has(from)) to.write(d)
      })
      from.on('error', () => {})
      // A cut carries no FIN either: b must find out for itself.
      from.on('close', () => frozen.has(from) || to.destroy())
    }
    if (freezing) return
    proxyPairs.push(pair)
  })
  const proxyPairs: Array<readonly [net.Socket, net.Socket]> = []
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()))
  const via = `127.0.0.1:${(proxy.address() as net.AddressInfo).port}`
  const heard: string[] = []
  const codec = (self: string) => new Codec({ cluster: 'ballot', self, schema })
  const a = new TcpTransport<Note>({
    self: 'a',
    listen: { host: '127.0.0.1', port: pa },
    peers: new Map([['b', via]]),
    codec: codec('a'),
    silenceTimeoutMs: 300,
  })
  const b = new TcpTransport<Note>({
    self: 'b',
    listen: { host: '127.0.0.1', port: pb },
    peers: new Map(),
    codec: codec('b'),
  })
  t.after(async () => {
    await Promise.all([a.close(), b.close()])
    for (const p of proxyPairs) for (const s of p) s.destroy()
    await new Promise((r) => proxy.close(r))
  })
  const quiet = { onPeerConnected: () => {}, onPeerUnreachable: () => {} }
  await b.start({ ...quiet, onMessage: (_from, msg) => heard.push(msg.text) })
  await a.start({ onMessage: () => {}, ...quiet })
  let n = 0
  await waitFor('b to hear a', () => {
    a.send('b', { text: `m${n++}` })
    return heard.length > 0
  })
  // Steady traffic is acknowledged: no redial while the link works.
  for (let i = 0; i < 20; i++) {
    a.send('b', { text: `m${n++}` })
    await new Promise((r) => setTimeout(r, 50))
  }
  assert.equal(a.stats.connectionsDropped.get('silent') ?? 0, 0, 'no redial while acknowledgements flow')
  freezing = true
  for (const [client, upstream] of proxyPairs) {
    frozen.add(client)
    frozen.add(upstream)
  }
  const frozenAt = heard.length
  await waitFor(
    'a message sent after the freeze to reach b over a new connection',
    () => {
      a.send('b', { text: `m${n++}` })
      return heard.length > frozenAt
    },
    30_000,
  )
  assert.ok((a.stats.connectionsDropped.get('silent') ?? 0) >= 1, 'a redialled the silent connection')
  await waitFor('b to close the dead connection it replaced', () =>
    b.stats.connectionsDropped.get('replaced'),
  )
})
