// Real raft processes on loopback: election, crash failover, hand-over, observers, restarts and bad input.
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import net from 'node:net'
import { after, afterEach, describe, test } from 'node:test'
import { encodeFrame } from '../src/codec/frame.js'
import { RaftCluster, type RaftProcess, waitFor } from './helpers/raft-cluster.js'

const clusters: RaftCluster[] = []
// Each test's processes end with it (and whatever is left, with the file): the tests run one after
// another, and clusters left running would load the machine for every test after them.
const closeClusters = async () => {
  await Promise.all(clusters.splice(0).map((c) => c.close()))
}
after(closeClusters)

async function cluster(opts: Parameters<typeof RaftCluster.create>[0]) {
  const c = await RaftCluster.create(opts)
  clusters.push(c)
  return c
}

describe('raft across processes', { concurrency: false }, () => {
  afterEach(closeClusters)

  test('3 processes elect one leader that all agree on, and it alone holds the lease', async () => {
    // The default timing here and below wherever a test needs the leader to stay put while it looks:
    // with 'fast' (100 ms election timeout) a loaded machine holds elections of its own.
    const c = await cluster({ size: 3, timing: 'default' })
    c.startAll()
    const leader = await c.waitForAgreement()
    assert.ok(leader.token >= 1)
    // A new leader's lease starts electionTimeoutMin after its win: wait until a node holds it, and it
    // must be the one all agree on, alone. The nodes are asked one after another, so if the leader
    // changed in between (a late heartbeat on a loaded machine) the answers are not of one moment:
    // ask again, up to the deadline.
    for (const deadline = Date.now() + 60_000; ; ) {
      const states = await Promise.all(c.live().map((n) => n.state()))
      const holders = states.filter((s) => s.isLeader).map((s) => (s.cluster as { self: string }).self)
      const agreed = c.agreedLeader()
      if (holders.length === 1 && holders[0] === agreed?.id) break
      const seen = `lease held by [${holders.join(', ')}] while all name ${agreed ? `${agreed.id}@${agreed.token}` : 'no one leader'}`
      assert.ok(Date.now() < deadline, `the agreed leader alone holds the lease: ${seen}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  })

  test('5 processes: kill -9 of the leader gives a new agreed leader with a higher term', async () => {
    const c = await cluster({ size: 5 })
    c.startAll()
    const first = await c.waitForAgreement()
    c.nodes.get(first.id)?.kill('SIGKILL')
    await c.nodes.get(first.id)?.waitExit()
    const second = await c.waitForAgreement()
    assert.notEqual(second.id, first.id)
    assert.ok(second.token > first.token, `token ${second.token} must exceed ${first.token}`)
  })

  test('a graceful stop hands leadership over to another node', async () => {
    const c = await cluster({ size: 3, timing: 'default' })
    c.startAll()
    const first = await c.waitForAgreement()
    const old = c.nodes.get(first.id) as RaftProcess
    old.send('stop')
    await old.waitExit()
    assert.ok(old.events.some((e) => e.ev === 'stopped'))
    const second = await c.waitForAgreement()
    assert.notEqual(second.id, first.id)
    // The successor wins the very next term, with no failed election in between. (On a loaded machine
    // a later term may follow if a heartbeat is late, so look for the win, not at the final state.)
    const won = [...c.nodes.values()].some(
      (n) =>
        n !== old &&
        n.events.some((e) => e.ev === 'change' && e.role === 'leader' && e.token === first.token + 1),
    )
    const history = [...c.nodes.values()].map((n) =>
      [
        n.id,
        ...n.events.filter((e) => e.ev === 'change').map((e) => `${e.role}:${e.leader}@${e.token}`),
      ].join(' '),
    )
    assert.ok(won, `a survivor became leader in term ${first.token + 1}; seen: ${history.join(' | ')}`)
  })

  test('an observer follows the leader and never leads, even when it is the last node standing', async () => {
    const c = await cluster({ size: 3, observers: 1 })
    c.startAll()
    const first = await c.waitForAgreement()
    const observer = c.nodes.get('n4') as RaftProcess
    assert.equal(observer.lastChange()?.role, 'observer')
    c.nodes.get(first.id)?.kill('SIGKILL')
    await c.waitForAgreement()
    const roles = observer.events.filter((e) => e.ev === 'change').map((e) => e.role)
    assert.ok(
      roles.every((r) => r === 'observer'),
      `observer roles: ${roles.join(',')}`,
    )
    assert.ok(!observer.events.some((e) => e.ev === 'lead'))
  })

  test('a restarted node rejoins as a follower without deposing the leader', async () => {
    // That no election happens is the point here, so the cluster must not hold one of its own: a loaded
    // machine (load 30) still did, now and then, with the default timing (a leader silent for 500 ms
    // is replaced). Slower timings make that need a silence of 2 s; the restarted node still hears
    // the leader long before its own timer would fire.
    const c = await cluster({
      size: 3,
      timing: { heartbeatIntervalMs: 100, electionTimeoutMinMs: 2000, electionTimeoutMaxMs: 3000 },
    })
    c.startAll()
    const first = await c.waitForAgreement()
    const followerId = c.members.map((m) => m.id).find((id) => id !== first.id) as string
    c.nodes.get(followerId)?.kill('SIGKILL')
    await c.nodes.get(followerId)?.waitExit()
    const back = c.start(followerId)
    await waitFor('the restarted node to name the leader', () => back.leaderName() === first.id)
    const again = await c.waitForAgreement()
    assert.deepEqual(again, first, `same leader, same term; seen:\n${c.history()}`)
  })

  test('bad frames from a raw socket change nothing and are counted', async () => {
    const c = await cluster({ size: 3, key: 'shared-secret' })
    c.startAll()
    const first = await c.waitForAgreement()
    const target = c.nodes.get(first.id) as RaftProcess
    const address = c.members.find((m) => m.id === first.id)?.address as string
    const [host, port] = [address.split(':')[0], Number(address.split(':')[1])]
    // Claim to be a member other than the target: a frame from the target's own id would be refused as
    // an unknown peer and close the connection before the other bad frames are read.
    const sender = c.members.find((m) => m.id !== first.id)?.id as string

    const forgedLeader = Buffer.from(
      JSON.stringify({
        c: 'ballot',
        f: sender,
        t: first.id,
        n: 1,
        s: 1,
        w: Date.now(),
        m: { t: 'hb', term: 99, seq: 1 },
      }),
    )
    // Signed with the right key but broken inside: still dropped.
    const signed = (body: Buffer) => {
      const header = Buffer.from([1, 1])
      return Buffer.concat([
        header,
        createHmac('sha256', 'shared-secret').update(header).update(body).digest(),
        body,
      ])
    }
    const badSchema = JSON.stringify({
      c: 'ballot',
      f: sender,
      t: first.id,
      n: 1,
      s: 1,
      w: Date.now(),
      m: { t: 'hb', term: -1 },
    })
    const otherCluster = JSON.stringify({
      c: 'other',
      f: sender,
      t: first.id,
      n: 1,
      s: 2,
      w: Date.now(),
      m: { t: 'hb', term: 99, seq: 1 },
    })
    const payloads = [
      signed(Buffer.from('{not json')), // malformed
      signed(Buffer.from(badSchema)), // fails the message schema
      Buffer.from([9, 0, 1, 2, 3]), // unknown version
      Buffer.concat([Buffer.from([1, 0]), forgedLeader]), // no MAC while a key is set: forged
      Buffer.concat([Buffer.from([1, 1]), Buffer.alloc(32, 7), forgedLeader]), // wrong MAC
    ]
    const sock = net.connect({ host, port })
    const sockClosed = new Promise((r) => sock.once('close', r))
    await new Promise((r) => sock.once('connect', r))
    for (const p of payloads) sock.write(encodeFrame(p))
    // A wrong-cluster frame makes the node hang up on us; send it on its own connection.
    const other = net.connect({ host, port })
    const otherClosed = new Promise((r) => other.once('close', r))
    await new Promise((r) => other.once('connect', r))
    other.write(encodeFrame(signed(Buffer.from(otherCluster))))
    await otherClosed
    // Then a frame that claims to be larger than any allowed message: the connection is closed.
    const huge = Buffer.alloc(4)
    huge.writeUInt32BE(10 * 1024 * 1024)
    sock.write(huge)
    await sockClosed

    const state = await waitFor('drops to be counted', () => {
      const s = target.events.filter((e) => e.ev === 'state').at(-1)
      target.send('state')
      const dropped = (s?.transport as { dropped?: Record<string, number> } | undefined)?.dropped ?? {}
      return (dropped.oversized ?? 0) >= 1 && (dropped.cluster ?? 0) >= 1 ? s : undefined
    })
    const dropped = (state.transport as { dropped: Record<string, number> }).dropped
    assert.deepEqual(dropped, { malformed: 1, schema: 1, version: 1, auth: 2, cluster: 1, oversized: 1 })
    // The forged heartbeats claimed term 99 from another member: had any got through, terms would have jumped to 99.
    // (A heavily loaded machine may still hold an ordinary election meanwhile, so compare with 99, not
    // with the first term.)
    const after = await c.waitForAgreement()
    assert.ok(after.token < 99, `no node adopted the forged term (token ${after.token})`)
    for (const n of c.live())
      assert.ok(
        !n.events.some((e) => e.ev === 'change' && e.leader === sender && e.token === 99),
        `${n.id} never followed the forged leader`,
      )
    assert.equal(target.exited, false)
  })

  test('a node that is not in the member list is refused with a counted error', async () => {
    const c = await cluster({ size: 3, timing: 'default' })
    c.startAll()
    const first = await c.waitForAgreement()
    const target = c.nodes.get(first.id) as RaftProcess
    const address = c.members.find((m) => m.id === first.id)?.address ?? ''
    const [host, port] = address.split(':')
    const sock = net.connect({ host, port: Number(port) })
    await new Promise((r) => sock.once('connect', r))
    const body = JSON.stringify({
      c: 'ballot',
      f: 'intruder',
      t: first.id,
      n: 1,
      s: 1,
      w: Date.now(),
      m: { t: 'prevote', term: 50 },
    })
    sock.write(encodeFrame(Buffer.concat([Buffer.from([1, 0]), Buffer.from(body)])))
    await new Promise((r) => sock.once('close', r))
    const err = await waitFor('the refusal to be reported', () => target.events.find((e) => e.ev === 'error'))
    assert.equal(err.code, 'PEER_REFUSED')
    assert.match(err.message as string, /intruder/)
    const s = await target.state()
    assert.deepEqual((s.transport as { refusedPeers: Record<string, number> }).refusedPeers, { intruder: 1 })
    // The intruder changed nothing: the cluster still agrees on a leader, and none of it came near the
    // term the intruder named. (A loaded machine may still hold an ordinary election meanwhile, so
    // compare with 50, not with the first term.)
    const agreed = await c.waitForAgreement()
    assert.ok(agreed.token < 50, `no node took up the intruder's term (token ${agreed.token})`)
    for (const n of c.live())
      assert.ok(
        !n.events.some((e) => e.ev === 'change' && e.leader === 'intruder'),
        `${n.id} never followed the intruder`,
      )
  })

  test('one forged frame naming a term near 2^53 (no key) is refused, and the cluster still elects', async () => {
    // Before the fix this exact frame, sent once to the leader of a cluster without a key, left every
    // node without a leader for good: the next pre-vote (term 2^53) failed every peer's schema.
    const c = await cluster({ size: 3 })
    c.startAll()
    const first = await c.waitForAgreement()
    const target = c.nodes.get(first.id) as RaftProcess
    const address = c.members.find((m) => m.id === first.id)?.address ?? ''
    const [host, port] = address.split(':')
    const sender = c.members.find((m) => m.id !== first.id)?.id as string
    const body = JSON.stringify({
      c: 'ballot',
      f: sender,
      t: first.id,
      n: 1,
      s: 1,
      w: Date.now(),
      m: { t: 'hb-resp', term: 9007199254740991, seq: 0, ack: false },
    })
    const sock = net.connect({ host, port: Number(port) })
    await new Promise((r) => sock.once('connect', r))
    sock.end(encodeFrame(Buffer.concat([Buffer.from([1, 0]), Buffer.from(body)])))
    const err = await waitFor('the refusal to be reported', () =>
      target.events.find((e) => e.ev === 'error' && /term-jump|2\^32/.test(String(e.message))),
    )
    assert.equal(err.code, 'PEER_REFUSED')
    // The leader hands over: a new term is proposed and accepted, so elections still work.
    target.send('resign')
    let next = await c.waitForAgreement()
    for (let i = 0; i < 1000 && next.token <= first.token; i++) {
      await new Promise((r) => setTimeout(r, 20))
      next = await c.waitForAgreement()
    }
    assert.ok(next.token > first.token, 'a later term was elected')
    assert.ok(next.token < 1000, `terms stayed small (token ${next.token})`)
  })

  test('durable vote: the term survives a restart of every node', async () => {
    const c = await cluster({ size: 3 })
    c.startAll()
    const first = await c.waitForAgreement()
    for (const n of c.live()) n.kill('SIGKILL')
    await Promise.all([...c.nodes.values()].map((n) => n.waitExit()))
    for (const m of c.members) c.start(m.id)
    const second = await c.waitForAgreement()
    assert.ok(second.token > first.token, `term ${second.token} after restart must exceed ${first.token}`)
  })
})
