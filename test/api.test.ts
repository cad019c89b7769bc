// The library's API as a new user meets it (issue 10): options refused with a field named, readonly
// and `| undefined` options accepted, one `leading` flag per change, `previous` across a hand-over,
// resign() that waits for the next leader, waitForLeader(), `await using`, read-only counters, and
// the in-process cluster helper.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import {
  BallotError,
  BullyElection,
  InvalidOptionsError,
  type LeadershipChange,
  LeadershipLostError,
  localBullyCluster,
  localRaftCluster,
  NotLeaderError,
  RaftElection,
  TransportError,
} from '../src/index.js'
import { freePorts } from './helpers/raft-cluster.js'

const dirs: string[] = []
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

/** Asserts `build` throws an InvalidOptionsError naming `field`, with a message matching `text`. */
function refuses(build: () => unknown, field: string, text: RegExp): void {
  assert.throws(build, (err: unknown) => {
    assert.ok(err instanceof InvalidOptionsError, `an InvalidOptionsError, got ${err}`)
    assert.equal(err.code, 'INVALID_OPTIONS')
    assert.equal(err.field, field)
    assert.match(err.message, text)
    return true
  })
}

describe('options', () => {
  const members = [
    { id: 'a', address: '127.0.0.1:7101' },
    { id: 'b', address: '127.0.0.1:7102' },
    { id: 'w', address: '127.0.0.1:7103', kind: 'observer' },
  ] as const

  test('readonly (as const) member lists and undefined optional values are accepted', () => {
    const e = new RaftElection({
      id: 'a',
      members,
      key: undefined,
      dataDir: undefined,
      tags: undefined,
      timing: { heartbeatIntervalMs: undefined, electionTimeoutMinMs: 400 },
    })
    assert.equal(e.timing.heartbeatIntervalMs, 100, 'an undefined field takes the default')
    assert.equal(e.timing.electionTimeoutMinMs, 400)
    assert.equal(e.id, 'a')
  })

  test('unknown keys are refused, with a hint', () => {
    refuses(
      () => new RaftElection({ id: 'a', members, memebrs: [] } as never),
      'memebrs',
      /unknown option \(did you mean members\?\)/,
    )
    refuses(
      () => new RaftElection({ id: 'a', members, timing: { heartbeatMs: 10 } } as never),
      'timing.heartbeatMs',
      /unknown option/,
    )
    refuses(
      () => new BullyElection({ listen: '127.0.0.1:7104', pdi: 3 } as never),
      'pdi',
      /did you mean pid\?/,
    )
    refuses(
      () =>
        new RaftElection({ id: 'a', members: [{ id: 'a', address: '127.0.0.1:7101', prio: 1 }] } as never),
      'members[0].prio',
      /unknown option/,
    )
  })

  test('a kind that is not voter or observer is refused', () => {
    refuses(
      () =>
        new RaftElection({
          id: 'a',
          members: [{ id: 'a', address: '127.0.0.1:7101', kind: 'voterr' }],
        } as never),
      'members[0].kind',
      /must be one of "voter", "observer", got "voterr"/,
    )
  })

  test('two members on one address, and port 0, are refused in the constructor', () => {
    refuses(
      () =>
        new RaftElection({
          id: 'a',
          members: [
            { id: 'a', address: '127.0.0.1:7101' },
            { id: 'b', address: '127.0.0.1:7101' },
          ],
        }),
      'members[1].address',
      /also the address of members\[0\] \(a\)/,
    )
    refuses(
      () => new RaftElection({ id: 'a', members: [{ id: 'a', address: '127.0.0.1:0' }] }),
      'members[0].address',
      /localRaftCluster/,
    )
    refuses(
      () =>
        new BullyElection({
          listen: '127.0.0.1:7104',
          members: [
            { id: 'x', address: '127.0.0.1:7105' },
            { id: 'y', address: '127.0.0.1:7105' },
          ],
        }),
      'members',
      /127.0.0.1:7105 is listed for both x and y/,
    )
  })

  test('a dataDir that is a file is INVALID_OPTIONS naming dataDir, not a raw EEXIST', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ballot-api-'))
    dirs.push(dir)
    const file = join(dir, 'a-file')
    writeFileSync(file, 'x')
    refuses(() => new RaftElection({ id: 'a', members, dataDir: file }), 'dataDir', /not a directory/)
    refuses(
      () => new BullyElection({ listen: '127.0.0.1:7104', id: 'x', dataDir: join(file, 'below') }),
      'dataDir',
      /is a file, not a directory/,
    )
  })

  test('an empty key is refused (an unset variable is undefined, which means no key)', () => {
    refuses(() => new RaftElection({ id: 'a', members, key: '' }), 'key', /non-empty/)
  })

  test('bully takes members as objects, like raft; nodes (strings) stays as a deprecated alias', () => {
    const a = new BullyElection({
      listen: '127.0.0.1:7106',
      members: [{ address: '127.0.0.1:7107' }, { id: 'z', address: '127.0.0.1:7108' }],
    })
    const b = new BullyElection({ listen: '127.0.0.1:7106', nodes: ['127.0.0.1:7107', 'z=127.0.0.1:7108'] })
    const ids = (e: BullyElection) =>
      e
        .clusterState()
        .members.map((m) => m.id)
        .sort()
    assert.deepEqual(ids(a), ['127.0.0.1:7106', '127.0.0.1:7107', 'z'])
    assert.deepEqual(ids(a), ids(b))
    assert.equal(a.timing.leaderTimeoutMs, 350, 'the effective timing is public')
  })
})

