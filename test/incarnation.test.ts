// The incarnation in every envelope grows across restarts even when the wall clock steps back, so a peer
// that did not restart keeps accepting a restarted node (with a data directory).
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { type Clock, RaftElection, type RaftPeer, realClock } from '../src/index.js'
import { nextIncarnation } from '../src/runtime/incarnation.js'
import { freePorts, waitFor } from './helpers/raft-cluster.js'

const running: RaftElection[] = []
const dirs: string[] = []
after(async () => {
  await Promise.all(running.map((e) => e.stop({ handover: false })))
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

/** The real clock with its wall time shifted (an NTP step is a shift between two boots). */
const wallShiftedBy = (offsetMs: number): Clock => ({ ...realClock, wall: () => Date.now() + offsetMs })

function agreed(nodes: RaftElection[]) {
  const [first, ...rest] = nodes.map((n) => n.leader())
  if (!first || rest.some((l) => l?.id !== first.id || l?.token !== first.token)) return undefined
  return nodes.some((n) => n.isLeader()) ? first : undefined
}

test('a node restarted after its wall clock stepped back is still heard by a peer that did not restart', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'ballot-incarnation-'))
  dirs.push(dataDir)
  const ports = await freePorts(2)
  const members: RaftPeer[] = ports.map((p, i) => ({ id: i === 0 ? 'a' : 'b', address: `127.0.0.1:${p}` }))
  const key = 'shared secret'
  const node = (id: string, extra: Partial<ConstructorParameters<typeof RaftElection>[0]> = {}) => {
    const e = new RaftElection({ id, members, key, timing: 'fast', ...extra })
    running.push(e)
    return e
  }
  // a's clock runs 30 s ahead (within the 60 s the codec tolerates), then NTP steps it back and a restarts.
  const a1 = node('a', { dataDir, clock: wallShiftedBy(30_000) })
  const b = node('b')
  await Promise.all([a1.start(), b.start()])
  const before = await waitFor('a leader before the restart', () => agreed([a1, b]))
  await a1.stop({ handover: false })

  const a2 = node('a', { dataDir, clock: wallShiftedBy(0) })
  await a2.start()
  const restartedAt = Date.now()
  // Either a new term is elected (b needs a2's vote), or b kept leading: a2 can be back before b's check-
  // quorum ends its term. Then b still holding its lease well after the restart means a2's acknowledgements
  // reached it (a lease needs both nodes). Both need b to accept a2's messages.
  const afterRestart = await waitFor('a leader both agree on after the restart', () => {
    const l = agreed([a2, b])
    if (!l) return undefined
    if (l.token > before.token) return l
    return l.id === 'b' && b.isLeader() && Date.now() - restartedAt > 1000 ? l : undefined
  })
  assert.ok(afterRestart)
  assert.equal(b.transportStats.dropped.get('replay') ?? 0, 0, 'b dropped none of a’s messages as replays')
})

test('the boot counter grows on every start, whatever the wall clock does', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'ballot-incarnation-'))
  dirs.push(dataDir)
  const now = 1_700_000_000_000
  const first = nextIncarnation(dataDir, now)
  assert.ok(first >= now * 1000, 'starts from the boot time, above incarnations used before the file')
  const stepBack = nextIncarnation(dataDir, now - 3_600_000)
  assert.equal(stepBack, first + 1, 'a clock stepped back an hour still gives a larger incarnation')
  const later = nextIncarnation(dataDir, now + 60_000)
  assert.ok(later > stepBack && later >= (now + 60_000) * 1000)
})
