/**
 * The ZooKeeper lease backend against a real ZooKeeper 3.8 (and Curator's own LeaderLatch): the
 * Curator layout, the line in order, predecessor-only watches, tokens, outages and bad configuration.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import zookeeper from 'node-zookeeper-client'
import { SessionLostError, StoreError } from '../src/errors.js'
import type { LineEntry } from '../src/lease/backend.js'
import { loadOptional } from '../src/lease/stores/optional.js'
import { ZooKeeperBackend, type ZooKeeperBackendOptions } from '../src/lease/stores/zookeeper.js'
import { Recorder } from './helpers/backend-recorder.js'
import { CuratorParticipant } from './helpers/curator.js'
import { freePorts, sleep, waitUntil } from './helpers/services.js'
import { TcpProxy } from './helpers/tcp-proxy.js'
import { fourLetter, ZooKeeperServer } from './helpers/zookeeper.js'

const TTL = 2000
const servers: ZooKeeperServer[] = []
const backends: ZooKeeperBackend[] = []
const others: Array<{ close(): Promise<unknown> | unknown }> = []
let zk: ZooKeeperServer

before(async () => {
  zk = await ZooKeeperServer.start()
  servers.push(zk)
})
after(async () => {
  await Promise.allSettled(backends.map((b) => b.close()))
  await Promise.allSettled(others.map((o) => o.close()))
  await Promise.allSettled(servers.map((s) => s.close()))
})

let pathSeq = 0
const uniquePath = (name: string) => `/ballot-test/${name}-${++pathSeq}`

function backend(opts: Partial<ZooKeeperBackendOptions> & { path: string }, server = zk): ZooKeeperBackend {
  const b = new ZooKeeperBackend({ connect: server.connectString, sessionTimeoutMs: TTL, ...opts })
  backends.push(b)
  return b
}

/** A candidate: connected, a session open, joined under `id`. */
async function candidate(path: string, id: string, server = zk, ttlMs = TTL) {
  const events = new Recorder(id)
  const b = backend({ path, sessionTimeoutMs: ttlMs }, server)
  await b.connect(events, { watchOnly: false })
  const session = await b.openSession(ttlMs)
  const entry = await b.join({ id, address: `10.0.0.1:${id.length}`, tags: { id } })
  return { b, events, session, entry }
}

async function follower(path: string, server = zk) {
  const events = new Recorder('follower')
  const b = backend({ path }, server)
  await b.connect(events, { watchOnly: true })
  return { b, events }
}

/** A plain node-zookeeper-client, to look at the tree the way any other tool would. */
async function raw(server = zk): Promise<zookeeper.Client> {
  const client = zookeeper.createClient(server.connectString, { sessionTimeout: 4000 })
  await new Promise<void>((resolve) => {
    client.once('connected', () => resolve())
    client.connect()
  })
  others.push({ close: () => client.close() })
  return client
}

function rawChildren(client: zookeeper.Client, path: string): Promise<string[]> {
  return new Promise((resolve, reject) => client.getChildren(path, (e, c) => (e ? reject(e) : resolve(c))))
}

function rawData(client: zookeeper.Client, path: string): Promise<[Buffer, zookeeper.Stat]> {
  return new Promise((resolve, reject) =>
    client.getData(path, (e, d, s) => (e ? reject(e) : resolve([d, s]))),
  )
}

/** Data watches per session, from the server itself (`wchc`): session id (hex, no 0x) → watched paths. */
async function dataWatches(server = zk): Promise<Map<string, string[]>> {
  const text = await fourLetter(server.port, 'wchc')
  const out = new Map<string, string[]>()
  let session = ''
  for (const line of text.split('\n')) {
    if (line.startsWith('0x')) {
      session = line.slice(2).trim().padStart(16, '0')
      out.set(session, [])
    } else if (line.trim()) out.get(session)?.push(line.trim())
  }
  return out
}

const ids = (entries: LineEntry[]) => entries.map((e) => e.id)

