// The Election interface on real RaftElection nodes in one process, over real TCP on loopback.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { InvalidOptionsError, type LeadershipChange, RaftElection, type RaftPeer } from '../src/index.js'
import { freePorts, waitFor } from './helpers/raft-cluster.js'

const running: RaftElection[] = []
const dirs: string[] = []
after(async () => {
  await Promise.all(running.map((e) => e.stop({ handover: false })))
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

async function trio(
  extra: (id: string) => Partial<ConstructorParameters<typeof RaftElection>[0]> = () => ({}),
) {
  const ports = await freePorts(3)
  const members: RaftPeer[] = ports.map((p, i) => ({ id: `e${i + 1}`, address: `127.0.0.1:${p}` }))
  const nodes = members.map((m) => new RaftElection({ id: m.id, members, timing: 'fast', ...extra(m.id) }))
  running.push(...nodes)
  return nodes
}

const leaderOf = (nodes: RaftElection[]) => waitFor('a leader', () => nodes.find((n) => n.isLeader()))

describe('RaftElection', () => {
  test('whileLeader runs only while leading and aborts the moment leadership is handed over', async () => {
    const nodes = await trio()
    const runs: Array<{ id: string; token: bigint; aborted: boolean }> = []
    for (const n of nodes) {
      n.whileLeader(async (signal, lead) => {
        const run = { id: n.id, token: lead.token, aborted: false }
        runs.push(run)
        await new Promise<void>((resolve) =>
          signal.addEventListener('abort', () => {
            run.aborted = true
            resolve()
          }),
        )
      })
    }
    await Promise.all(nodes.map((n) => n.start()))
    const first = await leaderOf(nodes)
    await waitFor('work to start', () => runs.length === 1)
    assert.equal(runs[0]?.id, first.id)
    await first.resign()
    assert.equal(runs[0]?.aborted, true, 'aborted synchronously with the resignation')
    assert.equal(first.isLeader(), false)
    const second = await leaderOf(nodes)
    assert.notEqual(second.id, first.id)
    await waitFor('work on the new leader', () => runs.length === 2)
    assert.equal(runs[1]?.id, second.id)
    assert.ok((runs[1]?.token ?? 0n) > (runs[0]?.token ?? 0n), 'the fencing token grew')
  })

  test('changes() yields every change in order and ends when the election stops; callbacks get a signal', async () => {
    const nodes = await trio()
    const [a] = nodes as [RaftElection]
    const seen: LeadershipChange[] = []
    const done = (async () => {
      for await (const c of a.changes()) seen.push(c)
    })()
    const entered: AbortSignal[] = []
    a.on('enterFollower', ({ signal, timeoutMs }) => {
      assert.ok(timeoutMs > 0)
      entered.push(signal)
    })
    await Promise.all(nodes.map((n) => n.start()))
    await waitFor('a leader known to a', () => a.leader())
    await a.stop()
    await done
    assert.equal(seen.at(-1)?.role, 'stopped')
    assert.ok(seen.some((c) => c.leader !== undefined))
    // `previous` is the leadership before `leader` (kept across gaps with no leader), or, while nobody
    // leads, the one that just ended.
    let known: LeadershipChange['leader']
    let prior: LeadershipChange['leader']
    for (const c of seen) {
      if (c.leader && (c.leader.id !== known?.id || c.leader.token !== known?.token)) {
        prior = known
        known = c.leader
      }
      assert.deepEqual(c.previous, c.leader ? prior : known)
      assert.equal(typeof c.leading, 'boolean')
    }
    if (entered.length > 0)
      assert.equal(entered.at(-1)?.aborted, true, 'leaving follower state aborts its signal')
  })

  test('clusterState names every member with its role, tags and reachability', async () => {
    const nodes = await trio((id) => ({ tags: { name: id } }))
    await Promise.all(nodes.map((n) => n.start()))
    const lead = await leaderOf(nodes)
    const follower = nodes.find((n) => n !== lead) as RaftElection
    await waitFor('tags and roles to spread', () => {
      const s = follower.clusterState()
      return s.members.every((m) => m.tags.name === m.id && m.reachable) && s.leader?.id === lead.id
    })
    const s = follower.clusterState()
    assert.equal(s.members.find((m) => m.id === lead.id)?.role, 'leader')
    assert.equal(s.leader?.tags?.name, lead.id)
    assert.equal(s.members.filter((m) => m.self).length, 1)
  })

  test('bad options are refused with an error naming the field', async () => {
    const members = [{ id: 'x', address: '127.0.0.1:1' }]
    assert.throws(
      () => new RaftElection({ id: 'y', members }),
      (e) => e instanceof InvalidOptionsError && e.field === 'id',
    )
    assert.throws(
      () =>
        new RaftElection({
          id: 'x',
          members,
          timing: { electionTimeoutMinMs: 300, electionTimeoutMaxMs: 200 },
        }),
      /timing.electionTimeoutMaxMs: must be greater than electionTimeoutMinMs/,
    )
    assert.throws(
      () => new RaftElection({ id: 'x', members, timing: { heartbeatIntervalMs: 400 } }),
      /timing.heartbeatIntervalMs: must be at most half the leader lease/,
    )
    assert.throws(
      () => new RaftElection({ id: 'x', members: [{ id: 'x', address: 'nowhere' }] }),
      /members\[0\].address: expected host:port/,
    )
  })

  test('a corrupt state file stops the node from starting rather than forgetting its vote', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ballot-state-'))
    dirs.push(dir)
    const members = [{ id: 'x', address: '127.0.0.1:1' }]
    const one = new RaftElection({ id: 'x', members, dataDir: dir })
    assert.ok(one)
    writeFileSync(join(dir, 'raft-state.json'), '{"term": "three"}')
    assert.throws(() => new RaftElection({ id: 'x', members, dataDir: dir }), /does not hold valid state/)
  })
})
