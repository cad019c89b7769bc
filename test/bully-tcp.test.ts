/**
 * Bully over TCP with real processes on loopback: the Go bully daemon's stories (a static list that
 * grows when a new node shows up, the leader dying, a node coming back), plus forged frames.
 */
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import net from 'node:net'
import { after, afterEach, describe, test } from 'node:test'
import { encodeFrame } from '../src/codec/frame.js'
import { BullyCluster } from './helpers/bully-cluster.js'
import { sendForged } from './helpers/forge.js'
import { freePorts, type RaftProcess, waitFor } from './helpers/raft-cluster.js'

const clusters: BullyCluster[] = []
// Each test's processes end with it (and whatever is left, with the file): the tests run one after
// another, and clusters left running would load the machine for every test after them.
const closeClusters = async () => {
  await Promise.all(clusters.splice(0).map((c) => c.close()))
}
after(closeClusters)

function cluster(): BullyCluster {
  const c = new BullyCluster()
  clusters.push(c)
  return c
}

describe('bully over TCP', () => {
  afterEach(closeClusters)

  test('the highest pid leads; kill -9 elects the next; the old leader returns and takes over', async () => {
    const c = cluster()
    const ports = await freePorts(3)
    const addrs = ports.map((p) => `127.0.0.1:${p}`)
    // The same list on every node, as with the Go daemon's -nodes flag.
    addrs.forEach((a, i) => {
      c.start(`p${i + 1}`, { listen: a, nodes: addrs, pid: i + 1 })
    })
    const first = await c.waitForLeader(addrs[2])
    assert.equal(first.address, addrs[2], 'every follower points at the leader by its address')

    c.nodes.get('p3')?.kill('SIGKILL')
    await c.nodes.get('p3')?.waitExit()
    const second = await c.waitForLeader(addrs[1])
    assert.ok(second.token > first.token, `token ${second.token} must exceed ${first.token}`)

    c.start('p3', { listen: addrs[2] as string, nodes: addrs, pid: 3 })
    const third = await c.waitForLeader(addrs[2])
    assert.ok(third.token > second.token, `the returning node claims a newer epoch (${third.token})`)
  })

  test('a node started with a longer list is added by the running nodes, and leads if it is highest', async () => {
    const c = cluster()
    const ports = await freePorts(4)
    const [a, b, x, y] = ports.map((p) => `127.0.0.1:${p}`) as [string, string, string, string]
    c.start('a', { listen: a, nodes: [a, b], pid: 1 })
    c.start('b', { listen: b, nodes: [a, b], pid: 2 })
    const first = await c.waitForLeader(b)
    // A lower newcomer that knows everyone: it follows, and the others learn it without a restart.
    c.start('y', { listen: y, nodes: [a, b, y], pid: 0 })
    await c.waitForLeader(b)
    // A higher newcomer: it takes over through one election.
    c.start('x', { listen: x, nodes: [a, b, x], pid: 9 })
    const next = await c.waitForLeader(x)
    assert.ok(next.token > first.token)
    const state = await (c.nodes.get('a') as NonNullable<ReturnType<typeof c.nodes.get>>).state()
    const members = (state.cluster as { members: Array<{ id: string; address?: string }> }).members
    assert.deepEqual(members.map((m) => m.id).sort(), [a, b, x, y].sort(), 'a learned both newcomers')
    // A node that is down at start is retried, not fatal: y's list names a node that never starts.
    assert.equal(c.nodes.get('a')?.exited, false)
  })

  test('an epoch near 2^53 from a stranger (no key) is dropped and counted; elections and restarts go on', async () => {
    const c = cluster()
    const ports = await freePorts(3)
    const addrs = ports.map((p) => `127.0.0.1:${p}`)
    addrs.forEach((a, i) => {
      c.start(`e${i + 1}`, { listen: a, nodes: addrs, pid: i + 1 })
    })
    const first = await c.waitForLeader(addrs[2])
    // The frames from the issue: well-formed, schema-valid messages naming the largest safe integer as
    // their epoch, from a node nobody knows with the highest pid there is. Believed, every node would
    // follow it at epoch 2^53 - 1, and the next claim (2^53) would fail every peer's schema and the
    // claimer's own state file.
    const NEAR = Number.MAX_SAFE_INTEGER
    const forged = [
      { from: 'mallory', msg: { t: 'claim', pid: 1e9, addr: '127.0.0.1:1', epoch: NEAR } },
      { from: 'mallory', msg: { t: 'hb', pid: 1e9, addr: '127.0.0.1:1', epoch: NEAR } },
      { from: 'mallory', msg: { t: 'hello', pid: 0, addr: '127.0.0.1:1', epoch: NEAR } },
    ]
    for (const a of addrs) await sendForged(a, forged)
    const followedForger = (n: RaftProcess) =>
      n.events.some((e) => e.ev === 'change' && e.leader === 'mallory')
    for (const n of c.live()) {
      // Either fact shows the frames were read: the drops counted, or (the hole) the forger followed.
      const dropped = await waitFor(`${n.id} to count the drops (or follow the forger)`, () => {
        if (followedForger(n)) return { followed: 'mallory' }
        const s = n.events.filter((e) => e.ev === 'state').at(-1)
        n.send('state')
        const d = (s?.transport as { dropped?: Record<string, number> } | undefined)?.dropped ?? {}
        return (d['term-jump'] ?? 0) >= forged.length ? d : undefined
      })
      assert.deepEqual(
        dropped,
        { 'term-jump': forged.length },
        `${n.id}: dropped for the epoch, nothing else`,
      )
    }
    // (On a loaded machine a heartbeat can come late and the leader claim again: the same leader, and
    // an epoch nowhere near 2^53, is what matters.)
    const now = await c.waitForLeader(addrs[2])
    assert.ok(now.token >= first.token && now.token < 2 ** 32, `token ${now.token}`)
    assert.ok(!c.live().some(followedForger), 'nobody followed the forger')

    // Elections go on: kill -9 the leader, the next one is elected with a larger token...
    const top = c.nodes.get('e3') as NonNullable<ReturnType<typeof c.nodes.get>>
    top.kill('SIGKILL')
    await top.waitExit()
    const second = await c.waitForLeader(addrs[1])
    assert.ok(second.token > now.token && second.token < 2 ** 32, `token ${second.token}`)
    // ...and the restarted node reads its own state file and takes over with a larger one still.
    const back = c.start('e3', { listen: addrs[2] as string, nodes: addrs, pid: 3 })
    const third = await c.waitForLeader(addrs[2])
    assert.ok(third.token > second.token, `token ${third.token} after ${second.token}`)
    assert.ok(!back.events.some((e) => e.ev === 'error'), JSON.stringify(back.events))
  })

  test('forged and malformed frames change nothing and are counted', async () => {
    const c = cluster()
    const ports = await freePorts(2)
    const addrs = ports.map((p) => `127.0.0.1:${p}`)
    // The default timing: this test is about frames, not speed, and with 'fast' a loaded machine makes
    // k1 claim between two of k2's heartbeats.
    addrs.forEach((a, i) => {
      c.start(`k${i + 1}`, { listen: a, nodes: addrs, pid: i + 1, key: 'the-key', timing: 'default' })
    })
    const first = await c.waitForLeader(addrs[1])
    const target = c.nodes.get('k1') as NonNullable<ReturnType<typeof c.nodes.get>>
    const [host, port] = [(addrs[0] as string).split(':')[0], ports[0] as number]
    const claim = (epoch: number) =>
      Buffer.from(
        JSON.stringify({
          c: 'ballot',
          f: 'mallory',
          t: '*',
          n: 1,
          s: epoch,
          w: Date.now(),
          m: { t: 'claim', pid: 1e9, addr: '127.0.0.1:1', epoch },
        }),
      )
    const header = Buffer.from([1, 1])
    const sock = net.connect({ host, port })
    const closed = new Promise((r) => sock.once('close', r))
    await new Promise((r) => sock.once('connect', r))
    // "I am leader" with the highest pid there is: unsigned, then with a MAC made with the wrong key.
    sock.write(encodeFrame(Buffer.concat([Buffer.from([1, 0]), claim(100)])))
    const wrongMac = createHmac('sha256', 'not-the-key').update(header).update(claim(101)).digest()
    sock.write(encodeFrame(Buffer.concat([header, wrongMac, claim(101)])))
    sock.write(encodeFrame(Buffer.from('\x01\x00{oops')))
    const huge = Buffer.alloc(4)
    huge.writeUInt32BE(64 * 1024 * 1024)
    sock.write(huge)
    await closed
    const state = await waitFor('the drops to show', () => {
      const s = target.events.filter((e) => e.ev === 'state').at(-1)
      target.send('state')
      const d = (s?.transport as { dropped?: Record<string, number> } | undefined)?.dropped ?? {}
      return (d.oversized ?? 0) >= 1 ? s : undefined
    })
    assert.deepEqual((state.transport as { dropped: Record<string, number> }).dropped, {
      auth: 3,
      oversized: 1,
    })
    const members = (state.cluster as { members: Array<{ id: string }> }).members.map((m) => m.id)
    assert.ok(!members.includes('mallory'), `k1 never learned of the forger: ${members.join(', ')}`)
    // The same leader. (Not necessarily the same epoch: on a loaded machine a heartbeat can come late,
    // k1 claim and k2 claim again above it.)
    const now = await c.waitForLeader(addrs[1])
    assert.ok(now.token >= first.token, `epoch ${now.token} after ${first.token}`)
    assert.ok(
      !c.live().some((n) => n.events.some((e) => e.ev === 'change' && e.leader === 'mallory')),
      'nobody followed the forger',
    )
  })
})
