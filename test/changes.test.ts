// changes(): a subscription that begins when iteration begins, ends when it ends, and holds a bounded
// queue for an iterator that does not keep up. Driven through a scripted election (ElectionBase's
// ordinary subclass API), so every change is exact.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { ClusterState, LeadershipChange, Role } from '../src/election.js'
import { changeStream } from '../src/runtime/change-stream.js'
import { ElectionBase } from '../src/runtime/election-base.js'

class ScriptedElection extends ElectionBase {
  async start() {}
  async stop() {
    this.observe('stopped', false, undefined)
  }
  readonly id = 's'
  readonly address = ''
  async resign() {
    return undefined
  }
  isLeader() {
    return false
  }
  clusterState(): ClusterState {
    return { self: 's', role: this.state(), term: 0n, leader: this.leader(), members: [] }
  }
  /** One change: `n` becomes the leader's token, so every call is a change. */
  change(n: number, role: Role = 'follower') {
    this.observe(role, false, { id: 'x', token: BigInt(n), since: 0 })
  }
}

async function drain(iterable: AsyncIterable<LeadershipChange>): Promise<LeadershipChange[]> {
  const out: LeadershipChange[] = []
  for await (const c of iterable) out.push(c)
  return out
}

describe('changes()', () => {
  test('subscribes when iteration begins, not when called', async () => {
    const e = new ScriptedElection()
    const stream = e.changes()
    for (let i = 1; i <= 5; i++) e.change(i) // nobody iterates yet: nothing is kept
    const it = stream[Symbol.asyncIterator]()
    e.change(6, 'candidate')
    const first = await it.next()
    assert.equal(
      first.value?.leader?.token,
      6n,
      'the first change yielded is the first after iteration began',
    )
    await it.return?.()
  })

  test('an iterator that does not keep up holds a bounded queue: the oldest are dropped and counted', async () => {
    const e = new ScriptedElection()
    const it = e.changes()[Symbol.asyncIterator]()
    const total = 5000
    for (let i = 1; i <= total; i++) e.change(i)
    await e.stop()
    const got = await drain({ [Symbol.asyncIterator]: () => it })
    assert.ok(got.length <= 1025, `at most the bound is held (got ${got.length})`)
    assert.equal(got.at(-1)?.role, 'stopped', 'the newest changes are kept')
    assert.equal(got.at(-2)?.leader?.token, BigInt(total))
    const skipped = got.reduce((n, c) => n + ((c as { skipped?: number }).skipped ?? 0), 0)
    assert.equal(skipped + got.length, total + 1, 'every dropped change is counted in `skipped`')
    assert.ok(((got[0] as { skipped?: number }).skipped ?? 0) > 0, 'the first change after the gap says so')
  })

  test('the subscription lives exactly as long as the iteration (counted at the source)', async () => {
    const listeners = new Set<(c: LeadershipChange) => void>()
    const subscribe = (push: (c: LeadershipChange) => void) => {
      listeners.add(push)
      return () => listeners.delete(push)
    }
    const emit = (role: Role) => {
      for (const push of [...listeners])
        push({ role, leading: false, leader: undefined, previous: undefined, at: 0 })
    }
    const stream = changeStream(subscribe)
    assert.equal(listeners.size, 0, 'asking for the stream subscribes nothing')
    const broken = (async () => {
      for await (const _ of stream) break
    })()
    assert.equal(listeners.size, 1, 'iterating subscribes')
    emit('follower')
    await broken
    assert.equal(listeners.size, 0, 'break unsubscribes')
    const ctl = new AbortController()
    const aborted = (async () => {
      for await (const _ of changeStream(subscribe, { signal: ctl.signal })) {
      }
    })()
    assert.equal(listeners.size, 1)
    ctl.abort()
    await aborted
    assert.equal(listeners.size, 0, 'the signal unsubscribes')
    const ended = (async () => {
      for await (const _ of changeStream(subscribe)) {
      }
    })()
    emit('stopped')
    await ended
    assert.equal(listeners.size, 0, 'a stopped election unsubscribes')
  })

  test('ending the iteration (break, or the signal) unsubscribes; a stopped election ends it', async () => {
    const e = new ScriptedElection()
    const ctl = new AbortController()
    const aborted = drain(e.changes(ctl.signal))
    e.change(1)
    ctl.abort()
    assert.ok((await aborted).length <= 1)
    const seen: LeadershipChange[] = []
    const broken = (async () => {
      for await (const c of e.changes()) {
        seen.push(c)
        break
      }
    })()
    e.change(2)
    await broken
    assert.equal(seen.length, 1)
    const ended = drain(e.changes())
    e.change(3)
    await e.stop()
    assert.deepEqual(
      (await ended).map((c) => c.role),
      ['follower', 'stopped'],
    )
  })
})