describe('errors', () => {
  test('start() on a host that does not resolve rejects with a TransportError naming the address', async () => {
    const e = new RaftElection({ id: 'a', members: [{ id: 'a', address: 'no-such-host.invalid:7101' }] })
    await assert.rejects(e.start(), (err: unknown) => {
      assert.ok(err instanceof TransportError)
      assert.equal(err.code, 'TRANSPORT')
      assert.equal(err.address, 'no-such-host.invalid:7101')
      assert.match(err.message, /no-such-host.invalid:7101/)
      return true
    })
    await e.stop()
  })

  test('a busy port is a TransportError; resign() on a follower is a NotLeaderError', async () => {
    const [port] = await freePorts(1)
    const blocker = net.createServer()
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', () => r()))
    const e = new RaftElection({
      id: 'a',
      members: [
        { id: 'a', address: `127.0.0.1:${port}` },
        { id: 'b', address: '127.0.0.1:1' },
      ],
    })
    await assert.rejects(e.start(), (err: unknown) => err instanceof BallotError && err.code === 'TRANSPORT')
    await new Promise((r) => blocker.close(r))
    await e.start()
    await assert.rejects(
      e.resign(),
      (err: unknown) => err instanceof NotLeaderError && err.code === 'NOT_LEADER',
    )
    await e.stop()
  })
})

test('a member whose host name does not resolve is reported once, as a TransportError naming it', async () => {
  const [port] = await freePorts(1)
  const e = new RaftElection({
    id: 'a',
    members: [
      { id: 'a', address: `127.0.0.1:${port}` },
      { id: 'typo', address: 'no-such-host.invalid:7101' },
    ],
    timing: 'fast',
  })
  const errors: Error[] = []
  const reported = new Promise<void>((resolve) =>
    e.on('error', (err) => {
      errors.push(err)
      resolve()
    }),
  )
  await e.start()
  await reported
  await e.stop()
  const err = errors[0] as TransportError
  assert.ok(err instanceof TransportError)
  assert.equal(err.address, 'no-such-host.invalid:7101')
  assert.match(err.message, /member typo .*does not resolve/)
  assert.equal(errors.length, 1, 'said once, though dialled again and again')
})

