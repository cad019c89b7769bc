/**
 * The Consul lease backend against a real Consul 1.8.7 agent (-dev) and `consul lock` itself: the
 * recipe's exact session and key, the line, predecessor-only blocking, tokens, lock-delay, outages, bad
 * configuration, and mutual exclusion with `consul lock`.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { SessionLostError, StoreError } from '../src/errors.js'
import type { LineEntry } from '../src/lease/backend.js'
import {
  CONSUL_LOCK_FLAGS,
  ConsulBackend,
  type ConsulBackendOptions,
  parseConsulJson,
} from '../src/lease/stores/consul.js'
import { Recorder } from './helpers/backend-recorder.js'
import { ConsulAgent } from './helpers/consul.js'
import { freePorts, type OwnedProcess, removeTempDir, sleep, tempDir, waitUntil } from './helpers/services.js'
import { TcpProxy } from './helpers/tcp-proxy.js'

const agents: ConsulAgent[] = []
const backends: ConsulBackend[] = []
const others: Array<{ close(): Promise<unknown> | unknown }> = []
let agent: ConsulAgent
let scratch: string

before(async () => {
  agent = await ConsulAgent.start()
  agents.push(agent)
  scratch = tempDir('consul-markers')
})
after(async () => {
  await Promise.allSettled(backends.map((b) => b.close()))
  await Promise.allSettled(others.map((o) => o.close()))
  await Promise.allSettled(agents.map((a) => a.close()))
  removeTempDir(scratch)
})

let prefixSeq = 0
const uniquePrefix = (name: string) => `ballot-test/${name}-${++prefixSeq}`

function backend(opts: Partial<ConsulBackendOptions> & { prefix: string }, on = agent): ConsulBackend {
  const b = new ConsulBackend({ address: on.address, waitMs: 5000, retryMs: 200, ...opts })
  backends.push(b)
  return b
}

async function candidate(prefix: string, id: string, extra: Partial<ConsulBackendOptions> = {}, on = agent) {
  const events = new Recorder(id)
  const b = backend({ prefix, ...extra }, on)
  await b.connect(events, { watchOnly: false })
  const session = await b.openSession(10_000)
  const entry = await b.join({ id, address: `10.0.0.2:${id.length}`, tags: { id } })
  return { b, events, session, entry }
}

async function follower(prefix: string, on = agent) {
  const events = new Recorder('follower')
  const b = backend({ prefix }, on)
  await b.connect(events, { watchOnly: true })
  return { b, events }
}

function lockProcess(prefix: string, script: string): OwnedProcess {
  const p = agent.lock(prefix, script)
  others.push({ close: () => p.stop('SIGKILL') })
  return p
}

const ids = (entries: LineEntry[]) => entries.map((e) => e.id)

/** Waits until the follower's line is led by `id`; returns that head. */
async function headIs(events: Recorder, id: string, timeoutMs = 10_000): Promise<LineEntry> {
  return waitUntil(
    `${events.name} to see ${id} lead (lines: ${JSON.stringify(events.lines())})`,
    () => {
      const head = events.lastLine()[0]
      return head?.id === id ? head : undefined
    },
    timeoutMs,
  )
}

