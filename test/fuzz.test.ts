/**
 * The fuzz path on every CI run (a few thousand seeded inputs; `npm run fuzz` runs a million and the live
 * processes): hostile frames through the frame decoder and codec into live raft and bully machines. No
 * exception escapes, no dropped or refused input changes its target, and every kind of input is made
 * and dropped for a reason the counters name.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CATEGORIES } from '../bench/fuzz/frames.js'
import { fuzzInProcess } from '../bench/fuzz/in-process.js'
import { BullyMachine, MAX_BULLY_PEERS } from '../src/protocol/bully/machine.js'
import { DEFAULT_BULLY_TIMING } from '../src/protocol/bully/options.js'

test('seeded fuzz into raft and bully machines: nothing escapes, nothing invalid changes state', async () => {
  const seed = 20261130
  const report = await fuzzInProcess({ seed, frames: 8000, framesPerCluster: 2000, tickEvery: 100 })
  const why = `seed ${seed}: ${JSON.stringify([...report.exceptions, ...report.stateChanges, ...report.strangerAccepted].slice(0, 3))}`
  assert.deepEqual(report.exceptions, [], why)
  assert.deepEqual(report.stateChanges, [], why)
  assert.deepEqual(report.strangerAccepted, [], why)
  assert.equal(report.frames, 8000)
  for (const c of CATEGORIES) assert.ok((report.byCategory[c]?.inputs ?? 0) > 0, `no ${c} input was made`)
  // Every check on the way in was exercised: the counters name each reason.
  for (const reason of [
    'oversized',
    'malformed',
    'version',
    'cluster',
    'auth',
    'replay',
    'schema',
    'unknown-peer',
  ])
    assert.ok(
      (report.dropped[reason] ?? 0) > 0,
      `nothing was dropped as ${reason}: ${JSON.stringify(report.dropped)}`,
    )
  // The four clusters (raft and bully, keyed and open) each ran, and the keyed ones kept their leader.
  assert.equal(report.clusters.length, 4)
  for (const c of report.clusters.filter((x) => x.config.endsWith('keyed')))
    assert.equal(c.leaderAtEnd, c.leaderAtStart, `${c.config} lost its leader to inputs a stranger sent`)
})

// Found by `npm run fuzz -- --seed 14`: a message the bully machine refuses (an epoch near 2^53, signed
// by a key holder) from an id it never heard from still made it greet that id (hello, and as leader an
// hb with every member it knows), because the multicast transport announces a sender it hears for the
// first time, whatever the machine makes of its message.
test('bully: a refused message from an unheard-of id makes the node send nothing', () => {
  const machine = new BullyMachine({ id: 'n3', pid: 3, address: '10.0.0.3', timing: DEFAULT_BULLY_TIMING })
  machine.step(0, { kind: 'tick' })
  machine.step(5000, { kind: 'tick' })
  machine.ready()
  // Known only by name, from another node's member list (and never heard itself): still no greeting.
  machine.step(5000, {
    kind: 'receive',
    from: 'n2',
    msg: { t: 'hello', pid: 2, addr: '10.0.0.2', epoch: 0 },
  })
  machine.step(5000, {
    kind: 'receive',
    from: 'n4',
    msg: { t: 'hb', pid: 1, addr: '10.0.0.4', epoch: 0, members: [{ id: 'constructor', addr: '10.0.0.9' }] },
  })
  machine.ready()
  const forged = {
    t: 'bye',
    pid: -5,
    addr: '10.0.0.9',
    epoch: Number.MAX_SAFE_INTEGER,
    leaving: false,
  } as const
  // As the multicast transport delivers a first message: the message, then the news of a new peer.
  machine.step(5001, { kind: 'receive', from: 'constructor', msg: forged })
  machine.step(5001, { kind: 'peerConnected', peer: 'constructor' })
  const ready = machine.ready()
  assert.deepEqual(
    ready.refused?.map((r) => r.reason),
    ['term-jump'],
  )
  assert.deepEqual(ready.messages, [])
})

// Found while fuzzing bully without a key: every forged hb names up to 256 "members", and each new id was
// kept for good. 2,000 datagrams made a node hold 514,000 peers (163 MiB) and, over TCP, dial every
// address named. The peer table is bounded; a full table makes room by forgetting peers long silent.
test('bully: forged member lists and senders cannot grow the peer table without bound', () => {
  const machine = new BullyMachine({ id: 'n1', pid: 1, address: '10.0.0.1', timing: DEFAULT_BULLY_TIMING })
  machine.step(0, { kind: 'tick' })
  for (let i = 0; i < 40; i++) {
    const members = Array.from({ length: 256 }, (_, j) => ({ id: `x${i}-${j}`, addr: '10.9.9.9:1' }))
    machine.step(1, {
      kind: 'receive',
      from: `f${i}`,
      msg: { t: 'hb', pid: 0, addr: '10.9.9.9', epoch: 0, members },
    })
  }
  for (let i = 0; i < 2000; i++)
    machine.step(2, {
      kind: 'receive',
      from: `s${i}`,
      msg: { t: 'hello', pid: 0, addr: '10.9.9.8', epoch: 0 },
    })
  const refused = machine.ready().refused ?? []
  assert.ok(machine.view(3).peers.length <= MAX_BULLY_PEERS, `${machine.view(3).peers.length} peers kept`)
  assert.ok(refused.length > 0 && refused.every((r) => r.reason === 'unknown-peer'))
  // Once the forged ids have gone silent past the expiry, a real newcomer is heard again.
  const later = 2 + 3 * DEFAULT_BULLY_TIMING.aliveIntervalMs + DEFAULT_BULLY_TIMING.leaderTimeoutMs + 1
  machine.step(later, {
    kind: 'receive',
    from: 'n9',
    msg: { t: 'hello', pid: 9, addr: '10.0.0.9', epoch: 0 },
  })
  assert.ok(machine.view(later).peers.some((p) => p.id === 'n9'))
  assert.deepEqual(machine.ready().refused ?? [], [])
})
