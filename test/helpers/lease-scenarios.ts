/**
 * The lease scenarios every store must pass the same way, written once and run per store from a store
 * descriptor (`LeaseStore`, see ./lease-stores.ts for etcd, ZooKeeper and Consul). A new store (Redis,
 * PostgreSQL, ...) writes one descriptor — how to start a server, make a backend for an election, plant
 * foreign data, list what a stopped candidate left behind, and fail the server — then, in its test file:
 *
 *   const s = leaseScenarios(redisStore)       // registers the shared describe() blocks and before/after
 *   describe('lease on Redis: its own things', () => { test('...', async () => { s.server ... }) })
 *
 * and, in its processes file, `processScenario(redisStore)`. Every candidate and follower made through
 * the returned `candidate()`/`follower()` is stopped by the after() hook even when a test fails half-way.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { LeaseBackend } from '../../src/lease/backend.js'
import { LeaseElection, type LeaseElectionOptions } from '../../src/lease/candidate.js'
import { LeaseFollower } from '../../src/lease/follower.js'
import { resolveLeaseTiming, validityMs } from '../../src/lease/options.js'
import { ClaimChecker, candidateOn, followerOn, type Recorded, startInLine, taken } from './lease.js'
import { fiveProcesses } from './lease-procs.js'
import type { RaftProcess } from './raft-cluster.js'
import { freePorts, sleep, waitUntil } from './services.js'

/** One running server of a store, as the scenarios drive it. */
export interface StoreServer {
  /** A backend on this server for `election`, asking for sessions of `ttlMs`. */
  backend(election: string, ttlMs: number): LeaseBackend
  /**
   * Writes data that is not a candidate under an election; `names`: what the refusal must name. `backend`,
   * when given, is the one to start on it (a store whose refusals depend on more than the election, such
   * as PostgreSQL's schema or database); else `backend(election)`.
   */
  plantForeign(): Promise<Array<{ election: string; names: RegExp; backend?: () => LeaseBackend }>>
  /**
   * What a candidate that stopped left behind under `election` (its session `sessionId`): [] when nothing.
   * `lastToken`: the last leader's token, for a store that keeps it across leaderships (PostgreSQL).
   */
  leftovers(election: string, sessionId: string, lastToken: bigint): Promise<string[]>
  /** kill -9. */
  kill(): Promise<void>
  /**
   * Takes it down so that restart() brings back everything it had, sessions included (Redis: SIGTERM,
   * which saves first). Default: kill(), for a store that loses nothing to kill -9.
   */
  shutDown?(): Promise<void>
  /** Starts it again after kill(), on the same ports and data. */
  restart(): Promise<void>
  /**
   * Freezes it (SIGSTOP) / lets it go on (SIGCONT). A store frozen some other way (Redis: DEBUG SLEEP)
   * may return a promise from thaw() that settles once the server answers again.
   */
  freeze(): void
  thaw(): void | Promise<void>
  /** Stops it and removes everything it made. */
  close(): Promise<void>
}

