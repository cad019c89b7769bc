/**
 * Fuzzing live processes from outside: a 3-node raft cluster of `ballot run` processes (TCP, with a key)
 * and a 3-node bully group over loopback multicast (with a key) get the same hostile inputs a stranger
 * could send (no key: the generator's unsigned inputs), on their cluster ports and group. While they
 * do, every node's GET /leader is polled: the leader must never change, no process may die, and each
 * node's drop counters (GET /status) must grow by reason. Needs the built CLI (npm run build).
 */
import dgram from 'node:dgram'
import net from 'node:net'
import { encodeFrame, FrameDecoder } from '../../src/codec/frame.js'
import { SimRandom } from '../../src/sim/rng.js'
import { DaemonCluster, type DaemonProc, waitForAsync } from '../../test/helpers/daemon.js'
import { freePorts, freeUdpPort } from '../../test/helpers/raft-cluster.js'
import { nextInput } from './frames.js'

export interface LiveReport {
  algo: 'raft' | 'bully'
  /** Inputs sent, replays included. */
  inputs: number
  /** Of which replays of frames members really sent (raft: recorded on the way to n3). */
  replays?: number
  elapsedMs: number
  leader: string
  /** Distinct (leader, token) pairs any node named during the run: must be exactly one. */
  leadersSeen: string[]
  polls: number
  /** Processes that exited during the run: must be none. */
  died: string[]
  /** Growth of each node's drop counters during the run, by reason. */
  droppedByNode: Record<string, Record<string, number>>
}

const KEY = 'live-fuzz-shared-key'

async function droppedOf(p: DaemonProc): Promise<Record<string, number>> {
  const status = JSON.parse((await p.get('/status')).body) as {
    transport: { dropped: Record<string, number> }
  }
  return status.transport.dropped
}

function growth(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0)
  return out
}

/** Polls every node's /leader until `stop` is set; collects every leader named and who died. */
function watchLeaders(procs: DaemonProc[]) {
  const seen = new Set<string>()
  let polls = 0
  let stop = false
  const done = (async () => {
    while (!stop) {
      const named = await Promise.all(procs.map((p) => p.leaderJson()))
      for (const n of named) if (n) seen.add(`${n.id}@${n.token}`)
      polls++
      await new Promise((r) => setTimeout(r, 50))
    }
  })()
  return {
    async finish() {
      stop = true
      await done
      return { seen: [...seen], polls }
    },
  }
}

/** Sends each input on its own connection to one node's cluster port, 16 connections at a time. */
async function sendOverTcp(port: number, inputs: Buffer[]): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < inputs.length) {
      const bytes = inputs[next++] as Buffer
      await new Promise<void>((resolve) => {
        const sock = net.connect({ host: '127.0.0.1', port })
        sock.on('error', () => resolve())
        sock.on('close', () => resolve())
        sock.on('connect', () => sock.end(bytes))
        sock.setTimeout(5000, () => sock.destroy())
      })
    }
  }
  await Promise.all(Array.from({ length: 16 }, worker))
}

export async function fuzzLiveRaft(seed: number, inputs: number): Promise<LiveReport> {
  const rng = new SimRandom(seed)
  const cluster = await DaemonCluster.create(3, { timing: 'default' })
  const recorders: Recorder[] = []
  try {
    // n1 and n2 reach n3 through a recorder (their --nodes name it for n3), so real frames can be
    // replayed at n3 later; n3 itself listens on its own port.
    const n3 = cluster.members[2] as { id: string; port: number }
    const recorder = await Recorder.start(n3.port)
    recorders.push(recorder)
    const realPort = n3.port
    n3.port = recorder.port
    const procs = cluster.members.slice(0, 2).map((m) => cluster.start(m.id, ['--key', KEY]))
    n3.port = realPort
    procs.push(cluster.start(n3.id, ['--key', KEY]))
    const agreed = await cluster.waitForAgreement()
    await waitForAsync('frames recorded on the way to n3', async () => recorder.frames().length >= 50)
    const before = await Promise.all(procs.map(droppedOf))
    const watch = watchLeaders(procs)
    const started = performance.now()
    // Replays: every recorded connection again from its start, then single frames on new connections.
    const replays = [...recorder.streams(), ...recorder.frames().slice(0, 500)]
    await sendOverTcp(realPort, replays)
    const perNode = cluster.members.map(() => [] as Buffer[])
    for (let i = 0; i < inputs; i++) {
      const idx = i % cluster.members.length
      const m = cluster.members[idx] as { id: string }
      const input = nextInput(rng, {
        algo: 'raft',
        cluster: 'ballot',
        key: undefined, // a stranger: no key
        self: m.id,
        members: cluster.members.map((x) => x.id),
        incarnations: new Map(),
        wall: Date.now(),
        maxMessageBytes: 64 * 1024,
        captured: [],
      })
      perNode[idx]?.push(input.bytes)
    }
    await Promise.all(cluster.members.map((m, i) => sendOverTcp(m.port, perNode[i] ?? [])))
    const elapsedMs = performance.now() - started
    // Let the leader keep leading a while after the flood: a late effect would show here.
    await new Promise((r) => setTimeout(r, 1500))
    const { seen, polls } = await watch.finish()
    const after = await Promise.all(procs.map(droppedOf))
    return {
      algo: 'raft',
      inputs: inputs + replays.length,
      replays: replays.length,
      elapsedMs,
      leader: `${agreed.id}@${agreed.token}`,
      leadersSeen: seen,
      polls,
      died: procs.filter((p) => p.exited).map((p) => p.name),
      droppedByNode: Object.fromEntries(
        procs.map((p, i) => [p.name, growth(before[i] ?? {}, after[i] ?? {})]),
      ),
    }
  } finally {
    for (const r of recorders) r.close()
    await cluster.close()
  }
}

