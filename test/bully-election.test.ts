/**
 * BullyElection in this process, over TCP on loopback, with what the Election interface promises user
 * code: every leadership has its own fencing token, and work started for one never runs on with another.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import pino from 'pino'
import { Notifier, type NotifyEvent } from '../src/daemon/notify.js'
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

test('--notify-url: a leader that claims again is deposed with the old token and elected with the new', async () => {
  const got: NotifyEvent[] = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (d) => {
      body += d
    })
    req.on('end', () => {
      got.push(JSON.parse(body) as NotifyEvent)
      res.end('ok')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const [port] = (await freePorts(1)) as [number]
  const address = `127.0.0.1:${port}`
  const e = new BullyElection({ id: 'top', pid: 5, listen: address, timing: 'fast' })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
  const notifier = new Notifier({ url, election: e, log: pino({ level: 'silent' }) })
  try {
    await e.start()
    const first = await waitFor('elected', () => got[0])
    await sendForged(address, [
      { from: 'low', msg: { t: 'hb', pid: 1, addr: '127.0.0.1:1', epoch: Number(first.token) } },
    ])
    await waitFor('deposed and elected again', () => got.length >= 3)
    const second = e.leader()?.token.toString()
    assert.deepEqual(
      got.map((g) => `${g.event} ${g.token}`),
      [`elected ${first.token}`, `deposed ${first.token}`, `elected ${second}`],
    )
    assert.notEqual(second, first.token)
  } finally {
    await e.stop()
    await notifier.drain()
    server.close()
  }
})

test('two nodes in one epoch slot (pids equal modulo 1000) are reported once each, as PROTOCOL errors', async () => {
  const ports = await freePorts(2)
  const addrs = ports.map((p) => `127.0.0.1:${p}`)
  const nodes = [3, 1003].map(
    (pid, i) => new BullyElection({ pid, listen: addrs[i] as string, nodes: addrs, timing: 'fast' }),
  )
  const errors = nodes.map(() => [] as Array<{ code?: string; message: string }>)
  nodes.forEach((n, i) => {
    n.on('error', (err) => errors[i]?.push(err as { code?: string; message: string }))
  })
  try {
    await Promise.all(nodes.map((n) => n.start()))
    await waitFor('both to name the problem', () => errors.every((e) => e.length > 0))
    await waitFor('a leader', () => nodes.some((n) => n.isLeader()))
    for (const e of errors) {
      assert.equal(e.length, 1, JSON.stringify(e))
      assert.equal(e[0]?.code, 'PROTOCOL')
      assert.match(e[0]?.message ?? '', /epoch slot/)
    }
  } finally {
    await Promise.all(nodes.map((n) => n.stop()))
  }
})
