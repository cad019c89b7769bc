// The Consul backend against a real Consul 1.8.7 agent, through an HTTP proxy that sees (and may hold
// back) every request: what a holder sends at rest, and an acquire of the lock that lands at Consul after
// the candidate left (its answer lost or late, as when the agent goes down under it), which must not
// leave the lock held by a live session that is no longer in line: nobody else could ever lead. (Its own
// file and process, as consul-late-leave: the proxy's abandoned long polls can disturb later tests.)
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ConsulBackend } from '../src/lease/stores/consul.js'
import { Recorder } from './helpers/backend-recorder.js'
import { agentForFile } from './helpers/consul.js'
import { HttpHoldProxy } from './helpers/http-hold-proxy.js'
import { sleep, waitUntil } from './helpers/services.js'

const file = agentForFile()

test('an acquire that lands after the candidate left is released while its session lives on', async () => {
  const prefix = `ballot-test/lost-acquire-${process.pid}`
  const proxy = file.own(await HttpHoldProxy.start(file.agent.address))
  // A short request timeout: the held acquire's answer is given up for lost, as when the agent goes down.
  const b = file.own(
    new ConsulBackend({ prefix, address: proxy.address, waitMs: 5000, retryMs: 200, requestTimeoutMs: 1000 }),
  )
  await b.connect(new Recorder('a'), { watchOnly: false })
  const session = await b.openSession(10_000)
  type Lock = { Session?: string; LockIndex: number; ModifyIndex: number }
  const lock = async () =>
    JSON.parse((await file.agent.http('GET', `/v1/kv/${prefix}/.lock`)).text || '[]')[0] as Lock | undefined
  const lineKey = async () =>
    (await file.agent.http('GET', `/v1/kv/${prefix}.ballot/line/${session.id}`)).status
  const sessionLives = async () =>
    JSON.parse((await file.agent.http('GET', `/v1/session/info/${session.id}`)).text || 'null')?.length === 1

  // The watch loop's acquire is held in the network; the candidate leaves meanwhile (nothing to release:
  // as far as the backend knows, it never held the lock).
  proxy.hold(
    (method, url) =>
      method === 'PUT' && decodeURIComponent(url).includes('/.lock?') && url.includes('acquire='),
  )
  await b.join({ id: 'a' })
  await proxy.waitHeld()
  await b.leave()
  assert.equal(await lineKey(), 404, 'the leave deleted the line key')
  assert.equal(await lock(), undefined, 'nobody held the lock before the late acquire')
  // The acquire lands now: Consul grants the lock to a session that has left the line.
  proxy.release()
  await waitUntil('the late acquire to reach Consul', async () => ((await lock())?.LockIndex ?? 0) >= 1)
  // The session stays alive (a candidate keeps renewing it between elections): the lock must still be
  // released, or every other candidate would wait for ever.
  const released = await waitUntil(
    'the lock to be released while the session lives',
    async () => {
      await b.keepAlive().catch(() => {}) // a renew may fail on the proxy's closed sockets; the end checks the session
      const kv = await lock()
      return kv && kv.LockIndex >= 1 && kv.Session === undefined && kv
    },
    30_000,
  )
  assert.ok(released)
  assert.ok(await sessionLives(), 'released by the backend, not by the session ending')
  await b.close()
  await proxy.close()
})

test('a holder at rest sends its keep-alives and nothing else', async () => {
  const prefix = `ballot-test/at-rest-${process.pid}`
  const proxy = file.own(await HttpHoldProxy.start(file.agent.address))
  const b = file.own(new ConsulBackend({ prefix, address: proxy.address, retryMs: 200 }))
  const events = new Recorder('a')
  await b.connect(events, { watchOnly: false })
  const session = await b.openSession(10_000)
  await b.join({ id: 'a' })
  await events.waitLine(['a'])
  // Settled: the holder's watch loop blocks on the lock and the line (its last two requests).
  await waitUntil('the holder to block on the lock and the line', () => {
    const last = proxy.seen.slice(-2).map((r) => decodeURIComponent(r.url))
    return (
      last.length === 2 &&
      last.every((u) => u.includes('index=')) &&
      last.some((u) => u.includes('/.lock?')) &&
      last.some((u) => u.includes('.ballot/line/?'))
    )
  })
  const from = proxy.seen.length
  for (let i = 0; i < 3; i++) await b.keepAlive()
  await sleep(500) // anything a keep-alive set off has been sent by now
  assert.deepEqual(
    proxy.seen.slice(from).map((r) => `${r.method} ${r.url.replace(/\?.*/, '')}`),
    Array(3).fill(`PUT /v1/session/renew/${session.id}`),
  )
  await b.close()
  await proxy.close()
})
