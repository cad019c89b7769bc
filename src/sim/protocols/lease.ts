/**
 * The lease driver in the simulator: N candidates, each the real LeaseMachine behind a pure adapter
 * (../lease/client.ts), and one linearizable store with TTL sessions, an ordered line, compare-and-set
 * create, delete and watches (../lease/store.ts), the simulator's service participant. The network,
 * faults, clocks and checker are the simulator's own.
 *
 * Clocks: the machine's `maxClockDrift` bounds how much faster the store's clock may run than a
 * candidate's. The simulator draws every clock, the store's included, within ±maxClockDrift/2 of real
 * time, so any store/candidate pair is within the machine's bound ((1 + d/2)/(1 − d/2) ≤ 1/(1 − d)).
 *
 * Promises checked: never two isLeader() at one real instant (a crashed or paused leader's lease
 * counting until it would end); fencing tokens of successive leaderships grow (the store's revisions are
 * global, so 'monotonic'); one node per token; a usable leader named by every live candidate within
 * `leaseLivenessBoundMs` of the heal; no leader change when nothing fails.
 */
import { InvalidOptionsError } from '../../errors.js'
import { type LeaseTiming, resolveLeaseTiming } from '../../lease/options.js'
import type { AdapterOptions, CommonInvariant, ProtocolAdapter } from '../adapter.js'
import { LeaseClient } from '../lease/client.js'
import { StoreModel } from '../lease/store.js'
import { describeWire, type LeaseWire } from '../lease/wire.js'
import type { ScenarioSet } from '../scenario.js'

/** The store's address in the simulation. */
export const STORE_ID = 'store'

/** Timing profiles by `--timing` name: the daemon's default TTL (5 s), and a fast one (1 s). */
export const LEASE_SIM_TTL_MS: Record<string, number> = { default: 5000, fast: 1000 }

/**
 * The scenarios that mean something for candidates of a store: the peer-to-peer ones where the store
 * takes a side (partitions put it away from the leader; one-way faults cut the leader's requests or
 * replies), plus the store's outage and slowness. Hints, disks and forged frames have no lease analogue.
 */
export const LEASE_SCENARIOS: ScenarioSet = {
  names: [
    'quiet',
    'crash-leader',
    'crash-restart',
    'handover',
    'partition-minority',
    'partition-majority',
    'one-way',
    'isolate-and-return',
    'gc-pause',
    'slow',
    'drift',
    'clock-jump',
    'lossy',
    'outage',
    'service-slow',
    'mix',
  ],
  mix: [
    'crash-restart',
    'handover',
    'partition-minority',
    'partition-majority',
    'one-way',
    'isolate-and-return',
    'gc-pause',
    'slow',
    'lossy',
    'outage',
    'service-slow',
  ],
}

/** How often the store's expiry loop runs (etcd: every 500 ms), at most a tenth of the TTL. */
export function expiryCheckMs(t: LeaseTiming): number {
  return Math.min(500, t.ttlMs / 10)
}

/**
 * After the heal (network clean, store reachable, every restarted process up), every live candidate
 * names one leader that holds isLeader() within: the TTL of a dead leader's session on the store's
 * clock plus one run of its expiry loop; a request sent before the heal timing out, then the longest
 * backoff; a keep-alive period, in which a candidate that missed the last notification learns of it
 * from a reply's revision; and 100 ms of round trips. Local durations are stretched by the drift bound.
 */
export function leaseLivenessBoundMs(t: LeaseTiming): number {
  const stretch = 1 / (1 - t.maxClockDrift)
  return Math.ceil(
    (t.ttlMs + expiryCheckMs(t)) * stretch +
      (t.requestTimeoutMs + t.backoffMaxMs) * stretch +
      (t.ttlMs / 3) * stretch +
      100,
  )
}

export interface LeaseAdapterOptions extends AdapterOptions {
  /** Overrides of the profile's timings (tests: drift and margin 0, the variant the checker must catch). */
  lease?: Partial<LeaseTiming>
  /** Test-only: validity counted from when a confirmation arrived, not when its request left. */
  unsafeValidityFromReply?: boolean
  /** Test-only: leave deletes the key whatever entry it holds (see LeaseClientOptions). */
  unsafeUnguardedLeave?: boolean
  /** Test-only: a missed notification is never caught up with. */
  unsafeNoCatchUp?: boolean
  /** Test-only: the token is the key's version, not its create revision. */
  unsafeTokenFromVersion?: boolean
}

export function leaseAdapter(opts: LeaseAdapterOptions = {}): ProtocolAdapter<LeaseWire, undefined> {
  const profile = opts.timing ?? 'default'
  const ttlMs = LEASE_SIM_TTL_MS[profile]
  if (ttlMs === undefined) {
    throw new InvalidOptionsError(
      '--timing',
      `must be one of ${Object.keys(LEASE_SIM_TTL_MS).join(', ')}, got ${profile}`,
    )
  }
  if (opts.unsafe) throw new InvalidOptionsError('--unsafe-skip-vote-checks', 'applies to raft only')
  const timing = resolveLeaseTiming({ ttlMs, ...opts.lease })
  // The clocks the simulator draws follow the profile's drift bound, whatever a variant's machines
  // believe: a variant that assumes no drift still runs among drifting clocks.
  const drift = resolveLeaseTiming({ ttlMs }).maxClockDrift
  const invariants = new Set<CommonInvariant>([
    'one-leader-per-term',
    'fencing',
    'lease',
    'liveness',
    'stability',
  ])
  const check = expiryCheckMs(timing)
  const variant = [
    opts.lease?.maxClockDrift === 0 && opts.lease?.safetyMarginMs === 0 ? 'drift and margin 0' : '',
    opts.unsafeValidityFromReply ? 'validity from the reply' : '',
    opts.unsafeUnguardedLeave ? 'unguarded leave' : '',
    opts.unsafeNoCatchUp ? 'no catch-up read' : '',
    opts.unsafeTokenFromVersion ? 'token from the key version' : '',
  ].filter(Boolean)
  return {
    name: variant.length > 0 ? `lease (unsafe: ${variant.join(', ')})` : 'lease',
    timing: {
      heartbeatIntervalMs: timing.ttlMs / 3,
      electionTimeoutMinMs: timing.ttlMs,
      electionTimeoutMaxMs: timing.ttlMs,
      // Per clock, so that any two (the store's and a candidate's) are within the machine's bound.
      maxClockDrift: drift / 2,
    },
    livenessBoundMs: leaseLivenessBoundMs({ ...timing, maxClockDrift: drift }),
    invariants,
    agreement: 'any',
    fencing: 'monotonic',
    scenarios: LEASE_SCENARIOS,
    service: {
      id: STORE_ID,
      create: (random) => new StoreModel({ expiryCheckMs: check, random }),
    },
    create: (node) => {
      if (node.members.some((m) => m.kind === 'observer'))
        throw new InvalidOptionsError('--observers', 'lease candidates have no observers')
      return new LeaseClient({
        id: node.id,
        store: STORE_ID,
        timing,
        random: node.random,
        validityFromReply: opts.unsafeValidityFromReply ?? false,
        unguardedLeave: opts.unsafeUnguardedLeave ?? false,
        noCatchUp: opts.unsafeNoCatchUp ?? false,
        tokenFromVersion: opts.unsafeTokenFromVersion ?? false,
      })
    },
    isElectionMessage: (msg) => msg.t === 'join' || msg.t === 'joined',
    describe: describeWire,
  }
}
