// Step-by-step tests of the pure lease machine: no clock, no store, every input and every time by hand.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { LineEntry } from '../src/lease/backend.js'
import { type LeaseInput, LeaseMachine, type LeaseRequest } from '../src/lease/machine.js'
import { resolveLeaseTiming } from '../src/lease/options.js'

// ttl 3000: keep-alive every 1000; validity 3000 × 0.95 − 100 = 2750 after the send.
const timing = resolveLeaseTiming({ ttlMs: 3000, maxClockDrift: 0.05, safetyMarginMs: 100 })
const VALID = 2750

function entry(id: string, token: number): LineEntry {
  return { id, key: `e/${id}-${token}`, order: BigInt(token), token: BigInt(token) }
}

/** One machine and the requests it has asked for, answered by hand. */
class Harness {
  readonly m: LeaseMachine
  requests: LeaseRequest[] = []
  errors: Error[] = []
  deadline = Number.POSITIVE_INFINITY
  constructor(random = () => 0.5, t = timing) {
    this.m = new LeaseMachine({ id: 'me', timing: t, random })
  }
  step(now: number, input: LeaseInput) {
    this.m.step(now, input)
    const r = this.m.ready()
    this.requests.push(...r.requests)
    this.errors.push(...r.errors)
    this.deadline = r.deadline
  }
  /** The one request asked for since the last call (and forget it). */
  take(kind?: LeaseRequest['kind']): LeaseRequest {
    assert.equal(this.requests.length, 1, `one request expected, got ${JSON.stringify(this.requests)}`)
    const r = this.requests.shift() as LeaseRequest
    if (kind) assert.equal(r.kind, kind)
    return r
  }
  none() {
    assert.deepEqual(this.requests, [])
  }
  /** Starts, gets a session (sent at `sentAt`, answered at `at`) and joins as `self` at the head of `line`. */
  lead(self: LineEntry, opts: { sentAt?: number; at?: number; line?: LineEntry[] } = {}) {
    const sentAt = opts.sentAt ?? 0
    const at = opts.at ?? sentAt
    this.step(sentAt, { kind: 'start' })
    const open = this.take('openSession')
    this.step(at, { kind: 'sessionOpened', seq: open.seq, sentAt, session: { id: 's1', ttlMs: 3000 } })
    const join = this.take('join')
    this.step(at, { kind: 'line', entries: opts.line ?? [self] })
    this.step(at, { kind: 'joined', seq: join.seq, entry: self })
  }
  keepAlive(sentAt: number, at: number) {
    this.step(sentAt, { kind: 'tick' })
    const ka = this.take('keepAlive')
    this.step(at, { kind: 'keptAlive', seq: ka.seq, sentAt })
  }
}