/** A store, as the shared scenarios need it. */
export interface LeaseStore<S extends StoreServer = StoreServer> {
  /** As in test names: 'etcd', 'ZooKeeper', 'Consul'. */
  name: string
  /** The session TTL of the scenarios (ms): one the store grants as asked. */
  ttlMs: number
  /** The TTL of the resign scenario (ms): hand-overs must beat a third of it. Default ttlMs. */
  resignTtlMs?: number
  /** How long recovery after a restart or thaw may take (ms). */
  recoveryMs: number
  /** Before restarting a killed server, wait until every candidate has retried twice (etcd). */
  retriesBeforeRestart?: boolean
  /**
   * The failure scenario runs on a server that loses everything at kill -9 (Redis without persistence: the
   * token counter too, so tokens must still grow, from the server's clock). Default: a persistent one.
   */
  volatileRestart?: boolean
  /**
   * Keep the store frozen at least this long (ms from the freeze) and check that nobody leads meanwhile
   * (PostgreSQL: longer than the TTL, so that every lease has run out by the database's clock too).
   */
  holdFrozenMs?: number
  /** How many resigns the resign scenario makes (default 6). */
  resignHandovers?: number
  /** What the STORE_UNAVAILABLE message must name for `port` (default 127.0.0.1:port). */
  unreachableNames?(port: number): RegExp
  /**
   * The store's own look at the data once `leader` leads `election` in the first scenario (PostgreSQL:
   * the leases row names it and holds its token); throws when wrong.
   */
  checkElected?(server: S, election: string, leader: { id: string; token: bigint }): Promise<void>
  /** Starts a server; `persistent`: one that keeps its state across kill() and restart(). */
  start(opts?: { persistent?: boolean }): Promise<S>
  /** A new, unique election name for this store (etcd prefix, ZooKeeper latch path, Consul prefix). */
  election(): string
  /** A backend for an address where nothing listens. */
  unreachable(port: number): LeaseBackend
  /** Deletes a candidate's entry (its `view().self.key`) behind its back (absent: no such scenario). */
  deleteEntry?(server: S, key: string): Promise<void>
  /**
   * Ends a candidate's session behind its back (etcd: revoke the lease; Redis: delete the session hash and
   * the lock; PostgreSQL: delete the candidate row); absent: no such scenario.
   */
  endSession?(server: S, election: string, sessionId: string): Promise<void>
  /** For processScenario: the fixture's options of candidate `id` on `server`, and kill -9 bounds. */
  processes?: {
    options(server: S, id: string): object
    failover: { min: number; max: number }
    /** Bound of the resign hand-over across processes (ms; default TTL/3). */
    handoverMaxMs?: number
  }
}

/** What leaseScenarios() hands the store's own tests. */
export interface ScenarioContext<S extends StoreServer> {
  /** The server the shared scenarios use (started in before()). */
  readonly server: S
  /** A recorded candidate on `server` (address `<id>.example:80`, tags {name: id}), stopped after(). */
  candidate(
    election: string,
    id: string,
    extra?: Partial<LeaseElectionOptions>,
    on?: S,
  ): Recorded<LeaseElection>
  /** A recorded follower on `server`, stopped after(). */
  follower(election: string, on?: S): Recorded<LeaseFollower>
  /** Anything else to close (or, without close(), stop) after(), even when a test fails. */
  own<T extends { close(): unknown } | { stop(): unknown }>(x: T): T
}

/**
 * Every candidate has its entry in the line, and the last one lists them all (not every store lets one in
 * the middle see the whole line: on etcd each watches only the entry before its own).
 */
function inLine(cs: Array<Recorded<LeaseElection>>): boolean {
  return (
    cs.every((c) => c.e.view().self !== undefined) && cs.at(-1)?.e.clusterState().members.length === cs.length
  )
}

