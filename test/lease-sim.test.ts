// Lease machines against a simulated store, from seeds: requests and replies delayed at random or lost,
// candidates cut off from the store for a while (their requests hang), clocks that run fast or slow
// within the drift bound, and a store that expires leases on its own clock. After every event: never two
// candidates with isLeader() true, and the tokens of successive leaderships strictly grow. With timings
// that ignore the drift the same runs must find an overlap, so the check is shown to bite.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { LineEntry } from '../src/lease/backend.js'
import { type LeaseInput, LeaseMachine, type LeaseRequest } from '../src/lease/machine.js'
import { type LeaseTiming, resolveLeaseTiming } from '../src/lease/options.js'

/** mulberry32: a small seeded generator. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Node {
  m: LeaseMachine
  /** Local clock rate: local ms per real ms. */
  rate: number
  /** Real time until which the node is cut off from the store (its requests and events hang). */
  cutUntil: number
  lastLineRev: number
  lease: number | undefined
  key: string | undefined
  timer: number
}

interface Outcome {
  overlaps: number
  leaderships: number
  tokensGrow: boolean
}

function simulate(seed: number, timing: LeaseTiming, rates: number[]): Outcome {
  const r = rng(seed)
  const TTL = timing.ttlMs
  let now = 0 // real time
  let rev = 1
  let nextLease = 1
  const leases = new Map<number, number>() // lease → expiry (real time: the store's clock is true time)
  const keys = new Map<string, { lease: number; rev: number; id: string }>()
  // A binary heap of events by (time, insertion order).
  type Ev = { at: number; seq: number; run: () => void }
  const heap: Ev[] = []
  let qseq = 0
  const less = (a: Ev, b: Ev) => a.at < b.at || (a.at === b.at && a.seq < b.seq)
  const at = (t: number, run: () => void) => {
    heap.push({ at: t, seq: qseq++, run })
    let i = heap.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!less(heap[i] as Ev, heap[p] as Ev)) break
      ;[heap[i], heap[p]] = [heap[p] as Ev, heap[i] as Ev]
      i = p
    }
  }
  const pop = (): Ev | undefined => {
    const top = heap[0]
    const last = heap.pop()
    if (heap.length > 0 && last) {
      heap[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r2 = l + 1
        let m = i
        if (l < heap.length && less(heap[l] as Ev, heap[m] as Ev)) m = l
        if (r2 < heap.length && less(heap[r2] as Ev, heap[m] as Ev)) m = r2
        if (m === i) break
        ;[heap[i], heap[m]] = [heap[m] as Ev, heap[i] as Ev]
        i = m
      }
    }
    return top
  }
  const nodes: Node[] = rates.map((rate, i) => ({
    m: new LeaseMachine({ id: `n${i}`, timing, random: r }),
    rate,
    cutUntil: 0,
    lastLineRev: 0,
    lease: undefined,
    key: undefined,
    timer: 0,
  }))
  const local = (n: Node, t = now) => t * n.rate
  const line = (): LineEntry[] =>
    [...keys.entries()]
      .map(([key, v]) => ({ id: v.id, key, order: BigInt(v.rev), token: BigInt(v.rev) }))
      .sort((a, b) => Number(a.order - b.order))
  const delay = () => 1 + r() * 20

  let overlaps = 0
  const claims: bigint[] = []
  const leading = new Map<Node, bigint | undefined>()

  const step = (n: Node, input: LeaseInput) => {
    n.m.step(local(n), input)
    const ready = n.m.ready()
    for (const req of ready.requests) send(n, req)
    // One timer per node, as the runtime keeps: a newer deadline replaces the older one.
    const generation = ++n.timer
    if (Number.isFinite(ready.deadline)) {
      const wait = Math.max(0, (ready.deadline - local(n)) / n.rate)
      at(now + wait + 0.001, () => generation === n.timer && step(n, { kind: 'tick' }))
    }
    check()
  }
  const check = () => {
    let count = 0
    for (const n of nodes) {
      const v = n.m.view(local(n))
      if (v.isLeader) {
        count++
        const token = v.leader?.token as bigint
        if (leading.get(n) !== token) claims.push(token)
        leading.set(n, token)
      } else leading.set(n, undefined)
    }
    if (count > 1) overlaps++
  }
  /** Store changes reach every node after its own delay, in order, and never before an older line. */
  const publish = () => {
    const snapshot = line()
    const snapRev = rev
    for (const n of nodes) {
      const deliver = () => {
        if (now < n.cutUntil) return at(n.cutUntil + delay(), deliver)
        if (snapRev < n.lastLineRev) return
        n.lastLineRev = snapRev
        step(n, { kind: 'line', entries: snapshot })
      }
      at(now + delay(), deliver)
    }
  }
  const expire = () => {
    let changed = false
    for (const [lease, until] of leases) {
      if (until > now) continue
      leases.delete(lease)
      for (const [key, v] of keys) if (v.lease === lease) keys.delete(key)
      changed = true
    }
    if (changed) {
      rev++
      publish()
    }
  }
  const send = (n: Node, req: LeaseRequest) => {
    const sentAt = local(n)
    const timeoutAt = now + timing.requestTimeoutMs / n.rate
    let settled = false
    const fail = () =>
      step(n, { kind: 'failed', seq: req.seq, reason: 'unavailable', error: new Error('timeout') })
    // The runtime fails a request not answered in time; a late answer is then ignored.
    at(timeoutAt, () => {
      if (settled) return
      settled = true
      fail()
    })
    const lost = r() < 0.02
    // A cut-off node's request hangs; a lost one is dropped before or after the store applied it.
    if (now < n.cutUntil || (lost && r() < 0.5)) return
    at(now + delay(), () => {
      expire()
      const lostSession: LeaseInput = {
        kind: 'failed',
        seq: req.seq,
        reason: 'sessionLost',
        error: new Error('lost'),
      }
      let answer: LeaseInput = lostSession
      let lineFirst: LineEntry[] | undefined
      const alive = n.lease !== undefined && leases.has(n.lease)
      switch (req.kind) {
        case 'openSession': {
          const lease = nextLease++
          leases.set(lease, now + TTL)
          n.lease = lease
          n.key = `e/${lease}`
          answer = { kind: 'sessionOpened', seq: req.seq, sentAt, session: { id: String(lease), ttlMs: TTL } }
          break
        }
        case 'keepAlive':
          if (alive) {
            leases.set(n.lease as number, now + TTL)
            answer = { kind: 'keptAlive', seq: req.seq, sentAt }
          }
          break
        case 'join': {
          const key = n.key as string
          if (!alive) break
          if (!keys.has(key)) {
            keys.set(key, { lease: n.lease as number, rev: ++rev, id: n.m.id })
            publish()
          }
          lineFirst = line()
          answer = { kind: 'joined', seq: req.seq, entry: lineFirst.find((e) => e.key === key) as LineEntry }
          break
        }
        case 'leave':
          if (n.key && keys.delete(n.key)) {
            rev++
            publish()
          }
          answer = { kind: 'left', seq: req.seq }
          break
        case 'closeSession':
          if (n.lease !== undefined) leases.delete(n.lease)
          if (n.key && keys.delete(n.key)) {
            rev++
            publish()
          }
          answer = { kind: 'sessionClosed', seq: req.seq }
          break
      }
      if (lost) return
      const joinRev = rev
      at(now + delay(), () => {
        if (settled || now < n.cutUntil) return // answered too late, or hangs until the timeout
        settled = true
        // As the backend does: the line read with a join is reported before the join's answer.
        if (lineFirst && joinRev >= n.lastLineRev) {
          n.lastLineRev = joinRev
          step(n, { kind: 'line', entries: lineFirst })
        }
        step(n, answer)
      })
    })
  }

  for (const n of nodes) at(r() * 50, () => step(n, { kind: 'start' }))
  // Faults: every so often a node is cut off from the store for a while, or resigns.
  for (let t = 500; t < 60_000; t += 200 + r() * 1500) {
    at(t, () => {
      const n = nodes[Math.floor(r() * nodes.length)] as Node
      if (r() < 0.3) return step(n, { kind: 'resign' })
      n.cutUntil = Math.max(n.cutUntil, now + r() * 2 * TTL)
      // Half the time the backend notices (a broken watch) and says so; the other half only requests tell.
      if (r() < 0.5) {
        const until = n.cutUntil
        at(now + delay() * 5, () => step(n, { kind: 'suspended', error: new Error('watch broken') }))
        at(until + delay(), () => step(n, { kind: 'resumed' }))
      }
    })
  }
  for (let t = 0; t < 60_000; t += 100) at(t, expire)
  for (let next = pop(); next; next = pop()) {
    if (next.at > 60_000) break
    now = next.at
    next.run()
  }
  return {
    overlaps,
    leaderships: claims.length,
    tokensGrow: claims.every((c, i) => i === 0 || c > (claims[i - 1] as bigint)),
  }
}

