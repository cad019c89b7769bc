// start() and stop() of a driven election over real TCP ports: a stop during start wins, and a start that
// failed (the port was taken) can be tried again.
import assert from 'node:assert/strict'
import net from 'node:net'
import { after, describe, test } from 'node:test'
import { BallotError, BullyElection, type Election, RaftElection, TransportError } from '../src/index.js'
import { freePorts, waitFor } from './helpers/raft-cluster.js'
import { portOpen } from './helpers/services.js'

const running: Election[] = []
const servers: net.Server[] = []
after(async () => {
  await Promise.all(running.map((e) => e.stop({ handover: false })))
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
})

async function occupy(port: number): Promise<net.Server> {
  const server = net.createServer((s) => s.destroy())
  servers.push(server)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  return server
}

function solo(port: number): RaftElection {
  const e = new RaftElection({
    id: 'solo',
    members: [{ id: 'solo', address: `127.0.0.1:${port}` }],
    timing: 'fast',
  })
  running.push(e)
  return e
}

describe('start and stop', () => {
  test('stop() during start() leaves the node stopped with its port closed', async () => {
    const [port] = (await freePorts(1)) as [number]
    const e = solo(port)
    let led = false
    e.on('enterLeader', () => {
      led = true
    })
    const starting = e.start()
    await e.stop()
    const outcome = await starting.then(
      () => 'resolved',
      (err: unknown) => err,
    )
    assert.ok(
      outcome instanceof BallotError && outcome.code === 'CLOSED',
      `start() ends with CLOSED, got ${outcome}`,
    )
    assert.equal(e.state(), 'stopped')
    assert.equal(e.isLeader(), false)
    assert.equal(await portOpen(port), false, 'nothing listens on the port')
    assert.equal(led, false)
    await assert.rejects(
      e.start(),
      (err: BallotError) => err.code === 'CLOSED',
      'a stopped node stays stopped',
    )
  })

  test('a start that failed on a taken port is a TransportError naming the address, and can be retried', async () => {
    const [port] = (await freePorts(1)) as [number]
    const blocker = await occupy(port)
    const e = solo(port)
    await assert.rejects(
      e.start(),
      (err: unknown) =>
        err instanceof TransportError &&
        err.code === 'TRANSPORT' &&
        (err as { address?: string }).address === `127.0.0.1:${port}` &&
        /EADDRINUSE/.test(err.message),
    )
    assert.equal(e.isLeader(), false)
    await new Promise((r) => blocker.close(r))
    await e.start()
    await waitFor('the retried node to lead', () => e.isLeader())
    assert.equal(await portOpen(port), true, 'it listens now')
    await e.stop()
    assert.equal(await portOpen(port), false, 'and stops listening when stopped')
  })

  test('bully: a start that failed on a taken port can be retried', async () => {
    const [port] = (await freePorts(1)) as [number]
    const blocker = await occupy(port)
    const e = new BullyElection({ listen: `127.0.0.1:${port}`, timing: 'fast' })
    running.push(e)
    await assert.rejects(
      e.start(),
      (err: unknown) => err instanceof TransportError && err.code === 'TRANSPORT',
    )
    await new Promise((r) => blocker.close(r))
    await e.start()
    await waitFor('the retried bully node to lead', () => e.isLeader())
  })

  test('two start() calls at once both resolve once the node runs', async () => {
    const [port] = (await freePorts(1)) as [number]
    const e = solo(port)
    await Promise.all([e.start(), e.start()])
    assert.equal(await portOpen(port), true)
    await waitFor('the node to lead', () => e.isLeader())
  })
})