describe('lease machine: timing', () => {
  test('validity counts from the send of the confirmed request, not from its answer', () => {
    const h = new Harness()
    const me = entry('me', 10)
    h.lead(me, { sentAt: 0, at: 600 })
    assert.equal(h.m.view(600).isLeader, true)
    assert.equal(h.m.view(600).leaseExpiresAt, VALID) // not 600 + 2750
    assert.equal(h.m.view(VALID - 1).isLeader, true)
    assert.equal(h.m.view(VALID).isLeader, false)
  })

  test('rule 6: a request unanswered within requestTimeoutMs fails as unavailable at that deadline; its late answer is ignored', () => {
    const h = new Harness()
    h.lead(entry('me', 10))
    h.step(1000, { kind: 'tick' })
    const ka = h.take('keepAlive')
    assert.equal(h.deadline, 1000 + timing.requestTimeoutMs, 'the timeout is the next deadline')
    h.step(1000 + timing.requestTimeoutMs - 1, { kind: 'tick' })
    assert.equal(h.m.view(1999).isLeader, true)
    assert.deepEqual(h.errors, [])
    h.step(1000 + timing.requestTimeoutMs, { kind: 'tick' })
    assert.equal(h.errors.length, 1)
    assert.equal((h.errors[0] as unknown as { code?: string }).code, 'STORE_UNAVAILABLE')
    assert.match(
      String((h.errors[0] as unknown as Error).message) ?? '',
      /no answer to a keep-alive within 1000 ms/,
    )
    assert.equal(h.m.view(2000).isLeader, false, 'in doubt: leadership stops at once')
    assert.equal(h.m.view(2000).suspended, true)
    // The answer comes after all: too late, ignored (it cannot extend validity).
    h.step(2100, { kind: 'keptAlive', seq: ka.seq, sentAt: 1000 })
    assert.equal(h.m.view(2100).session?.validUntil, VALID)
    assert.equal(h.m.view(2100).isLeader, false)
  })

  test('a keep-alive goes out every ttl/3 and extends validity from its send time', () => {
    const h = new Harness()
    h.lead(entry('me', 10))
    assert.equal(h.deadline, 1000)
    h.step(999, { kind: 'tick' })
    h.none()
    h.keepAlive(1000, 1400)
    assert.equal(h.m.view(1400).leaseExpiresAt, 1000 + VALID)
    assert.equal(h.deadline, 2000)
  })

  test('idle load: one keep-alive per ttl/3 and nothing else', () => {
    const h = new Harness()
    h.lead(entry('me', 10))
    let count = 0
    for (let t = 1; t <= 30_000; t++) {
      h.step(t, { kind: 'tick' })
      const r = h.requests.shift()
      if (!r) continue
      assert.equal(r.kind, 'keepAlive')
      count++
      h.step(t + 5, { kind: 'keptAlive', seq: r.seq, sentAt: t })
    }
    assert.ok(count >= 29 && count <= 30, `${count} keep-alives in 30 s`)
    assert.equal(h.m.view(30_000).isLeader, true)
  })

  test('a keep-alive that never comes back ends leadership at validUntil, and it is never resumed on that token', () => {
    // A request timeout longer than validity: validity ends first (rule 1), before rule 6 fails it.
    const h = new Harness(undefined, { ...timing, requestTimeoutMs: 5000 })
    const me = entry('me', 10)
    h.lead(me)
    h.step(1000, { kind: 'tick' })
    const ka = h.take('keepAlive')
    assert.equal(h.deadline, VALID, 'the machine asks to be woken when validity ends')
    h.step(VALID, { kind: 'tick' })
    assert.equal(h.m.view(VALID).isLeader, false)
    // The answer comes late but the session was still alive at the store: still no leadership on token 10.
    h.step(VALID + 100, { kind: 'keptAlive', seq: ka.seq, sentAt: 1000 })
    assert.equal(h.m.view(VALID + 100).isLeader, false)
    // A keep-alive is overdue (its period counts from the last send); then to the back of the line.
    const next = h.take('keepAlive')
    h.step(VALID + 110, { kind: 'keptAlive', seq: next.seq, sentAt: VALID + 100 })
    assert.equal(h.m.view(VALID + 110).isLeader, false)
    h.take('leave')
  })

  test('failures back off exponentially with jitter, capped', () => {
    const h = new Harness(() => 0) // jitter factor 0.5
    h.step(0, { kind: 'start' })
    let now = 0
    const delays: number[] = []
    for (let i = 0; i < 8; i++) {
      const r = h.take('openSession')
      h.step(now, { kind: 'failed', seq: r.seq, reason: 'unavailable', error: new Error('down') })
      delays.push(h.deadline - now)
      now = h.deadline
      h.step(now, { kind: 'tick' })
    }
    // 50·2^n × 0.5, capped at 1000 × 0.5
    assert.deepEqual(delays, [25, 50, 100, 200, 400, 500, 500, 500])
    assert.equal(h.errors.length, 8)
  })
})