describe('ZooKeeper backend', () => {
  test("Curator's layout: _c_<uuid>-latch-<seq> nodes holding the raw id, metadata in a sibling path", async () => {
    const path = uniquePath('layout')
    const a = await candidate(path, 'alpha')
    assert.match(a.entry.key, new RegExp(`^${path}/_c_[0-9a-f-]{36}-latch-\\d{10}$`))
    assert.equal(a.entry.order, 0n)
    assert.equal(a.session.ttlMs, TTL)
    const client = await raw()
    const children = await rawChildren(client, path)
    assert.deepEqual(
      children,
      [a.entry.key.slice(path.length + 1)],
      'nothing but latch nodes in the latch path',
    )
    const [data, stat] = await rawData(client, a.entry.key)
    assert.equal(data.toString(), 'alpha')
    assert.equal(stat.czxid.readBigInt64BE(0), a.entry.token, 'token = czxid of the node')
    assert.equal(stat.ephemeralOwner.toString('hex'), a.session.id, 'ephemeral, owned by the session')
    const guid = children[0]!.slice(0, children[0]!.lastIndexOf('-latch-'))
    const [meta] = await rawData(client, `${path}-meta/${guid}`)
    assert.deepEqual(JSON.parse(meta.toString()), { address: '10.0.0.1:5', tags: { id: 'alpha' } })
    assert.equal(a.entry.address, '10.0.0.1:5')
    assert.deepEqual(a.entry.tags, { id: 'alpha' })
  })

  test('the session timeout is the TTL asked for, as the server grants it', async () => {
    const b = backend({ path: uniquePath('ttl') })
    await b.connect(new Recorder('ttl'), { watchOnly: false })
    // tickTime 200 ms: the server grants between 400 and 4000 ms.
    assert.equal((await b.openSession(3000)).ttlMs, 3000)
    assert.equal((await b.openSession(60_000)).ttlMs, 4000)
    assert.equal((await b.openSession(100)).ttlMs, 400)
  })

  test('a follower sees joins and leaves in order; the head changes as candidates go', async () => {
    const path = uniquePath('order')
    const f = await follower(path)
    const a = await candidate(path, 'a')
    await f.events.waitLine(['a'])
    const b = await candidate(path, 'b')
    await f.events.waitLine(['a', 'b'])
    const c = await candidate(path, 'c')
    await f.events.waitLine(['a', 'b', 'c'])
    await b.b.leave()
    await f.events.waitLine(['a', 'c'])
    await a.b.closeSession()
    await f.events.waitLine(['c'])
    await c.b.close()
    await f.events.waitLine([])
    assert.deepEqual(f.events.lines(), [[], ['a'], ['a', 'b'], ['a', 'b', 'c'], ['a', 'c'], ['c'], []])
    const orders = f.events.lastLine()
    assert.equal(orders.length, 0)
    // Joining twice under one session keeps one entry.
    const d = await candidate(path, 'd')
    assert.deepEqual(await d.b.join({ id: 'd' }), d.entry)
    await f.events.waitLine(['d'])
  })

  test('each candidate watches only the node just before its own: no herd', async () => {
    const path = uniquePath('herd')
    const f = await follower(path)
    const cs: Array<Awaited<ReturnType<typeof candidate>>> = []
    for (const id of ['a', 'b', 'c', 'd']) cs.push(await candidate(path, id))
    await f.events.waitLine(['a', 'b', 'c', 'd'])
    // Those in the line learn of later joiners at their next keepAlive (its round trip reads the children).
    for (const c of cs) await c.b.keepAlive()
    await waitUntil('each candidate to see the whole line', () =>
      cs.every((c) => c.events.lastLine().length === 4),
    )
    const watches = await dataWatches()
    for (let i = 0; i < cs.length; i++) {
      const mine: string[] = watches.get(cs[i]!.session.id) ?? []
      assert.deepEqual(mine, i === 0 ? [] : [cs[i - 1]!.entry.key], `${cs[i]!.entry.id} watches ${mine}`)
    }
    // A newcomer wakes nobody in the line (no watch on the children); the follower sees it.
    const seen = cs.map((c) => c.events.log.length)
    const e = await candidate(path, 'e')
    await f.events.waitLine(['a', 'b', 'c', 'd', 'e'])
    await sleep(300)
    assert.deepEqual(
      cs.map((c) => c.events.log.length),
      seen,
      'candidates already in the line were not told of the newcomer',
    )
    // The head goes: only its successor is woken and sees itself at the head at once.
    await cs[0]!.b.closeSession()
    await cs[1]!.events.waitLine(['b', 'c', 'd', 'e'])
    await sleep(300)
    assert.deepEqual(
      cs.slice(2).map((c) => c.events.log.length),
      seen.slice(2),
      'c and d were not woken by a change two places ahead',
    )
    // A keepAlive reads the children as its round trip, so the others catch up on their next one.
    await cs[3]!.b.keepAlive()
    await cs[3]!.events.waitLine(['b', 'c', 'd', 'e'])
    assert.deepEqual(ids(e.events.lastLine()), ['a', 'b', 'c', 'd', 'e'])
  })

  test('the token (czxid of the leading node) grows with every new leadership', async () => {
    const path = uniquePath('token')
    const f = await follower(path)
    const a = await candidate(path, 'a')
    const b = await candidate(path, 'b')
    const tokens: bigint[] = []
    const head = async (id: string) => {
      const line = await waitUntil(`head ${id}`, () => {
        const l = f.events.lastLine()
        return l[0]?.id === id ? l : undefined
      })
      tokens.push(line[0]!.token)
    }
    await head('a')
    await a.b.leave()
    await head('b')
    await a.b.join({ id: 'a' }) // a rejoins behind b
    const c = await candidate(path, 'c')
    await b.b.closeSession()
    await head('a')
    await a.b.leave()
    await head('c')
    await c.b.leave()
    await a.b.join({ id: 'a' })
    await head('a')
    for (let i = 1; i < tokens.length; i++)
      assert.ok(tokens[i]! > tokens[i - 1]!, `tokens must grow: ${tokens.join(' < ')}`)
  })

  test('Curator LeaderLatch and ballot share one latch', async () => {
    const path = uniquePath('curator')
    const f = await follower(path)
    const curator = await CuratorParticipant.start(zk.connectString, path, 'curator-1')
    others.push({ close: () => curator.stop('SIGKILL') })
    await curator.waitLine(/^leader$/)
    const a = await candidate(path, 'ballot-a')
    const b = await candidate(path, 'ballot-b')
    // Who created first leads; each side sees the other.
    const line = await f.events.waitLine(['curator-1', 'ballot-a', 'ballot-b'])
    assert.equal(line[0]!.key, curator.node)
    assert.equal(line[0]!.address, undefined, 'a Curator entry carries no ballot metadata')
    await a.b.keepAlive()
    await a.events.waitLine(['curator-1', 'ballot-a', 'ballot-b'])
    assert.deepEqual(await curator.participants(), ['curator-1', 'ballot-a', 'ballot-b'])
    assert.ok(curator.isLeader)
    // The Curator participant exits (closing its latch): ballot's next in line becomes the head.
    assert.equal(await curator.closeStdin(), 0)
    await a.events.waitLine(['ballot-a', 'ballot-b'])
    await f.events.waitLine(['ballot-a', 'ballot-b'])
    // A Curator participant joining now waits behind ballot, and leads once ballot's candidates go.
    const curator2 = await CuratorParticipant.start(zk.connectString, path, 'curator-2')
    others.push({ close: () => curator2.stop('SIGKILL') })
    await f.events.waitLine(['ballot-a', 'ballot-b', 'curator-2'])
    assert.deepEqual(await curator2.participants(), ['ballot-a', 'ballot-b', 'curator-2'])
    assert.equal(curator2.isLeader, false)
    await a.b.leave()
    await b.events.waitLine(['ballot-b', 'curator-2'])
    await b.b.closeSession()
    await curator2.waitLine(/^leader$/)
    await f.events.waitLine(['curator-2'])
    await curator2.stop('SIGTERM')
    assert.equal(curator2.proc.exitCode, 0, 'SIGTERM closes the latch and exits 0')
    await f.events.waitLine([])
  })

  test('server stopped and restarted: suspended, then resumed on the same session', async () => {
    const server = await ZooKeeperServer.start()
    servers.push(server)
    const path = uniquePath('restart')
    // The longest session the server grants (20 × tickTime), so a slow restart on a busy machine
    // still ends in `resumed` (ZooKeeper gives restored sessions a fresh timeout when it loads them).
    const a = await candidate(path, 'a', server, 4000)
    const f = await follower(path, server)
    await f.events.waitLine(['a'])
    const from = a.events.log.length
    await server.stop('SIGKILL')
    const suspendedAt = await a.events.waitKind('suspended', from, 5000)
    const reason = (a.events.log[suspendedAt] as { reason: Error }).reason
    assert.ok(reason instanceof StoreError && reason.code === 'STORE_UNAVAILABLE', String(reason))
    await assert.rejects(
      a.b.keepAlive(),
      (err: Error) => err instanceof StoreError && err.code === 'STORE_UNAVAILABLE',
    )
    await server.start()
    await a.events.waitKind('resumed', suspendedAt, 15_000)
    await a.b.keepAlive()
    assert.equal(
      a.events.log.slice(from).filter((e) => e.kind === 'sessionLost').length,
      0,
      'ZooKeeper restores sessions at restart',
    )
    await f.events.waitKind('resumed', 0, 15_000)
    assert.deepEqual(ids(f.events.lastLine()), ['a'], 'the ephemeral node survived with its session')
  })

  test('cut off longer than the session timeout: sessionLost, then a new session joins again', async () => {
    const proxy = await TcpProxy.start(zk.port)
    others.push(proxy)
    const path = uniquePath('expire')
    const events = new Recorder('cut')
    const b = backend({ connect: proxy.address, path })
    await b.connect(events, { watchOnly: false })
    const s1 = await b.openSession(TTL)
    await b.join({ id: 'cut' })
    const f = await follower(path)
    await f.events.waitLine(['cut'])
    proxy.cut()
    const suspendedAt = await events.waitKind('suspended', 0, 5000)
    // The server expires the session after the TTL: the node goes for everyone else.
    await f.events.waitLine([], TTL + 3000)
    proxy.heal()
    const lostAt = await events.waitKind('sessionLost', suspendedAt, 10_000)
    assert.ok((events.log[lostAt] as { reason: Error }).reason instanceof SessionLostError)
    assert.equal(events.log.slice(suspendedAt).filter((e) => e.kind === 'resumed').length, 0)
    await assert.rejects(b.keepAlive(), SessionLostError)
    await assert.rejects(b.join({ id: 'cut' }), SessionLostError)
    const s2 = await b.openSession(TTL)
    assert.notEqual(s2.id, s1.id)
    await b.join({ id: 'cut' })
    await f.events.waitLine(['cut'])
    await b.keepAlive()
  })

  test('a store client package that is not installed is named in the error', async () => {
    const pkg = 'ballot-no-such-client-package'
    await assert.rejects(
      loadOptional(pkg, 'zookeeper', () => import(pkg)),
      (err: Error & { code?: string }) =>
        err.code === 'INVALID_OPTIONS' &&
        err.message === `store: the zookeeper backend needs the package "${pkg}": npm install ${pkg}`,
    )
  })

  test('bad configuration: one clear error with a stable code', async () => {
    const [dead] = await freePorts(1)
    const unreachable = new ZooKeeperBackend({
      connect: `127.0.0.1:${dead}`,
      path: '/x',
      connectTimeoutMs: 800,
    })
    backends.push(unreachable)
    const started = Date.now()
    await assert.rejects(unreachable.connect(new Recorder('u'), { watchOnly: true }), (err: Error) => {
      assert.ok(err instanceof StoreError)
      assert.equal(err.code, 'STORE_UNAVAILABLE')
      assert.match(err.message, new RegExp(`zookeeper: cannot reach 127\\.0\\.0\\.1:${dead} within 800 ms`))
      return true
    })
    assert.ok(Date.now() - started < 3000)

    assert.throws(() => new ZooKeeperBackend({ connect: zk.connectString, path: 'no-slash' }), {
      code: 'INVALID_OPTIONS',
    })
    assert.throws(
      () => new ZooKeeperBackend({ connect: zk.connectString, path: '/a', metaPath: '/a/meta' }),
      {
        code: 'INVALID_OPTIONS',
      },
    )

    // Foreign data in the latch path: a persistent node that is not a latch candidate.
    const path = uniquePath('foreign')
    const client = await raw()
    await new Promise<void>((resolve, reject) =>
      client.mkdirp(`${path}/config`, Buffer.from('x'), (e) => (e ? reject(e) : resolve())),
    )
    const refusing = backend({ path })
    await assert.rejects(refusing.connect(new Recorder('f'), { watchOnly: false }), (err: Error) => {
      assert.ok(err instanceof StoreError)
      assert.equal(err.code, 'STORE_REFUSED')
      assert.match(err.message, new RegExp(`${path}/config`))
      return true
    })
    // It appearing later: the candidate's next keepAlive and join refuse, naming the node.
    const path2 = uniquePath('foreign-later')
    const a = await candidate(path2, 'a')
    await new Promise<void>((resolve, reject) =>
      client.create(`${path2}/x-latch-0000000099`, Buffer.from('x'), (e) => (e ? reject(e) : resolve())),
    )
    await a.b.keepAlive().catch(() => {})
    await waitUntil('the foreign node to be refused', async () => {
      try {
        await a.b.keepAlive()
        return false
      } catch (err) {
        return (
          err instanceof StoreError && err.code === 'STORE_REFUSED' && /x-latch-0000000099/.test(err.message)
        )
      }
    })
  })
})
