// A failed save of durable state: the node sends nothing that rested on it, forgets every decision made
// on it (its machine is rebuilt from the last state saved), keeps trying, and never leads on a term or
// epoch that is not on disk, so no fencing token is ever used twice.
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import {
  BullyElection,
  type Election,
  type HardStateStore,
  PersistenceError,
  RaftElection,
} from '../src/index.js'
import type { BullyHardState } from '../src/protocol/bully/messages.js'
import type { RaftHardState } from '../src/protocol/raft/messages.js'
import { freePorts, waitFor } from './helpers/raft-cluster.js'

/** A durable store held in memory whose saves fail while `failing` is set, as a disk with EIO would. */
class FlakyStore<P> implements HardStateStore<P> {
  saved: P | undefined
  failing = false
  failures = 0
  load(): P | undefined {
    return this.saved === undefined ? undefined : structuredClone(this.saved)
  }
  save(state: P): void {
    if (this.failing) {
      this.failures++
      throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' })
    }
    this.saved = structuredClone(state)
  }
}

const running: Election[] = []
after(() => Promise.all(running.map((e) => e.stop({ handover: false }))))

/** Every leadership the node takes, with what the store held at that moment, and every error. */
function watch(e: Election, savedToken: () => number | undefined) {
  const leaderships: Array<{ token: bigint; saved: number | undefined }> = []
  const errors: Error[] = []
  e.on('enterLeader', (_ctx, lead) => {
    leaderships.push({ token: lead?.token ?? -1n, saved: savedToken() })
  })
  e.on('error', (err) => errors.push(err))
  running.push(e)
  return { leaderships, errors }
}

async function leadsOnlyOnSavedState(
  make: () => Election,
  store: FlakyStore<unknown>,
  savedToken: () => number | undefined,
) {
  store.failing = true
  const first = make()
  const seen = watch(first, savedToken)
  await first.start()
  await waitFor('a failed save', () => store.failures >= 1)
  assert.deepEqual(seen.leaderships, [], 'did not lead on the state whose save failed')
  // The rebuilt machine campaigns (or claims) again by itself: each attempt is another failed save.
  await waitFor('three failed saves', () => store.failures >= 3)
  assert.equal(first.isLeader(), false, 'not leading on state that is not on disk')
  assert.deepEqual(seen.leaderships, [], 'never led on state that is not on disk')
  const reported = seen.errors.find((e) => e instanceof PersistenceError)
  assert.ok(reported, `a PersistenceError is reported (got ${seen.errors.map((e) => e.message)})`)
  assert.equal((reported as PersistenceError).code, 'PERSISTENCE')

  store.failing = false
  await waitFor('leadership once saves work again', () => first.isLeader())
  assert.equal(first.leader()?.token, BigInt(savedToken() ?? -1), 'leads on the saved token')

  // A crash and restart from what the store holds: the next leadership takes a larger token.
  await first.stop({ handover: false })
  const second = make()
  const again = watch(second, savedToken)
  await second.start()
  await waitFor('leadership after the restart', () => second.isLeader())
  const all = [...seen.leaderships, ...again.leaderships]
  for (const l of all) assert.equal(l.token, BigInt(l.saved ?? -1), 'every leadership rests on saved state')
  for (let i = 1; i < all.length; i++)
    assert.ok(
      (all[i]?.token ?? 0n) > (all[i - 1]?.token ?? 0n),
      `tokens only grow: ${all.map((l) => l.token)}`,
    )
  await second.stop({ handover: false })
}

describe('a failed save of durable state', () => {
  test('raft: a leader whose term could not be saved does not lead on it, and tokens never repeat', async () => {
    const [port] = await freePorts(1)
    const store = new FlakyStore<RaftHardState>()
    const members = [{ id: 'solo', address: `127.0.0.1:${port}` }]
    await leadsOnlyOnSavedState(
      () => new RaftElection({ id: 'solo', members, timing: 'fast', stateStore: store }),
      store as FlakyStore<unknown>,
      () => store.saved?.term,
    )
  })

  test('bully: a claim whose epoch could not be saved does not lead, and epochs never repeat', async () => {
    const [port] = await freePorts(1)
    const store = new FlakyStore<BullyHardState>()
    await leadsOnlyOnSavedState(
      () => new BullyElection({ listen: `127.0.0.1:${port}`, timing: 'fast', stateStore: store }),
      store as FlakyStore<unknown>,
      () => store.saved?.epoch,
    )
  })
})