describe('lease machine: who leads', () => {
  test('leads only at the head of the line, with a valid session, not suspended', () => {
    const h = new Harness()
    const other = entry('other', 5)
    const me = entry('me', 10)
    h.lead(me, { line: [other, me] })
    let v = h.m.view(10)
    assert.equal(v.isLeader, false)
    assert.equal(v.role, 'follower')
    assert.equal(v.leader?.id, 'other')
    h.step(20, { kind: 'line', entries: [me] })
    v = h.m.view(20)
    assert.equal(v.isLeader, true)
    assert.equal(v.leader?.token, 10n)
  })

  test('suspended: leadership is lost at once; on resume the candidate rejoins at the back and leads on a newer token', () => {
    const h = new Harness()
    const me = entry('me', 10)
    h.lead(me)
    h.step(100, { kind: 'suspended', error: new Error('connection lost') })
    assert.equal(h.m.view(100).isLeader, false)
    assert.equal(h.m.view(100).leader, undefined)
    h.step(200, { kind: 'resumed' })
    assert.equal(h.m.view(200).isLeader, false, 'never resumed on the same token')
    h.step(200, { kind: 'tick' })
    const leave = h.take('leave')
    h.step(210, { kind: 'left', seq: leave.seq })
    const join = h.take('join')
    const again = entry('me', 12)
    h.step(220, { kind: 'joined', seq: join.seq, entry: again })
    h.step(220, { kind: 'line', entries: [again] })
    assert.equal(h.m.view(220).isLeader, true)
    assert.equal(h.m.view(220).leader?.token, 12n)
  })

  test('a failed request suspends; the next confirmed one resumes', () => {
    const h = new Harness()
    h.lead(entry('me', 10))
    h.step(1000, { kind: 'tick' })
    const ka = h.take('keepAlive')
    h.step(1100, { kind: 'failed', seq: ka.seq, reason: 'unavailable', error: new Error('unavailable') })
    assert.equal(h.m.view(1100).isLeader, false)
    assert.equal(h.m.view(1100).suspended, true)
    h.step(h.deadline, { kind: 'tick' })
    const retry = h.take('keepAlive')
    h.step(1200, { kind: 'keptAlive', seq: retry.seq, sentAt: 1150 })
    assert.equal(h.m.view(1200).suspended, false)
    assert.equal(h.m.view(1200).isLeader, false)
    h.take('leave')
  })

  test('session lost: a new session at once, the line joined again with a new token', () => {
    const h = new Harness()
    h.lead(entry('me', 10))
    h.step(1000, { kind: 'tick' })
    const ka = h.take('keepAlive')
    h.step(1010, { kind: 'failed', seq: ka.seq, reason: 'sessionLost', error: new Error('lease expired') })
    assert.equal(h.m.view(1010).isLeader, false)
    const open = h.take('openSession')
    h.step(1020, { kind: 'sessionOpened', seq: open.seq, sentAt: 1010, session: { id: 's2', ttlMs: 3000 } })
    const join = h.take('join')
    const again = entry('me', 15)
    h.step(1030, { kind: 'joined', seq: join.seq, entry: again })
    h.step(1030, { kind: 'line', entries: [again] })
    assert.equal(h.m.view(1030).isLeader, true)
    assert.equal(h.m.view(1030).leaseExpiresAt, 1010 + VALID)
  })

  test('our entry deleted behind our back: leadership ends and the candidate joins again', () => {
    const h = new Harness()
    h.lead(entry('me', 10))
    h.step(50, { kind: 'line', entries: [] })
    assert.equal(h.m.view(50).isLeader, false)
    h.take('join')
  })

  test('late answers to an abandoned request are ignored', () => {
    const h = new Harness()
    h.lead(entry('me', 10))
    h.step(1000, { kind: 'tick' })
    const ka = h.take('keepAlive')
    h.step(1100, { kind: 'failed', seq: ka.seq, reason: 'unavailable', error: new Error('timeout') })
    h.step(1200, { kind: 'keptAlive', seq: ka.seq, sentAt: 1000 }) // the old one, late
    assert.equal(h.m.view(1200).suspended, true)
    assert.equal(h.m.view(1200).session?.validUntil, VALID)
  })
})