describe('events and API on a running cluster', () => {
  test('one change per real change: `leading` tells the role from the lease; `previous` survives a hand-over', async () => {
    await using cluster = await localRaftCluster({ size: 3 })
    const changes = new Map<string, LeadershipChange[]>()
    for (const n of cluster.nodes) {
      const list: LeadershipChange[] = []
      changes.set(n.id, list)
      n.on('change', (c) => list.push(c))
    }
    const first = await cluster.leader({ signal: AbortSignal.timeout(20_000) })
    const firstToken = first.leader()?.token
    const next = await first.resign({ timeoutMs: 20_000 })
    assert.ok(next, 'resign() resolves with the next leader')
    assert.notEqual(next.id, first.id)
    const second = cluster.nodes.find((n) => n.id === next.id) as RaftElection
    // resign() resolves when the resigned node hears of its successor; the successor's lease holds by
    // then or a heartbeat round later.
    await second.waitForLeader({ self: true, signal: AbortSignal.timeout(20_000) })
    assert.equal(first.state(), 'follower', 'the resigned node is a follower')
    const own = changes.get(second.id) ?? []
    const leadingChange = own.find((c) => c.leading && c.leader?.id === second.id)
    assert.ok(leadingChange, 'the new leader reports a change with leading: true')
    assert.equal(leadingChange.previous?.id, first.id, 'previous names the old leader, not undefined')
    assert.equal(leadingChange.previous?.token, firstToken)
    for (const list of changes.values()) {
      for (let i = 1; i < list.length; i++) {
        const [a, b] = [list[i - 1], list[i]] as [LeadershipChange, LeadershipChange]
        assert.ok(
          a.role !== b.role ||
            a.leading !== b.leading ||
            a.leader?.token !== b.leader?.token ||
            a.leader?.id !== b.leader?.id,
          'no two consecutive changes are the same',
        )
      }
    }
  })

  test('waitForLeader() resolves with the leader; self: true only on the leader', async () => {
    await using cluster = await localRaftCluster({ size: 3, observers: 1 })
    const observer = cluster.nodes.find((n) => n.id === 'o1') as RaftElection
    const seen = await observer.waitForLeader({ signal: AbortSignal.timeout(20_000) })
    const leader = await cluster.leader({ signal: AbortSignal.timeout(20_000) })
    assert.equal(seen.id, leader.id)
    await assert.rejects(
      observer.waitForLeader({ self: true, signal: AbortSignal.timeout(300) }),
      (err: unknown) => (err as Error).name === 'TimeoutError',
    )
    const mine = await leader.waitForLeader({ self: true })
    assert.equal(mine.id, leader.id)
  })

  test('whileLeader work is aborted with a LeadershipLostError; counters are read-only snapshots', async () => {
    await using cluster = await localRaftCluster({ size: 3 })
    const leader = await cluster.leader({ signal: AbortSignal.timeout(20_000) })
    let reason: unknown
    const running = new Promise<void>((resolve) => {
      leader.whileLeader(async (signal) => {
        await new Promise<void>((r) => signal.addEventListener('abort', () => r()))
        reason = signal.reason
        resolve()
      })
    })
    const counters = leader.counters
    assert.throws(() => {
      ;(counters as { electionsWon: number }).electionsWon = 99
    }, TypeError)
    assert.throws(() => {
      ;(leader.transportStats as { messagesSent: number }).messagesSent = 0
    }, TypeError)
    await leader.resign()
    await running
    assert.ok(
      reason instanceof LeadershipLostError,
      `the abort reason is a LeadershipLostError, got ${reason}`,
    )
    assert.equal((reason as LeadershipLostError).code, 'LEADERSHIP_LOST')
    assert.ok(leader.leaseRemainingMs() === undefined, 'no lease left once it resigned')
  })

  test('await using stops every election; waitForLeader() on a stopped one rejects with CLOSED', async () => {
    let kept: RaftElection | undefined
    {
      await using cluster = await localRaftCluster({ size: 1 })
      kept = cluster.nodes[0] as RaftElection
      const lead = await kept.waitForLeader({ self: true, signal: AbortSignal.timeout(20_000) })
      assert.ok((kept.leaseRemainingMs() ?? 0) > 0, 'a leader has lease left')
      assert.equal(lead.id, 'n1')
      assert.match(kept.address, /^127\.0\.0\.1:\d+$/)
    }
    assert.equal(kept.state(), 'stopped')
    await assert.rejects(kept.waitForLeader(), (err: unknown) => (err as BallotError).code === 'CLOSED')
  })

  test('a lone node that resigns leads again on a new token, and resign() says so', async () => {
    await using cluster = await localRaftCluster({ size: 1 })
    const node = await cluster.leader({ signal: AbortSignal.timeout(20_000) })
    const before = node.leader()?.token ?? 0n
    const next = await node.resign({ timeoutMs: 20_000 })
    assert.equal(next?.id, node.id)
    assert.ok((next?.token ?? 0n) > before)
  })

  test('localBullyCluster: the highest pid leads', async () => {
    await using cluster = await localBullyCluster({ size: 3 })
    // A node that starts before it hears the others may claim first; the highest takes over.
    const top = cluster.nodes[2] as BullyElection
    const lead = await top.waitForLeader({ self: true, signal: AbortSignal.timeout(20_000) })
    assert.equal(lead.id, 'n3')
  })
})
