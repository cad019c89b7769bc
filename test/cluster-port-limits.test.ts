/**
 * What an unauthenticated connection to a live node's cluster port may hold, and for how long: raw
 * sockets against a real raft process. A connection that has not yet sent a valid frame is closed when
 * it stays quiet (2 s), when it drips bytes past the deadline (5 s), when it announces a frame larger than
 * 4 KiB (the full 64 KiB bound applies only once it has proved itself), and the oldest goes when more
 * than 64 wait at once. Each close is counted by reason; the cluster's own connections, quiet or not,
 * are untouched and the leader stays put.
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { after, test } from 'node:test'
import { RaftCluster, type RaftProcess, waitFor } from './helpers/raft-cluster.js'

interface Transport {
  connectionsDropped: Record<string, number>
  unauthenticatedConnections: number
  dropped: Record<string, number>
}

let cluster: RaftCluster | undefined
const sockets = new Set<net.Socket>()
after(async () => {
  for (const s of sockets) s.destroy()
  await cluster?.close()
})

/** Opens a raw connection; resolves once connected. `closedAt` is set when the node closes it. */
async function open(address: string) {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.split(':').at(-1))]
  const sock = net.connect({ host, port })
  sockets.add(sock)
  const state = { sock, closedAt: undefined as number | undefined, openedAt: 0 }
  sock.on('error', () => {})
  sock.on('close', () => {
    state.closedAt = Date.now()
    sockets.delete(sock)
  })
  await new Promise((r) => sock.once('connect', r))
  state.openedAt = Date.now()
  return state
}

async function transportOf(node: RaftProcess): Promise<Transport> {
  return (await node.state()).transport as Transport
}

test('unauthenticated connections are bounded in bytes, time and number, and counted', async () => {
  // Slow elections: the point is that nothing here moves the leader, so a loaded machine must not
  // hold an election of its own meanwhile.
  cluster = await RaftCluster.create({
    size: 3,
    key: 'cluster-key',
    timing: { heartbeatIntervalMs: 100, electionTimeoutMinMs: 2000, electionTimeoutMaxMs: 3000 },
  })
  const c = cluster
  c.startAll()
  const first = await c.waitForAgreement()
  const target = c.nodes.get(first.id) as RaftProcess
  const address = c.members.find((m) => m.id === first.id)?.address as string

  // 1. Silent: closed as idle, before the deadline.
  const silent = await open(address)
  // 2. Half a frame, then nothing: also idle.
  const half = await open(address)
  const prefix = Buffer.alloc(4)
  prefix.writeUInt32BE(1000)
  half.sock.write(Buffer.concat([prefix, Buffer.alloc(500, 1)]))
  // 3. Dripping one byte every 300 ms of a frame it never finishes: closed at the deadline.
  const drip = await open(address)
  const dripPrefix = Buffer.alloc(4)
  dripPrefix.writeUInt32BE(4000)
  drip.sock.write(dripPrefix)
  const dripper = setInterval(() => drip.sock.writable && drip.sock.write(Buffer.from([7])), 300)
  // 4. A frame of 10 KiB: within the 64 KiB bound for members, far over what a stranger may send.
  const big = await open(address)
  const bigPrefix = Buffer.alloc(4)
  bigPrefix.writeUInt32BE(10 * 1024)
  big.sock.write(Buffer.concat([bigPrefix, Buffer.alloc(2048, 1)]))

  await waitFor('the oversized frame to be refused', () => big.closedAt)
  await waitFor('the silent connections to be closed', () => silent.closedAt && half.closedAt, 30_000)
  await waitFor('the dripping connection to be closed', () => drip.closedAt, 30_000)
  clearInterval(dripper)
  const silentFor = (silent.closedAt as number) - silent.openedAt
  const dripFor = (drip.closedAt as number) - drip.openedAt
  assert.ok(
    dripFor > silentFor,
    `dripping kept it open longer (${dripFor} ms) than silence (${silentFor} ms)`,
  )
  let t = await transportOf(target)
  assert.equal(t.connectionsDropped.idle, 2, JSON.stringify(t))
  assert.equal(t.connectionsDropped['handshake-timeout'], 1, JSON.stringify(t))
  assert.equal(t.connectionsDropped['preauth-oversized'], 1, JSON.stringify(t))
  assert.equal(t.dropped.oversized, 1, 'the frame is also counted as an oversized message')

  // 5. 80 connections at once that never speak: at most 64 are kept; the oldest go first.
  const crowd: Array<Awaited<ReturnType<typeof open>>> = []
  for (let i = 0; i < 80; i++) crowd.push(await open(address))
  await waitFor('16 of the crowd to be turned away', () => crowd.filter((s) => s.closedAt).length >= 16)
  t = await transportOf(target)
  assert.ok(t.unauthenticatedConnections <= 64, `${t.unauthenticatedConnections} waiting`)
  assert.equal(t.connectionsDropped['preauth-limit'], 16, JSON.stringify(t))
  const turnedAway = crowd.map((s, i) => (s.closedAt ? i : -1)).filter((i) => i >= 0)
  assert.deepEqual(turnedAway.slice(0, 16), [...Array(16).keys()], 'the oldest went first')
  await waitFor('the rest of the crowd to time out', () => crowd.every((s) => s.closedAt), 30_000)
  t = await transportOf(target)
  assert.equal(t.unauthenticatedConnections, 0)

  // The members' own connections (quiet ones among them: followers never write to each other) stayed
  // up past every deadline above, and nothing moved the leader.
  assert.deepEqual(await c.waitForAgreement(), first, c.history())
  for (const n of c.live()) {
    const d = (await transportOf(n)).connectionsDropped
    for (const reason of ['idle', 'handshake-timeout', 'preauth-limit'])
      if (n !== target) assert.equal(d[reason] ?? 0, 0, `${n.id} closed no member connection as ${reason}`)
  }
  assert.ok(
    !c.live().some((n) => n.events.some((e) => e.ev === 'change' && e.token !== first.token && e.leader)),
    `no other leadership was seen:\n${c.history()}`,
  )
})