describe('lease machine: fencing tokens only grow', () => {
  test('refuses to lead on a token not above one it reported, says so, and goes to the back', () => {
    const h = new Harness()
    const other = entry('other', 20)
    const me = entry('me', 30)
    h.lead(me, { line: [other, me] })
    assert.equal(h.m.view(0).leader?.token, 20n)
    // The store now shows our entry at the head with a token below the leadership already reported.
    const stale = { ...me, order: 7n, token: 7n }
    h.step(10, { kind: 'line', entries: [stale] })
    assert.equal(h.m.view(10).isLeader, false)
    assert.equal(h.m.view(10).leader, undefined)
    assert.equal((h.errors.at(-1) as { code?: string }).code, 'TOKEN_NOT_NEWER')
    h.take('leave')
  })

  test('the same stale token shown again after a rejoin: reported once, and the candidate goes to the back again', () => {
    // A store can show the same stale token twice: Consul's lock outlives a leave whose release did not
    // happen, and the rejoined entry heads the line on it again. Refusing without going to the back would
    // leave the candidate at the head for ever, neither leading nor letting anyone else lead.
    const h = new Harness()
    const other = entry('other', 20)
    const me = entry('me', 30)
    h.lead(me, { line: [other, me] })
    const stale = { ...me, order: 7n, token: 7n }
    h.step(10, { kind: 'line', entries: [stale] })
    h.step(10, { kind: 'left', seq: h.take('leave').seq })
    const join = h.take('join')
    h.step(20, { kind: 'joined', seq: join.seq, entry: stale })
    h.step(20, { kind: 'line', entries: [stale] })
    assert.equal(h.m.view(20).isLeader, false)
    assert.equal(h.errors.filter((e) => (e as { code?: string }).code === 'TOKEN_NOT_NEWER').length, 1)
    h.take('leave')
  })

  test("never reports another's leadership with a lower token", () => {
    const h = new Harness()
    const me = entry('me', 50)
    h.lead(me, { line: [entry('a', 40), me] })
    h.step(10, { kind: 'line', entries: [entry('b', 30), me] })
    assert.equal(h.m.view(10).leader, undefined)
    assert.equal((h.errors.at(-1) as { code?: string }).code, 'TOKEN_NOT_NEWER')
  })

  test('tokens reported over a run of leaderships strictly grow', () => {
    const h = new Harness()
    let token = 10
    let me = entry('me', token)
    h.lead(me)
    const seen: bigint[] = [h.m.view(0).leader?.token as bigint]
    let now = 0
    for (let i = 0; i < 5; i++) {
      now += 10
      h.step(now, { kind: 'resign' })
      h.step(now, { kind: 'left', seq: h.take('leave').seq })
      const join = h.take('join')
      me = entry('me', ++token)
      h.step(now, { kind: 'joined', seq: join.seq, entry: me })
      h.step(now, { kind: 'line', entries: [me] })
      seen.push(h.m.view(now).leader?.token as bigint)
    }
    for (let i = 1; i < seen.length; i++) assert.ok((seen[i] as bigint) > (seen[i - 1] as bigint), `${seen}`)
  })
})

describe('lease machine: resign and stop', () => {
  test('resign: not leading before the leave goes out; joins again at the back at once', () => {
    const h = new Harness()
    const me = entry('me', 10)
    const next = entry('next', 11)
    h.lead(me, { line: [me, next] })
    assert.equal(h.m.view(0).isLeader, true)
    h.step(5, { kind: 'resign' })
    assert.equal(h.m.view(5).isLeader, false)
    const leave = h.take('leave')
    h.step(6, { kind: 'left', seq: leave.seq })
    const join = h.take('join')
    const back = entry('me', 12)
    h.step(7, { kind: 'line', entries: [next, back] })
    h.step(7, { kind: 'joined', seq: join.seq, entry: back })
    const v = h.m.view(7)
    assert.equal(v.isLeader, false)
    assert.equal(v.leader?.id, 'next')
    assert.equal(v.role, 'follower')
  })

  test('stop: leadership ends first, then leave, then the session is closed', () => {
    const h = new Harness()
    h.lead(entry('me', 10))
    h.step(5, { kind: 'stop' })
    assert.equal(h.m.view(5).isLeader, false)
    h.step(6, { kind: 'left', seq: h.take('leave').seq })
    h.step(7, { kind: 'sessionClosed', seq: h.take('closeSession').seq })
    assert.equal(h.m.view(7).stopped, true)
    assert.equal(h.m.view(7).role, 'stopped')
    assert.equal(h.deadline, Number.POSITIVE_INFINITY)
  })

  test('stop with the store down still ends (best effort: the session expires by itself)', () => {
    const h = new Harness()
    h.lead(entry('me', 10))
    h.step(5, { kind: 'stop' })
    const err = new Error('down')
    h.step(6, { kind: 'failed', seq: h.take('leave').seq, reason: 'unavailable', error: err })
    h.step(7, { kind: 'failed', seq: h.take('closeSession').seq, reason: 'unavailable', error: err })
    assert.equal(h.m.view(7).stopped, true)
  })
})
