/**
 * BullyElection in this process, over TCP on loopback, with what the Election interface promises user
 * code: every leadership has its own fencing token, and work started for one never runs on with another.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { BullyElection } from '../src/index.js'
import { sendForged } from './helpers/forge.js'
import { freePorts, waitFor } from './helpers/raft-cluster.js'

test('a leader that claims again with a larger epoch restarts whileLeader work with the new token', async () => {
  const [port] = (await freePorts(1)) as [number]
  const address = `127.0.0.1:${port}`
  const e = new BullyElection({ id: 'top', pid: 5, listen: address, timing: 'fast' })
  const runs: Array<{ token: bigint; signal: AbortSignal }> = []
  e.whileLeader(async (signal, lead) => {
    runs.push({ token: lead.token, signal })
  })
  const events: string[] = []
  e.on('enterLeader', (_ctx, l) => {
    events.push(`enter ${l?.token}`)
  })
  e.on('leaveLeader', (_ctx, l) => {
    events.push(`leave ${l?.token}`)
  })
  try {
    await e.start()
    const first = await waitFor('leadership', () => runs[0])
    // A lower node that led on the other side of a partition speaks with the same epoch: the higher
    // node claims again with a larger one, and stays leader throughout.
    await sendForged(address, [
      { from: 'low', msg: { t: 'hb', pid: 1, addr: '127.0.0.1:1', epoch: Number(first.token) } },
    ])
    const second = await waitFor('the work to start again', () => runs[1])
    assert.ok(second.token > first.token, `new token ${second.token} after ${first.token}`)
    assert.equal(first.signal.aborted, true, "the old leadership's work was aborted")
    assert.equal(second.signal.aborted, false)
    assert.equal(e.leader()?.token, second.token)
    assert.equal(e.isLeader(), true)
    assert.deepEqual(events, [`enter ${first.token}`, `leave ${first.token}`, `enter ${second.token}`])
  } finally {
    await e.stop()
  }
})