/** Registers the shared scenarios for `store`; returns the context for the store's own tests. */
export function leaseScenarios<S extends StoreServer>(store: LeaseStore<S>): ScenarioContext<S> {
  let server: S | undefined
  const open: Array<{ close?(): unknown; stop?(): unknown }> = []
  const TTL = store.ttlMs
  before(async () => {
    server = await store.start()
  })
  after(async () => {
    await Promise.allSettled(open.reverse().map(async (o) => (o.close ? o.close() : o.stop?.())))
    await server?.close()
  })
  const ctx: ScenarioContext<S> = {
    get server() {
      assert.ok(server, `the ${store.name} server did not start`)
      return server
    },
    candidate(election, id, extra = {}, on) {
      const ttlMs = extra.timing?.ttlMs ?? TTL
      const r = candidateOn((on ?? ctx.server).backend(election, ttlMs), id, {
        ...extra,
        timing: { ...extra.timing, ttlMs },
      })
      open.push(r.e)
      return r
    },
    follower(election, on) {
      const r = followerOn((on ?? ctx.server).backend(election, TTL))
      open.push(r.e)
      return r
    },
    own(x) {
      open.push(x as { close?(): unknown; stop?(): unknown })
      return x
    },
  }
  const { candidate, follower } = ctx

  describe(`lease on ${store.name}`, () => {
    test('one leader among three; the others name it and list the line in order; the TTL granted as asked', async () => {
      const election = store.election()
      const cs = ['a', 'b', 'c'].map((id) => candidate(election, id))
      await startInLine(cs)
      const leader = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
      assert.equal(leader.e.id, 'a', 'the first to join leads')
      await waitUntil('all name a', () => cs.every((c) => c.e.leader()?.id === 'a'))
      assert.equal(cs[1]?.e.leader()?.address, 'a.example:80')
      assert.deepEqual(cs[2]?.e.leader()?.tags, { name: 'a' })
      assert.equal(cs.filter((c) => c.e.isLeader()).length, 1)
      assert.equal(leader.e.view().session?.ttlMs, TTL)
      for (const c of [cs[0], cs[2]]) {
        await waitUntil(`${c?.e.id} to list the line`, () => c?.e.clusterState().members.length === 3)
        const state = c?.e.clusterState()
        assert.deepEqual(
          state?.members.map((m) => m.id),
          ['a', 'b', 'c'],
        )
        assert.equal(state?.members.find((m) => m.self)?.id, c?.e.id)
        assert.deepEqual(
          state?.members.map((m) => m.role),
          ['leader', 'follower', 'follower'],
        )
      }
      await store.checkElected?.(ctx.server, election, {
        id: leader.e.id,
        token: leader.e.leader()?.token as bigint,
      })
      for (const c of cs) await c.e.stop()
    })

    test('resign hands over by watch, well within a keep-alive period, never two leaders at once', async () => {
      const ttlMs = store.resignTtlMs ?? TTL
      const election = store.election()
      const rounds = store.resignHandovers ?? 6
      const cs = ['a', 'b', 'c'].map((id) => candidate(election, id, { timing: { ttlMs } }))
      for (const c of cs) await c.e.start()
      // start() may resolve before the join: a resign with nobody else in line would hand back to itself.
      await waitUntil('all three in line', () => inLine(cs))
      const checker = new ClaimChecker(cs.map((c) => c.e))
      const handovers: number[] = []
      for (let i = 0; i < rounds; i++) {
        const from = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
        const t0 = performance.now()
        await from.e.resign()
        const to = await waitUntil(
          'the next leader',
          () => cs.find((c) => c !== from && c.e.isLeader()),
          20_000,
          1,
        )
        handovers.push(performance.now() - t0)
        assert.notEqual(to, from)
      }
      // Anything waiting on a keep-alive, the TTL or a poll would take a third of the TTL or more.
      assert.ok(
        Math.max(...handovers) < ttlMs / 3,
        `hand-overs took ${handovers.map((h) => h.toFixed(0))} ms`,
      )
      assert.deepEqual(checker.overlaps, [])
      assert.ok(checker.tokensGrow(), checker.describe())
      assert.ok(checker.claims.length >= rounds, checker.describe())
      // A hand-over never shows the next in line as a leader before it took the lease (a token refused).
      for (const c of cs)
        assert.deepEqual(
          c.errors.filter((e) => e.code === 'TOKEN_NOT_NEWER'),
          [],
          `${c.e.id} reported a refused token`,
        )
      for (const c of cs) await c.e.stop()
    })

    test('a follower sees every change of leader, in order, with growing tokens; nobody once all stopped', async () => {
      const election = store.election()
      const f = follower(election)
      await f.e.start()
      assert.equal(f.e.leader(), undefined)
      const cs = ['a', 'b', 'c'].map((id) => candidate(election, id))
      for (const c of cs) await c.e.start()
      await waitUntil('all three in line', () => inLine(cs))
      // Each leader is resigned only once the follower names it: a store's watch may fold changes that
      // come faster than the follower reads (ZooKeeper's one-shot watches do), so a leadership of a few
      // milliseconds need not be seen; one that lasts must be, in order.
      const named = (c: Recorded<LeaseElection>) =>
        waitUntil(`the follower to name ${c.e.id}`, () => {
          const token = c.e.leader()?.token
          return c.e.isLeader() && token !== undefined && f.e.leader()?.token === token
        })
      for (let i = 0; i < 5; i++) {
        const from = await waitUntil('a leader', () => cs.find((c) => c.e.isLeader()))
        await named(from)
        await from.e.resign()
        await waitUntil('the next leader', () => cs.find((c) => c !== from && c.e.isLeader()))
      }
      const leaderships = taken(cs)
      await waitUntil('the follower to catch up', () => f.leaders().at(-1) === leaderships.at(-1))
      assert.deepEqual(f.leaders(), leaderships)
      const tokens = f.leaders().map((x) => BigInt(x.split('@')[1] as string))
      assert.ok(tokens.every((t, i) => i === 0 || t > (tokens[i - 1] as bigint)))
      assert.equal(f.e.leader()?.address, `${leaderships.at(-1)?.split('@')[0]}.example:80`)
      for (const c of cs) await c.e.stop()
      await waitUntil('the follower to see nobody lead', () => f.e.leader() === undefined)
      await f.e.stop()
    })

    /** A leader `a` whose store data `cut` removes must stop leading, then lead again on a larger token. */
    const leadsAgainAfter = async (
      what: string,
      cut: (a: Recorded<LeaseElection>, election: string) => Promise<void>,
    ) => {
      const election = store.election()
      const a = candidate(election, 'a')
      await a.e.start()
      await waitUntil('a leads', () => a.e.isLeader())
      const first = a.e.leader()?.token as bigint
      await cut(a, election)
      await waitUntil(what, () => a.e.isLeader() && (a.e.leader()?.token ?? 0n) > first)
      assert.ok(
        a.seen.some((s) => s.change.role !== 'leader' && a.seen.some((p) => p.t < s.t && p.leading)),
        'it stopped leading in between',
      )
      return a
    }

    const deleteEntry = store.deleteEntry
    if (deleteEntry)
      test('its entry deleted behind its back: leadership ends and the candidate joins again with a larger token', async () => {
        const a = await leadsAgainAfter('a to lead on a new entry', (a) =>
          deleteEntry(ctx.server, a.e.view().self?.key as string),
        )
        await a.e.stop()
      })

    const endSession = store.endSession
    if (endSession)
      test('its session ended behind its back: a new session, the line joined again, a larger token', async () => {
        let session = ''
        const a = await leadsAgainAfter('a to lead again', (a, election) => {
          session = a.e.view().session?.id as string
          return endSession(ctx.server, election, session)
        })
        assert.notEqual(a.e.view().session?.id, session)
        assert.ok(
          a.errors.some((e) => e.code === 'SESSION_LOST'),
          JSON.stringify(a.errors),
        )
        await a.e.stop()
      })

    test('stop leaves nothing behind, of the leader or of one in line: entries, metadata and sessions are gone', async () => {
      const election = store.election()
      const cs = ['a', 'b'].map((id) => candidate(election, id))
      await startInLine(cs)
      await waitUntil('a leads, b in line', () =>
        cs.every((c) => c.e.leader()?.id === 'a' && c.e.clusterState().members.length === 2),
      )
      const token = cs[0]?.e.leader()?.token as bigint
      const sessions = cs.map((c) => c.e.view().session?.id as string)
      // The one in line first, so that `token` stays the last leader's (no hand-over to b on a's stop).
      for (const c of [...cs].reverse()) await c.e.stop()
      for (const session of sessions)
        assert.deepEqual(await ctx.server.leftovers(election, session, token), [])
    })
  })

  describe(`lease on ${store.name}: bad configuration gives one clear error from start()`, () => {
    test('an address where nothing listens: STORE_UNAVAILABLE naming it, for candidates and followers', async () => {
      const [port] = await freePorts(1)
      for (const e of [
        ctx.own(
          new LeaseElection({ id: 'a', backend: store.unreachable(port as number), connectTimeoutMs: 3000 }),
        ),
        ctx.own(new LeaseFollower({ backend: store.unreachable(port as number), connectTimeoutMs: 3000 })),
      ]) {
        await assert.rejects(e.start(), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'STORE_UNAVAILABLE')
          assert.match(
            err.message,
            store.unreachableNames?.(port as number) ?? new RegExp(`127\\.0\\.0\\.1:${port}`),
          )
          assert.ok(!err.message.includes('\n'), 'one line')
          return true
        })
        await e.stop()
      }
    })

    test('foreign data under the election: STORE_REFUSED naming it, for candidates and followers', async () => {
      for (const { election, names, backend } of await ctx.server.plantForeign()) {
        const on = backend ?? (() => ctx.server.backend(election, TTL))
        for (const e of [
          ctx.own(new LeaseElection({ id: 'a', backend: on(), timing: { ttlMs: TTL } })),
          ctx.own(new LeaseFollower({ backend: on() })),
        ]) {
          await assert.rejects(e.start(), (err: Error & { code?: string }) => {
            assert.equal(err.code, 'STORE_REFUSED')
            assert.match(err.message, names)
            assert.ok(!err.message.includes('\n'), 'one line')
            return true
          })
          await e.stop()
        }
      }
    })
  })

  /**
   * What a user sees once a candidate left: another candidate, `b`, leads while the session that left
   * lives on (kept alive here as a candidate would), not only once it expires.
   */
  const othersLeadBeside = async (own: S, election: string, left: LeaseBackend, context: string) => {
    const b = candidateOn(own.backend(election, TTL), 'b', { timing: { ttlMs: TTL } })
    let lost: string | undefined
    const pump = setInterval(() => {
      left.keepAlive().catch((err: Error) => {
        lost ??= err.message
      })
    }, TTL / 4)
    try {
      await b.e.start()
      await waitUntil(
        'b to lead while the session that left lives on',
        () => b.e.isLeader(),
        store.recoveryMs,
      ).catch((err: Error) => {
        throw new Error(`${context}: ${err.message}; ${b.describe()}`)
      })
    } finally {
      clearInterval(pump)
      await b.e.stop()
    }
    // Else b may have led only because that session ended.
    assert.equal(lost, undefined, 'the session that left was kept alive throughout')
  }

  describe(`lease on ${store.name}: the store fails under a leader`, () => {
    test('a leave that fails while the store is down is retried once it is back, and nothing of it stays in the line', async (t) => {
      // The machine retries a failed leave before it joins again. A driver that forgot its entry on the
      // first, failed try reports the retry done and leaves the entry behind, held by a live session: at
      // the head of the line it then blocks every election until that session ends (seen on ZooKeeper,
      // whose sessions outlive a server restart).
      const own = await store.start({ persistent: true })
      const quiet = { line() {}, suspended() {}, resumed() {}, sessionLost() {} }
      const tries: string[] = []
      try {
        for (let attempt = 1; ; attempt++) {
          const election = store.election()
          const backend = own.backend(election, TTL)
          try {
            await backend.connect(quiet, { watchOnly: false })
            await backend.openSession(TTL)
            await backend.join({ id: 'a' })
            await (own.shutDown ? own.shutDown() : own.kill())
            // As the machine does: wait for the leave until its request timeout, then try again.
            let first = 'was still pending at the restart'
            const leave = backend.leave().then(
              () => (first = 'was done'),
              (err: Error) => (first = `failed (${err.message})`),
            )
            await Promise.race([leave, sleep(resolveLeaseTiming({ ttlMs: TTL }).requestTimeoutMs)])
            await own.restart()
            await waitUntil('the leave to be done', () =>
              backend.leave().then(
                () => true,
                () => false,
              ),
            )
            // Only a session that lived through the restart can hold a forgotten entry: else try again.
            const alive = await backend.keepAlive().then(
              () => true,
              (err: Error) => {
                tries.push(`the first leave ${first}, then ${err.message}`)
                return false
              },
            )
            if (alive) {
              await othersLeadBeside(own, election, backend, `the first leave ${first}`)
              t.diagnostic(`the first leave ${first}`)
              return
            }
            assert.ok(
              attempt < 5,
              `the session outlived the restart in none of ${attempt} tries: ${tries.join('; ')}`,
            )
          } finally {
            await backend.closeSession().catch(() => undefined)
            await backend.close()
          }
        }
      } finally {
        await own.close()
      }
    })

    test('killed and restarted, then frozen and thawed: leadership lost in time, errors reported, recovery by itself, never two leaders', async (t) => {
      const own = await store.start({ persistent: !store.volatileRestart })
      const election = store.election()
      const cs = ['a', 'b', 'c'].map((id) =>
        candidateOn(own.backend(election, TTL), id, { timing: { ttlMs: TTL } }),
      )
      try {
        // Every wait here that times out says what each candidate knows.
        const waitOrSay = <T>(...args: Parameters<typeof waitUntil<T>>) =>
          waitUntil(...args).catch((err: Error) => {
            throw new Error(`${err.message}; ${cs.map((c) => c.describe()).join('; ')}`)
          })
        const checker = new ClaimChecker(cs.map((c) => c.e))
        for (const c of cs) await c.e.start()
        const validity = validityMs(resolveLeaseTiming({ ttlMs: TTL }), TTL)
        const leader = await waitOrSay('a leader', () => cs.find((c) => c.e.isLeader()))
        const before = leader.e.leader()?.token as bigint
        // Nobody may claim leadership later than `validity` after the store went away (a keep-alive sent
        // before then proves nothing past it): checked at every look, on the machine's own clock.
        const claimedLate = (since: number) => {
          let late = false
          return () => {
            if (cs.some((c) => c.e.isLeader()) && performance.now() > since + validity) late = true
            return cs.every((c) => !c.e.isLeader()) && { late }
          }
        }
        // A leader with a newer token than `above`.
        const newLeader = (what: string, above: bigint) =>
          waitOrSay(
            what,
            () => cs.find((c) => c.e.isLeader() && (c.e.leader()?.token ?? 0n) > above),
            store.recoveryMs,
          )
        const t0 = performance.now()
        await own.kill()
        assert.equal((await waitOrSay('nobody to lead', claimedLate(t0), 30_000, 5)).late, false)
        const lost = performance.now() - t0
        await waitOrSay('every candidate to report the store unavailable', () =>
          cs.every((c) => c.errors.some((e) => e.code === 'STORE_UNAVAILABLE')),
        )
        if (store.retriesBeforeRestart)
          await waitOrSay('a few retries', () => cs.every((c) => c.e.view().failures >= 2))
        await own.restart()
        const next = await newLeader('a leader after the restart', before)
        t.diagnostic(
          `killed: leadership lost after ${lost.toFixed(0)} ms; ${next.e.id} leads after the restart`,
        )

        const tokenBefore = next.e.leader()?.token as bigint
        const t1 = performance.now()
        own.freeze()
        try {
          assert.equal(
            (await waitOrSay('nobody to lead while frozen', claimedLate(t1), 30_000, 5)).late,
            false,
          )
          await waitOrSay('the frozen store reported', () =>
            cs.some((c) => c.errors.some((e) => e.code === 'STORE_UNAVAILABLE' && e.t > t1)),
          )
          const hold = store.holdFrozenMs
          if (hold) {
            await waitOrSay(
              'the store frozen long enough',
              () => performance.now() > t1 + hold,
              hold + 10_000,
            )
            assert.equal(cs.filter((c) => c.e.isLeader()).length, 0, 'nobody leads while frozen')
          }
        } finally {
          await own.thaw()
        }
        const frozen = performance.now() - t1
        await newLeader('a leader after the thaw', tokenBefore)
        t.diagnostic(`frozen: leadership lost within ${frozen.toFixed(0)} ms (validity ${validity} ms)`)
        assert.deepEqual(checker.overlaps, [])
        assert.ok(checker.tokensGrow(), checker.describe())
      } finally {
        await Promise.all(cs.map((c) => c.e.stop().catch(() => undefined)))
        await own.close()
      }
    })
  })

  return ctx
}

/**
 * Five candidates in five processes on one server of `store` (its `processes` options): one leader;
 * kill -9 of the leader hands over within the store's bounds, never two leaders; resign at once.
 */
export function processScenario<S extends StoreServer>(store: LeaseStore<S>): void {
  const procs: RaftProcess[] = []
  let server: S | undefined
  after(async () => {
    for (const p of procs) p.kill('SIGKILL')
    await Promise.all(procs.map((p) => p.waitExit().catch(() => undefined)))
    await server?.close()
  })
  const spec = store.processes
  assert.ok(spec, `${store.name}: no processes options`)
  test(`five candidates in five processes on ${store.name}: one leader; kill -9 hands over after the session ends at the store; resign at once`, async (t) => {
    const own = await store.start()
    server = own
    const { failover, handover } = await fiveProcesses({
      options: (id) => spec.options(own, id),
      ttlMs: store.ttlMs,
      failover: spec.failover,
      handoverMaxMs: spec.handoverMaxMs,
      procs,
    })
    t.diagnostic(
      `kill -9 failover ${failover.toFixed(0)} ms (TTL ${store.ttlMs}, bounds ${spec.failover.min}–${spec.failover.max}); resign hand-over ${handover.toFixed(1)} ms`,
    )
  })
}
