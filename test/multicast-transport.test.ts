/**
 * The UDP multicast transport with real sockets: several transports on the loopback interface of one
 * process, bad datagrams from a raw socket, and three hosts in network namespaces on a bridge.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { createHmac } from 'node:crypto'
import dgram from 'node:dgram'
import { after, describe, test } from 'node:test'
import { z } from 'zod'
import { Codec } from '../src/codec/envelope.js'
import { InvalidOptionsError } from '../src/errors.js'
import {
  DEFAULT_MULTICAST_GROUP,
  MulticastTransport,
  resolveInterfaceAddress,
} from '../src/transport/multicast.js'
import { NetnsLab } from './helpers/netns.js'
import { freeUdpPort, waitFor } from './helpers/raft-cluster.js'

const schema = z.object({ t: z.literal('say'), text: z.string().max(1000), addr: z.string() })
type Saying = z.infer<typeof schema>
const KEY = 'group-secret'

interface Heard {
  from: string
  msg: Saying
}

async function node(id: string, port: number, opts: { key?: string; maxMessageBytes?: number } = {}) {
  const heard: Heard[] = []
  const peers: string[] = []
  const transport = new MulticastTransport<Saying>({
    self: id,
    group: { host: '239.255.41.17', port },
    interfaceAddress: '127.0.0.1',
    codec: new Codec({
      cluster: 'ballot',
      self: id,
      schema,
      key: opts.key,
      maxMessageBytes: opts.maxMessageBytes,
    }),
  })
  await transport.start({
    onMessage: (from, msg) => heard.push({ from, msg }),
    onPeerConnected: (p) => peers.push(p),
    onPeerUnreachable: () => assert.fail('multicast never reports a peer unreachable'),
  })
  return { id, transport, heard, peers }
}

const say = (text: string): Saying => ({ t: 'say', text, addr: '127.0.0.1' })

describe('multicast transport on loopback', () => {
  const open: Array<MulticastTransport<Saying>> = []
  after(async () => {
    await Promise.all(open.map((t) => t.close()))
  })

  test('a broadcast reaches every other node once, never the sender; a unicast only its target', async () => {
    const port = await freeUdpPort()
    const nodes = await Promise.all(['a', 'b', 'c'].map((id) => node(id, port, { key: KEY })))
    open.push(...nodes.map((n) => n.transport))
    const [a, b, c] = nodes as [Awaited<ReturnType<typeof node>>, ...Awaited<ReturnType<typeof node>>[]]
    a.transport.send('*', say('hello all'))
    await waitFor('b and c to hear a', () => b?.heard.length === 1 && c?.heard.length === 1)
    assert.deepEqual(b?.heard[0], { from: 'a', msg: say('hello all') })
    assert.deepEqual(b?.peers, ['a'])
    a.transport.send('b', say('just b'))
    await waitFor('b to hear the unicast', () => b?.heard.length === 2)
    // Give c time it would need to hear it too, then check it did not, and counted nothing as dropped.
    c?.transport.send('a', say('marker'))
    await waitFor('a to hear c', () => a.heard.length === 1)
    assert.equal(c?.heard.length, 1)
    assert.equal(c?.transport.stats.droppedTotal(), 0, 'mail for another node is not a drop')
    assert.equal(
      a.heard.some((h) => h.from === 'a'),
      false,
      'own datagrams are ignored',
    )
    assert.equal(a.transport.address, '127.0.0.1')
  })

  test('bad datagrams are dropped and counted, and the next good one is still read', async () => {
    const port = await freeUdpPort()
    const target = await node('target', port, { key: KEY, maxMessageBytes: 2048 })
    const good = await node('good', port, { key: KEY })
    open.push(target.transport, good.transport)
    const raw = dgram.createSocket('udp4')
    await new Promise<void>((r) => raw.bind(0, '127.0.0.1', () => r()))
    raw.setMulticastInterface('127.0.0.1')
    const toGroup = (b: Buffer) => new Promise<void>((r) => raw.send(b, port, '239.255.41.17', () => r()))

    const body = (c: string, s: number) =>
      Buffer.from(JSON.stringify({ c, f: 'mallory', t: '*', n: 1, s, w: Date.now(), m: say('I lead') }))
    const signed = (b: Buffer) => {
      const header = Buffer.from([1, 1])
      return Buffer.concat([header, createHmac('sha256', KEY).update(header).update(b).digest(), b])
    }
    // A captured good datagram, to replay.
    const captured: Buffer[] = []
    const spy = dgram.createSocket({ type: 'udp4', reuseAddr: true })
    spy.on('message', (b) => captured.push(b))
    await new Promise<void>((r) => spy.bind(port, '239.255.41.17', () => r()))
    spy.addMembership('239.255.41.17', '127.0.0.1')
    good.transport.send('*', say('first'))
    await waitFor('the first good message', () => target.heard.length === 1 && captured.length >= 1)
    spy.close()

    await toGroup(Buffer.alloc(128, 0xff)) // MultiBully crashed on this one
    await toGroup(Buffer.from([1])) // short: MultiBully misaligned every later message
    await toGroup(Buffer.alloc(4096, 1)) // oversized
    await toGroup(Buffer.from([7, 0, 1, 2])) // unknown version
    await toGroup(Buffer.concat([Buffer.from([1, 0]), body('ballot', 1)])) // unsigned while a key is set
    await toGroup(Buffer.concat([Buffer.from([1, 1]), Buffer.alloc(32, 3), body('ballot', 2)])) // forged MAC
    await toGroup(signed(body('other-cluster', 3))) // wrong cluster
    await toGroup(signed(Buffer.from('{"c":"ballot"'))) // signed but malformed
    await toGroup(captured[0] as Buffer) // replayed
    good.transport.send('*', say('second'))
    await waitFor('the second good message', () => target.heard.length === 2)
    raw.close()

    assert.deepEqual(
      target.heard.map((h) => h.msg.text),
      ['first', 'second'],
    )
    assert.deepEqual(Object.fromEntries(target.transport.stats.dropped), {
      malformed: 2, // the short one, and the signed one that is not JSON
      oversized: 1,
      version: 2, // the 128 bytes of 0xff, and version 7
      auth: 2, // unsigned, and a forged MAC
      cluster: 1,
      replay: 1,
    })
    assert.equal(
      target.heard.some((h) => h.from === 'mallory'),
      false,
    )
  })

  test('options name the field at fault', () => {
    const codec = new Codec({ cluster: 'ballot', self: 'x', schema })
    assert.throws(
      () =>
        new MulticastTransport({
          self: 'x',
          group: { host: '10.0.0.1', port: 1 },
          interfaceAddress: '127.0.0.1',
          codec,
        }),
      (e: unknown) => e instanceof InvalidOptionsError && /multicast/.test(e.message),
    )
    assert.throws(() => resolveInterfaceAddress('no-such-if0'), /iface.*no interface named/)
    assert.throws(() => resolveInterfaceAddress('192.0.2.77'), /iface.*no interface on this host/)
    assert.equal(resolveInterfaceAddress('lo'), '127.0.0.1')
    assert.equal(DEFAULT_MULTICAST_GROUP.startsWith('239.255.'), true)
  })
})

/** A fixture process speaking JSON lines. */
class Proc {
  readonly events: Array<Record<string, unknown>> = []
  exited = false
  private buffer = ''
  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString()
      let nl = this.buffer.indexOf('\n')
      while (nl >= 0) {
        this.events.push(JSON.parse(this.buffer.slice(0, nl)))
        this.buffer = this.buffer.slice(nl + 1)
        nl = this.buffer.indexOf('\n')
      }
    })
    child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk))
    child.once('exit', () => {
      this.exited = true
    })
  }
  send(cmd: object): void {
    this.child.stdin?.write(`${JSON.stringify(cmd)}\n`)
  }
  has(pred: (e: Record<string, unknown>) => boolean) {
    return this.events.find(pred)
  }
}

