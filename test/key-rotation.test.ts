/**
 * Rotating the shared key of a live 5-node raft cluster of real processes, node by node, with no
 * election and no message dropped for its key.
 *
 * The first key of a list signs and every key is accepted, so a rotation takes three rounds over the
 * nodes: [old, new] (accept new, still sign with old), then [new, old] (sign with new: every node
 * accepts it by now), then [new]. Skipping the first round would have a node sign with a key its peers
 * do not accept yet. Followers are restarted with the new list (as `ballot run --key new,old` would
 * be); the leader, which cannot restart without an election, takes each list live (`setKey`).
 */
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { sendForged } from './helpers/forge.js'
import { RaftCluster, type RaftProcess, waitFor } from './helpers/raft-cluster.js'

const OLD = 'the-old-cluster-key'
const NEW = 'the-new-cluster-key'

let cluster: RaftCluster | undefined
after(() => cluster?.close())

interface NodeState {
  isLeader: boolean
  cluster: { term: number; leader?: { id: string } }
  transport: { dropped: Record<string, number> }
}

test('a live 5-node cluster rotates its key node by node with no election and no dropped message', async () => {
  const keys = new Map<string, string[]>()
  // Slow elections: that no election happens is the point, so a loaded machine must not hold one of its
  // own (a 2 s silence is needed for that); a restarted follower hears the leader within milliseconds.
  cluster = await RaftCluster.create({
    size: 5,
    key: OLD,
    timing: { heartbeatIntervalMs: 100, electionTimeoutMinMs: 2000, electionTimeoutMaxMs: 3000 },
    extra: (id) => ({ key: keys.get(id) ?? [OLD] }),
  })
  const c = cluster
  c.startAll()
  const first = await c.waitForAgreement()
  const drops: string[] = []
  const checkDrops = (node: RaftProcess, s: NodeState) => {
    for (const [reason, n] of Object.entries(s.transport.dropped))
      if (n > 0) drops.push(`${node.id} (pid ${node.pid}) dropped ${n} as ${reason}`)
  }

  for (const list of [[OLD, NEW], [NEW, OLD], [NEW]]) {
    for (const m of c.members) {
      keys.set(m.id, list)
      const node = c.nodes.get(m.id) as RaftProcess
      if (m.id === first.id) {
        const before = node.events.length
        node.send(`key ${list.join(',')}`)
        await waitFor(`the leader to take ${list}`, () =>
          node.events.slice(before).some((e) => e.ev === 'key-set'),
        )
      } else {
        checkDrops(node, (await node.state()) as unknown as NodeState)
        node.send('stop-now')
        await node.waitExit()
        const back = c.start(m.id)
        await waitFor(`${m.id} back with ${list} to name the leader`, () => back.leaderName() === first.id)
      }
      const now = await c.waitForAgreement()
      assert.deepEqual(now, first, `same leader and term after ${m.id} took ${list}:\n${c.history()}`)
    }
  }

  for (const node of c.live()) {
    const s = (await node.state()) as unknown as NodeState
    checkDrops(node, s)
    assert.equal(s.cluster.term, first.token, `${node.id} is still in term ${first.token}`)
  }
  assert.deepEqual(drops, [], 'no message was dropped, for its key or any other reason')
  // No process ever saw another leadership, nor a candidate's term.
  for (const node of c.nodes.values())
    for (const e of node.events)
      if (e.ev === 'change' && e.leader !== undefined)
        assert.ok(e.leader === first.id && e.token === first.token, `${node.id} saw ${e.leader}@${e.token}`)
  const leader = c.nodes.get(first.id) as RaftProcess
  assert.ok(
    !leader.events.some((e) => e.ev === 'lead' && e.leading === false),
    'the leader never lost its lease',
  )
  // The old key is refused now: a message signed with it is dropped and counted as auth.
  const address = c.members.find((m) => m.id === first.id)?.address as string
  const sender = c.members.find((m) => m.id !== first.id)?.id as string
  await sendForged(address, [{ from: sender, to: first.id, msg: { t: 'hb', term: first.token, seq: 1 } }], {
    key: OLD,
  })
  const deadline = Date.now() + 60_000
  let auth = 0
  while (auth === 0 && Date.now() < deadline) {
    auth = ((await leader.state()) as unknown as NodeState).transport.dropped.auth ?? 0
    if (auth === 0) await new Promise((r) => setTimeout(r, 50))
  }
  assert.equal(auth, 1, 'a message signed with the old key is refused')
})
