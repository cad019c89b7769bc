// The Consul backend's leave against a real Consul 1.8.7 agent: a leave held back in the network (an
// HTTP proxy keeps its first write) lands after the candidate left again, rejoined and acquired anew, and
// must release and delete nothing of that later join. (Its own file, and process: the proxy's abandoned
// long polls once disturbed the tests that ran after it in the same process.)
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ConsulBackend } from '../src/lease/stores/consul.js'
import { Recorder } from './helpers/backend-recorder.js'
import { agentForFile } from './helpers/consul.js'
import { HttpHoldProxy } from './helpers/http-hold-proxy.js'
import { waitUntil } from './helpers/services.js'

const file = agentForFile()

function backend(opts: { prefix: string; address: string; requestTimeoutMs: number }): ConsulBackend {
  const b = new ConsulBackend({ waitMs: 5000, retryMs: 200, ...opts })
  return file.own(b)
}

const uniquePrefix = (name: string) => `ballot-test/${name}-${process.pid}`

test('a late leave (held in the network while the candidate left again, rejoined and led anew) releases and deletes nothing of the later join', async () => {
  const prefix = uniquePrefix('late-leave')
  const proxy = await HttpHoldProxy.start(file.agent.address)
  file.own(proxy)
  const events = new Recorder('a')
  // A long request timeout: the held request waits in the proxy, and the rest of that leave (the line
  // key's delete) follows it to Consul once it is let through, late.
  const b = backend({ prefix, address: proxy.address, requestTimeoutMs: 60_000 })
  await b.connect(events, { watchOnly: false })
  const session = await b.openSession(10_000)
  const lock = async () => {
    const kv = JSON.parse((await file.agent.http('GET', `/v1/kv/${prefix}/.lock`)).text || '[]')[0]
    return kv as { Session?: string; ModifyIndex: number } | undefined
  }
  const line = async () => (await file.agent.http('GET', `/v1/kv/${prefix}.ballot/line/${session.id}`)).status
  await b.join({ id: 'a' })
  const first = await waitUntil('join 1 to hold the lock', async () => {
    const kv = await lock()
    return kv?.Session === session.id && kv
  })
  // Leave 1: its first request (whatever it is) is held back, as on a slow network; the driver's
  // timeout gives up on it, and the machine goes on (a retried leave, a join, a leave, a join).
  proxy.hold((method, url) => method !== 'GET' || url.includes('consistent'))
  const late = b.leave().then(
    () => undefined,
    (err: unknown) => err,
  )
  await proxy.waitHeld()
  // As the driver does, each step waits for the backend to have read the line and the lock since the
  // last one (two reads of the lock key: the second starts only after the first was reported).
  const lockReads = () => proxy.seen.filter((r) => r.method === 'GET' && r.url.includes('.lock')).length
  const settled = async () => {
    const from = lockReads()
    await waitUntil('the backend to read the lock twice', () => lockReads() >= from + 2)
  }
  await b.leave()
  await b.join({ id: 'a' })
  await settled()
  await b.leave()
  await b.join({ id: 'a' })
  const later = await waitUntil('a later join to hold the lock anew', async () => {
    const kv = await lock()
    return kv?.Session === session.id && kv.ModifyIndex > first.ModifyIndex && kv
  })
  assert.equal(await line(), 200)
  proxy.release()
  assert.equal(await late, undefined, 'the late leave itself completes')
  // Leave 1 lands now: it must not release the lock the later join holds, nor delete its line key.
  const now = await lock()
  assert.equal(now?.Session, session.id, 'the late leave released the lock of a later join while it led')
  assert.equal(now?.ModifyIndex, later.ModifyIndex)
  assert.equal(await line(), 200, "the late leave deleted the later join's line key")
  await b.close()
  await proxy.close()
})