const FIXTURE = new URL('./fixtures/multicast-node.ts', import.meta.url).pathname
const fixtureArgs = (cfg: object) => ['--import', 'tsx', FIXTURE, JSON.stringify(cfg)]

describe('multicast transport in separate processes', () => {
  test('closing the transport leaves nothing running: the process exits by itself', async (t) => {
    const port = await freeUdpPort()
    const child = spawn(
      process.execPath,
      fixtureArgs({ id: 'solo', group: `239.255.41.17:${port}`, iface: 'lo' }),
    )
    t.after(() => {
      if (!p.exited) child.kill('SIGKILL')
    })
    const p = new Proc(child)
    await waitFor('ready', () => p.has((e) => e.ev === 'ready'), 30_000)
    p.send({ cmd: 'close' })
    await waitFor('the process to exit on its own after close', () => p.exited, 30_000)
    assert.equal(child.exitCode, 0)
  })

  test('three hosts in namespaces: every node hears the others, each announcing its own address', async (t) => {
    const lab = NetnsLab.create(3)
    t.after(() => lab.remove())
    const group = '239.255.41.17:9999' // the namespaces are private: the default port cannot clash
    const procs = lab.hosts.map(
      (h, i) =>
        new Proc(
          lab.spawn(h, process.execPath, fixtureArgs({ id: `h${i + 1}`, group, iface: h.iface, key: KEY })),
        ),
    )
    for (const p of procs) await waitFor('ready', () => p.has((e) => e.ev === 'ready'), 30_000)
    assert.deepEqual(
      procs.map((p) => p.has((e) => e.ev === 'ready')?.address),
      lab.hosts.map((h) => h.ip),
    )
    // Multicast joins take a moment to settle on the bridge: say hello until everyone has heard everyone.
    await waitFor(
      'every node to hear both others',
      () => {
        procs.forEach((p, i) => {
          p.send({ cmd: 'send', to: '*', text: `hello from h${i + 1}` })
        })
        return procs.every(
          (p) => new Set(p.events.filter((e) => e.ev === 'msg').map((e) => e.from)).size === 2,
        )
      },
      30_000,
    )
    procs.forEach((p, i) => {
      for (const e of p.events.filter((e) => e.ev === 'msg')) {
        const n = Number(String(e.from).slice(1))
        assert.notEqual(n, i + 1, 'no node hears itself')
        assert.equal(e.addr, `10.200.0.${n}`, 'the announced address is the sender namespace address')
      }
    })
    // Cut h3 off: it hears nothing more until its link is back.
    lab.cut(lab.hosts[2] as (typeof lab.hosts)[number])
    const h3 = procs[2] as Proc
    const before = h3.events.length
    procs[0]?.send({ cmd: 'send', to: '*', text: 'while cut' })
    await waitFor('h2 to hear it', () => procs[1]?.has((e) => e.text === 'while cut'), 30_000)
    await new Promise((r) => setTimeout(r, 300))
    assert.equal(
      h3.events.slice(before).some((e) => e.text === 'while cut'),
      false,
    )
    lab.restore(lab.hosts[2] as (typeof lab.hosts)[number])
    await waitFor(
      'h3 to hear again after its link is restored',
      () => {
        procs[0]?.send({ cmd: 'send', to: '*', text: 'after restore' })
        return h3.has((e) => e.text === 'after restore')
      },
      30_000,
    )
    await lab.remove()
    assert.deepEqual(lab.leftovers(), [], 'nothing of the lab is left on the machine')
  })
})
