// The shared Election layer (ElectionBase), driven by hand: which events, aborts and restarts of
// whileLeader work follow from what a driver observes. Generic: raft, bully and lease drivers share it.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { ClusterState, LeaderInfo, Role } from '../src/election.js'
import { ElectionBase } from '../src/runtime/election-base.js'

/** An election whose driver is the test: `see()` is what a driver reports after each batch. */
class HandDriven extends ElectionBase {
  see(role: Role, leading: boolean, leader: LeaderInfo | undefined): void {
    this.observe(role, leading, leader)
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  readonly id = 'a'
  readonly address = ''
  async resign() {
    return undefined
  }
  isLeader(): boolean {
    return false
  }
  clusterState(): ClusterState {
    return { self: 'a', role: this.state(), term: 0n, leader: this.leader(), members: [] }
  }
}

const lead = (token: bigint, tags: Record<string, string> = {}): LeaderInfo => ({
  id: 'a',
  token,
  since: 0,
  tags,
})

test('a new token while leading is a new leadership: work restarts with it, leave/enter fire', () => {
  const e = new HandDriven()
  const runs: Array<{ token: bigint; signal: AbortSignal }> = []
  e.whileLeader(async (signal, l) => {
    runs.push({ token: l.token, signal })
  })
  const events: string[] = []
  const enterSignals: AbortSignal[] = []
  e.on('enterLeader', ({ signal }, l) => {
    events.push(`enter ${l?.token}`)
    enterSignals.push(signal)
  })
  e.on('leaveLeader', (_ctx, l) => {
    events.push(`leave ${l?.token}`)
  })

  e.see('leader', true, lead(5n))
  assert.deepEqual(
    runs.map((r) => r.token),
    [5n],
  )
  // The same node claims again with a larger epoch (bully, after a healed partition): still leader.
  e.see('leader', true, lead(1005n))
  assert.deepEqual(
    runs.map((r) => r.token),
    [5n, 1005n],
    'the work starts again with the new token',
  )
  assert.equal(runs[0]?.signal.aborted, true, "the old leadership's work is aborted")
  assert.equal(runs[1]?.signal.aborted, false)
  assert.deepEqual(events, ['enter 5', 'leave 5', 'enter 1005'])
  assert.equal(enterSignals[0]?.aborted, true, "the old enterLeader callback's signal is aborted")
  assert.equal(enterSignals[1]?.aborted, false)

  // Fresher tags with the same token are the same leadership: nothing restarts.
  e.see('leader', true, lead(1005n, { zone: 'b' }))
  assert.equal(runs.length, 2)
  assert.deepEqual(events, ['enter 5', 'leave 5', 'enter 1005'])
  assert.equal(e.leader()?.tags?.zone, 'b')

  e.see('follower', false, { id: 'b', token: 2000n, since: 0 })
  assert.equal(runs[1]?.signal.aborted, true)
  assert.deepEqual(events, ['enter 5', 'leave 5', 'enter 1005', 'leave 1005'])
})

test("another leader's new token while following restarts no leader work", () => {
  const e = new HandDriven()
  let runs = 0
  e.whileLeader(async () => {
    runs++
  })
  e.see('follower', false, { id: 'b', token: 2n, since: 0 })
  e.see('follower', false, { id: 'b', token: 3n, since: 0 })
  assert.equal(runs, 0)
})