/** A loopback TCP forwarder that keeps the first bytes of the newest connections through it. */
class Recorder {
  private readonly recorded: Buffer[][] = []
  private readonly sockets = new Set<net.Socket>()

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<Recorder> {
    const holder: { r?: Recorder } = {}
    const server = net.createServer((client) => holder.r?.accept(client, targetPort))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
    holder.r = new Recorder(server, (server.address() as net.AddressInfo).port)
    return holder.r
  }

  private accept(client: net.Socket, targetPort: number): void {
    const chunks: Buffer[] = []
    let kept = 0
    // The newest 16 connections: a link redialled (silent, or under load) leaves its old one behind.
    this.recorded.push(chunks)
    if (this.recorded.length > 16) this.recorded.shift()
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort })
    for (const sock of [client, upstream]) {
      this.sockets.add(sock)
      sock.on('error', () => {
        client.destroy()
        upstream.destroy()
      })
      sock.on('close', () => this.sockets.delete(sock))
    }
    client.on('data', (chunk: Buffer) => {
      if (kept < 256 * 1024) {
        chunks.push(chunk)
        kept += chunk.length
      }
    })
    client.pipe(upstream)
    upstream.pipe(client)
  }

  /** Each recorded connection's bytes from its start. */
  streams(): Buffer[] {
    return this.recorded.map((c) => Buffer.concat(c)).filter((b) => b.length > 0)
  }

  /** Every complete frame recorded, each framed again on its own. */
  frames(): Buffer[] {
    const out: Buffer[] = []
    for (const stream of this.streams()) {
      const result = new FrameDecoder(64 * 1024).push(stream)
      for (const f of result.frames) out.push(encodeFrame(f))
    }
    return out
  }

  close(): void {
    this.server.close()
    for (const sock of this.sockets) sock.destroy()
  }
}

export async function fuzzLiveBully(seed: number, inputs: number): Promise<LiveReport> {
  const rng = new SimRandom(seed)
  const cluster = await DaemonCluster.create(3, { timing: 'default' })
  const groupPort = await freeUdpPort()
  // A group unique to this run, so runs side by side never hear each other.
  const group = `239.255.${rng.int(1, 254)}.${rng.int(1, 254)}`
  const sender = dgram.createSocket({ type: 'udp4', reuseAddr: true })
  try {
    const procs = cluster.members.map((m, i) =>
      cluster.start(m.id, [
        '--algo',
        'bully',
        '--multicast',
        `${group}:${groupPort}`,
        '--iface',
        '127.0.0.1',
        '--pid',
        String(i + 1),
        '--key',
        KEY,
      ]),
    )
    const agreed = await cluster.waitForAgreement()
    const ids = await waitForAsync('every bully id', async () => {
      const all = await Promise.all(
        procs.map(async (p) => (JSON.parse((await p.get('/status')).body) as { self: string }).self),
      )
      return all.every(Boolean) ? all : undefined
    })
    await new Promise<void>((resolve) => sender.bind(0, '127.0.0.1', () => resolve()))
    sender.setMulticastInterface('127.0.0.1')
    sender.setMulticastTTL(1)
    const before = await Promise.all(procs.map(droppedOf))
    const watch = watchLeaders(procs)
    const started = performance.now()
    for (let i = 0; i < inputs; i++) {
      const input = nextInput(rng, {
        algo: 'bully',
        cluster: 'ballot',
        key: undefined,
        self: ids[i % ids.length] as string,
        members: ids,
        incarnations: new Map(),
        wall: Date.now(),
        maxMessageBytes: 64 * 1024,
        captured: [],
      })
      // Datagrams over 64 KiB cannot be sent at all; the receivers' size check is covered in process.
      if (input.bytes.length > 65_000) continue
      await new Promise<void>((resolve) => sender.send(input.bytes, groupPort, group, () => resolve()))
      // Pace the flood a little: loopback multicast drops what the receivers' buffers cannot hold.
      if (i % 200 === 0) await new Promise((r) => setTimeout(r, 5))
    }
    const elapsedMs = performance.now() - started
    await new Promise((r) => setTimeout(r, 1500))
    const { seen, polls } = await watch.finish()
    const after = await Promise.all(procs.map(droppedOf))
    return {
      algo: 'bully',
      inputs,
      elapsedMs,
      leader: `${agreed.id}@${agreed.token}`,
      leadersSeen: seen,
      polls,
      died: procs.filter((p) => p.exited).map((p) => p.name),
      droppedByNode: Object.fromEntries(
        procs.map((p, i) => [p.name, growth(before[i] ?? {}, after[i] ?? {})]),
      ),
    }
  } finally {
    sender.close()
    await cluster.close()
  }
}

export { freePorts }