describe('Consul backend', () => {
  test('exact uint64 flags survive the JSON decoder; nothing inside strings is touched', () => {
    const text =
      '[{"Key":"a\\",\\"Flags\\":1","Flags":3304740253564472344,"CreateIndex":18446744073709551615}]'
    const [kv] = parseConsulJson(text) as Array<Record<string, string>>
    assert.equal(kv!.Flags, '3304740253564472344')
    assert.equal(BigInt(kv!.Flags!), CONSUL_LOCK_FLAGS)
    assert.equal(kv!.CreateIndex, '18446744073709551615')
    assert.equal(kv!.Key, 'a","Flags":1')
    assert.notEqual(
      BigInt(JSON.parse('3304740253564472344')),
      CONSUL_LOCK_FLAGS,
      'plain JSON.parse rounds it',
    )
  })

  test("the session and the key are consul lock's: TTL, lock-delay, release, serfHealth, flags", async () => {
    const prefix = uniquePrefix('recipe')
    const a = await candidate(prefix, 'alpha')
    assert.equal(a.session.ttlMs, 10_000, 'Consul refuses TTLs under 10 s: the granted TTL is reported')
    const info = JSON.parse((await agent.http('GET', `/v1/session/info/${a.session.id}`)).text)[0]
    assert.equal(info.TTL, '10s')
    assert.equal(info.LockDelay, 15_000_000_000)
    assert.equal(info.Behavior, 'release')
    assert.deepEqual(info.NodeChecks ?? info.Checks, ['serfHealth'])
    const f = await follower(prefix)
    const head = await headIs(f.events, 'alpha')
    const raw = await agent.http('GET', `/v1/kv/${prefix}/.lock`)
    assert.match(raw.text, /"Flags": 3304740253564472344,/, 'the exact flags, not a rounded double')
    const kv = JSON.parse(raw.text)[0]
    assert.equal(kv.Session, a.session.id)
    assert.equal(Buffer.from(kv.Value, 'base64').toString(), 'alpha')
    assert.equal(head.token, BigInt(kv.ModifyIndex), 'token = ModifyIndex after the acquire')
    assert.equal(head.key, a.entry.key, 'a ballot holder is shown by its own line key (what join returned)')
    assert.equal(head.order, 0n)
    assert.equal(head.address, '10.0.0.2:5')
    assert.match(a.entry.key, new RegExp(`^${prefix}\\.ballot/line/${a.session.id}$`))
    // Longer TTLs are kept (rounded up to whole seconds).
    assert.equal((await a.b.openSession(12_300)).ttlMs, 13_000)
  })

  test('a follower sees the holder, then the line in order; a clean stop hands over at once', async () => {
    const prefix = uniquePrefix('order')
    const f = await follower(prefix)
    const a = await candidate(prefix, 'a') // lock-delay 15 s by default
    await f.events.waitLine(['a'])
    const b = await candidate(prefix, 'b')
    await f.events.waitLine(['a', 'b'])
    const c = await candidate(prefix, 'c')
    await f.events.waitLine(['a', 'b', 'c'])
    const line = f.events.lastLine()
    assert.ok(line[1]!.order < line[2]!.order && line[1]!.order > 0n)
    await b.b.leave()
    await f.events.waitLine(['a', 'c'])
    const started = Date.now()
    await a.b.closeSession() // releases first: no lock-delay for c
    await f.events.waitLine(['c'])
    assert.ok(
      Date.now() - started < 3000,
      `handed over in ${Date.now() - started} ms despite a 15 s lock-delay`,
    )
    await c.b.closeSession()
    await f.events.waitLine([])
    assert.equal(
      (await agent.http('GET', `/v1/kv/${prefix}/.lock`)).status,
      404,
      'the unheld lock key is deleted',
    )
    assert.equal((await agent.http('GET', `/v1/session/info/${c.session.id}`)).text.trim(), '[]')
    // The line as the follower saw it, in order (an empty line while nobody held the lock between two holders).
    const seen = f.events
      .lines()
      .filter((l, i, all) => i === 0 || JSON.stringify(l) !== JSON.stringify(all[i - 1]))
    assert.deepEqual(
      seen.filter((l) => l.length > 0),
      [['a'], ['a', 'b'], ['a', 'b', 'c'], ['a', 'c'], ['c']],
    )
  })

  test('each candidate blocks only on the key just before its own: no herd', async () => {
    const prefix = uniquePrefix('herd')
    const f = await follower(prefix)
    const cs: Array<Awaited<ReturnType<typeof candidate>>> = []
    for (const id of ['a', 'b', 'c']) cs.push(await candidate(prefix, id))
    await f.events.waitLine(['a', 'b', 'c'])
    for (const c of cs) await c.b.keepAlive()
    await waitUntil('everyone to see the line', () => cs.every((c) => c.events.lastLine().length === 3))
    await sleep(300)
    const seen = cs.map((c) => c.events.log.length)
    await candidate(prefix, 'd')
    await f.events.waitLine(['a', 'b', 'c', 'd'])
    // The holder watches the line as well as the lock (so that it lists a newcomer at once, with no
    // polling at rest); the waiters are not woken.
    await cs[0]!.events.waitLine(['a', 'b', 'c', 'd'])
    await sleep(500)
    assert.deepEqual(
      cs.slice(1).map((c) => c.events.log.length),
      seen.slice(1),
      'a newcomer wakes no waiter already in the line',
    )
    await cs[0]!.b.closeSession()
    await headIs(cs[1]!.events, 'b')
    await f.events.waitLine(['b', 'c', 'd'])
    await sleep(500)
    assert.equal(cs[2]!.events.log.length, seen[2], 'c blocks on b, which did not change')
    await cs[2]!.b.keepAlive()
    await cs[2]!.events.waitLine(['b', 'c', 'd'])
  })

  test('the token (ModifyIndex after the acquire) grows with every new leadership', async () => {
    const prefix = uniquePrefix('token')
    const f = await follower(prefix)
    const a = await candidate(prefix, 'a')
    const b = await candidate(prefix, 'b')
    const tokens: bigint[] = [(await headIs(f.events, 'a')).token]
    await a.b.leave()
    tokens.push((await headIs(f.events, 'b')).token)
    await a.b.join({ id: 'a' })
    await b.b.closeSession()
    tokens.push((await headIs(f.events, 'a')).token)
    await a.b.leave()
    await f.events.waitLine([])
    await a.b.join({ id: 'a' })
    tokens.push((await headIs(f.events, 'a')).token)
    for (let i = 1; i < tokens.length; i++)
      assert.ok(tokens[i]! > tokens[i - 1]!, `tokens must grow: ${tokens.join(' < ')}`)
  })

  test('a session destroyed without a release: the lock-delay holds everyone off', async () => {
    const prefix = uniquePrefix('lockdelay')
    const f = await follower(prefix)
    const a = await candidate(prefix, 'a', { lockDelayMs: 2000 })
    const b = await candidate(prefix, 'b', { lockDelayMs: 2000 })
    await f.events.waitLine(['a', 'b'])
    const from = a.events.log.length
    const destroyed = Date.now()
    await agent.http('PUT', `/v1/session/destroy/${a.session.id}`)
    await a.events.waitLine([]) // a sees it lost the lock at once
    await headIs(f.events, 'b', 10_000)
    const waited = Date.now() - destroyed
    assert.ok(waited >= 1900, `b acquired after ${waited} ms; the lock-delay is 2000 ms`)
    await assert.rejects(a.b.keepAlive(), SessionLostError)
    await a.events.waitKind('sessionLost', from)
    await b.b.close()
  })

  test('consul lock holds: ballot shows it as holder and cannot acquire; after it exits ballot acquires', async () => {
    const prefix = uniquePrefix('interop-1')
    const marker = join(scratch, 'holder-1')
    const lock = lockProcess(prefix, `touch ${marker}; sleep 60`)
    await waitUntil('consul lock to run its command', () => existsSync(marker), 15_000)
    const f = await follower(prefix)
    const a = await candidate(prefix, 'ballot-a')
    const holder = await waitUntil('the consul lock holder in the line', () => {
      const head = f.events.lastLine()[0]
      return head && head.key === `${prefix}/.lock` ? head : undefined
    })
    const sessions = JSON.parse((await agent.http('GET', '/v1/session/list')).text) as Array<{
      ID: string
      Name: string
    }>
    const consulLockSession = sessions.find((s) => s.Name.startsWith('Consul lock'))!
    assert.equal(holder.id, consulLockSession.ID, "a consul lock holder's id is its session id")
    await a.events.waitLine([consulLockSession.ID, 'ballot-a'])
    await sleep(1000)
    assert.equal(ids(f.events.lastLine())[0], consulLockSession.ID, 'ballot did not take the lock')
    await lock.stop('SIGINT', 10_000)
    assert.equal(lock.exitCode, 0, lock.tail())
    const head = await headIs(f.events, 'ballot-a')
    assert.ok(head.token > holder.token)
    assert.equal(head.key, a.entry.key)
  })

  test('ballot holds: consul lock waits, and runs its command only after ballot releases', async () => {
    const prefix = uniquePrefix('interop-2')
    const f = await follower(prefix)
    const a = await candidate(prefix, 'ballot-a')
    await headIs(f.events, 'ballot-a')
    const marker = join(scratch, 'holder-2')
    const lock = lockProcess(prefix, `touch ${marker}; sleep 1`)
    await sleep(2000)
    assert.equal(
      existsSync(marker),
      false,
      'consul lock must not run its command while ballot holds the lock',
    )
    assert.ok(lock.running, lock.tail())
    await a.b.leave()
    await waitUntil('consul lock to run its command', () => existsSync(marker), 15_000)
    await waitUntil('the line to show consul lock', () => f.events.lastLine()[0]?.key === `${prefix}/.lock`)
    await lock.waitExit()
    assert.equal(lock.exitCode, 0, lock.tail())
    // consul lock deleted its key on the way out; ballot takes the lock again.
    await a.b.join({ id: 'ballot-a' })
    await headIs(f.events, 'ballot-a')
  })

  test('agent stopped and restarted: suspended, then sessionLost (a dev agent forgets); a new session leads', async () => {
    const own = await ConsulAgent.start()
    agents.push(own)
    const prefix = uniquePrefix('restart')
    const a = await candidate(prefix, 'a', {}, own)
    await a.events.waitLine(['a'])
    const from = a.events.log.length
    await own.stop('SIGKILL')
    const suspendedAt = await a.events.waitKind('suspended', from, 10_000)
    const reason = (a.events.log[suspendedAt] as { reason: Error }).reason
    assert.ok(reason instanceof StoreError && reason.code === 'STORE_UNAVAILABLE', String(reason))
    await assert.rejects(
      a.b.keepAlive(),
      (err: Error) => err instanceof StoreError && err.code === 'STORE_UNAVAILABLE',
    )
    await own.start()
    await a.events.waitKind('sessionLost', suspendedAt, 15_000)
    await assert.rejects(a.b.keepAlive(), SessionLostError)
    await a.b.openSession(10_000)
    await a.b.join({ id: 'a' })
    await headIs(a.events, 'a')
  })

  test('cut off shorter than the TTL: suspended, then resumed with the same session, still holding', async () => {
    const proxy = await TcpProxy.start(agent.ports.http)
    others.push(proxy)
    const prefix = uniquePrefix('cut')
    const a = await candidate(prefix, 'a', { address: `http://${proxy.address}` })
    await headIs(a.events, 'a')
    const from = a.events.log.length
    proxy.cut()
    const suspendedAt = await a.events.waitKind('suspended', from, 10_000)
    await assert.rejects(
      a.b.keepAlive(),
      (err: Error) => err instanceof StoreError && err.code === 'STORE_UNAVAILABLE',
    )
    proxy.heal()
    await a.events.waitKind('resumed', suspendedAt, 10_000)
    await a.b.keepAlive()
    assert.equal(a.events.log.slice(from).filter((e) => e.kind === 'sessionLost').length, 0)
    assert.equal(ids(a.events.lastLine())[0], 'a')
  })

  test('bad configuration: one clear error with a stable code', async () => {
    const [dead] = await freePorts(1)
    const unreachable = new ConsulBackend({
      address: `http://127.0.0.1:${dead}`,
      prefix: 'x',
      requestTimeoutMs: 1000,
    })
    backends.push(unreachable)
    const events = new Recorder('u')
    await assert.rejects(unreachable.connect(events, { watchOnly: true }), (err: Error) => {
      assert.ok(err instanceof StoreError, String(err))
      assert.equal(err.code, 'STORE_UNAVAILABLE')
      assert.match(
        err.message,
        new RegExp(`^consul: read (lock|line) at http://127\\.0\\.0\\.1:${dead}/v1: `),
      )
      return true
    })
    assert.deepEqual(events.log, [], 'a failed connect reports nothing')
    assert.throws(() => new ConsulBackend({ prefix: '' }), { code: 'INVALID_OPTIONS' })
    assert.throws(() => new ConsulBackend({ prefix: 'a', address: 'not a url' }), { code: 'INVALID_OPTIONS' })
    assert.throws(() => new ConsulBackend({ prefix: 'a', linePrefix: 'a/line' }), { code: 'INVALID_OPTIONS' })

    // Foreign data: a plain key where the lock should be. consul lock itself refuses it the same way.
    const prefix = uniquePrefix('foreign')
    await agent.http('PUT', `/v1/kv/${prefix}/.lock?flags=42`, 'hello')
    const refusing = backend({ prefix })
    await assert.rejects(refusing.connect(new Recorder('f'), { watchOnly: false }), (err: Error) => {
      assert.ok(err instanceof StoreError)
      assert.equal(err.code, 'STORE_REFUSED')
      assert.match(err.message, /Existing key does not match lock use/)
      assert.match(err.message, /flags 42/)
      return true
    })
    const lock = lockProcess(prefix, 'true')
    await lock.waitExit()
    assert.notEqual(lock.exitCode, 0)
    assert.match(lock.output, /Existing key does not match lock use/)
    // The same key appearing later: join and keepAlive refuse.
    const prefix2 = uniquePrefix('foreign-later')
    const a = await candidate(prefix2, 'a')
    await a.b.leave()
    await agent.http('PUT', `/v1/kv/${prefix2}/.lock?flags=7`, '')
    await waitUntil('the foreign key to be refused', async () => {
      try {
        await a.b.keepAlive()
        return false
      } catch (err) {
        return err instanceof StoreError && err.code === 'STORE_REFUSED'
      }
    })
    await assert.rejects(a.b.join({ id: 'a' }), { code: 'STORE_REFUSED' })
  })
})
