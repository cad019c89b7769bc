/**
 * Real partitions: five `ballot run` processes (raft, default timing), one per network namespace on a
 * bridge, a sixth namespace polling every node's GET /status all through; links cut with nftables. In
 * every scenario no two nodes claim leadership with a lease at the same moment (checked against the
 * leases the nodes report, on the poller's one clock: see helpers/partition-lab.ts), no process dies, and
 * a leader all five agree on is back after the heal. Where the leader's side is cut off, the old leader
 * stops claiming, the majority elects, and the returning side does not depose that leader (pre-vote: same
 * term). Figures go to the test's diagnostics; `node --import tsx bench/partitions.ts` repeats them.
 * Needs root and the built CLI (npm run build).
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { leaseOverlaps, type Observation, PartitionLab } from './helpers/partition-lab.js'
import {
  bridgeNode,
  flappingLink,
  leaderIsolated,
  oneWayLoss,
  randomLoss,
  type ScenarioFigures,
  splitTwoThree,
} from './helpers/partition-scenarios.js'

// The check itself can fail: a claim made wholly inside another node's lease is found; one made after
// the lease ran out, or one whose poll overlapped the other's (either order possible), is not a violation.
test('the overlap check finds a claim made inside another lease, and only that', () => {
  const claim = (node: string, s: number, r: number, lease: number): Observation => ({
    node,
    s,
    r,
    ok: true,
    isLeader: true,
    lease,
  })
  const inside = leaseOverlaps([claim('n1', 0, 10, 400), claim('n2', 100, 120, 400)])
  assert.equal(inside.certain.length, 1)
  assert.equal(leaseOverlaps([claim('n1', 0, 10, 400), claim('n2', 401, 420, 400)]).certain.length, 0)
  // Answered after the earliest moment n1's lease could end: not certainly at the same moment.
  assert.equal(leaseOverlaps([claim('n1', 0, 10, 400), claim('n2', 390, 405, 400)]).certain.length, 0)
  const racing = leaseOverlaps([claim('n1', 0, 50, 400), claim('n2', 20, 60, 400)])
  assert.deepEqual([racing.certain.length, racing.ambiguous], [0, 1])
})

let lab: PartitionLab
before(async () => {
  lab = await PartitionLab.create('default')
})
after(async () => {
  await lab?.remove()
  assert.deepEqual(lab?.lab.leftovers() ?? [], [], 'namespaces or links left behind')
})

function report(t: { diagnostic(message: string): void }, f: ScenarioFigures): void {
  t.diagnostic(JSON.stringify(f))
}

test('the leader isolated: it stops claiming, the majority elects, its return deposes nobody', async (t) => {
  const f = await leaderIsolated(lab)
  report(t, f)
  assert.ok((f.claimGapMs ?? 1) > 0, `the new claim came before the old leader's last: ${JSON.stringify(f)}`)
})

test('a 2|3 split with the leader on the small side', async (t) => {
  report(t, await splitTwoThree(lab))
})

test('a bridge node that reaches both halves', async (t) => {
  report(t, await bridgeNode(lab))
})

test("one-way loss: the leader's packets to the others are dropped, theirs reach it", async (t) => {
  report(t, await oneWayLoss(lab))
})

test("a flapping link: the leader's links go down and up", async (t) => {
  report(t, await flappingLink(lab))
})

test('random loss of 20% on every link', async (t) => {
  report(t, await randomLoss(lab, 20))
})