const SEEDS = Number(process.env.LEASE_SIM_SEEDS ?? 200)
// Requests time out late (after the lease would lapse), so validity, not the timeout, ends leadership.
const slowTimeout = { requestTimeoutMs: 5000 }

test(`${SEEDS} seeded runs: clocks 5 % slow or fast, delays, losses, cut-offs, resigns: never two leaders, tokens grow`, (t) => {
  const timing = resolveLeaseTiming({ ttlMs: 1000, maxClockDrift: 0.05, ...slowTimeout })
  let leaderships = 0
  for (let seed = 1; seed <= SEEDS; seed++) {
    const out = simulate(seed, timing, [0.95, 1.05, 1, 0.96])
    assert.equal(out.overlaps, 0, `seed ${seed}: two leaders at once`)
    assert.ok(out.tokensGrow, `seed ${seed}: a token went backwards`)
    leaderships += out.leaderships
  }
  t.diagnostic(`${leaderships} leaderships in ${SEEDS} runs of 60 s`)
  assert.ok(leaderships > SEEDS * 10, `only ${leaderships} leaderships: the runs test little`)
})

test('the same runs with timings that ignore drift and margin find two leaders at once (the check bites)', (t) => {
  const unsafe = { ttlMs: 1000, maxClockDrift: 0, safetyMarginMs: 0, ...slowTimeout }
  const timing = resolveLeaseTiming(unsafe)
  let bad = 0
  for (let seed = 1; seed <= SEEDS; seed++)
    if (simulate(seed, timing, [0.9, 1.05, 1, 0.9]).overlaps > 0) bad++
  t.diagnostic(`${bad} of ${SEEDS} runs with unsafe timings had two leaders at once`)
  assert.ok(bad > 0, 'no overlap found with unsafe timings')
})
