/**
 * What happens to the cluster in one run: a list of faults with their times, and the run's clocks.
 *
 * Faults name nodes by *slot*, resolved when the fault strikes: slot 0 is the current leader (the one
 * every live voter names; else the highest-term node acting as leader; else the first voter), slots 1…
 * are the other nodes in member order (voters, then observers). "Crash the leader" is `node: 0`, which
 * is what most interesting faults want, and it keeps generated scenarios meaningful as they shrink.
 *
 * Named scenarios are generators drawing their details (times, durations, which follower) from the
 * run's seed; `random` picks one of them per run; fast-check builds `Scenario` values directly.
 */
import { InvalidOptionsError } from '../errors.js'
import type { SimTiming } from './adapter.js'
import type { SimRandom } from './rng.js'

export type Fault =
  /** The node's process dies; it restarts from its persisted state after `restartAfter` (or never). */
  | { kind: 'crash'; at: number; node: number; restartAfter?: number }
  /**
   * Links between nodes in different groups are cut both ways (`groups[slot]`, missing = 0); a bridge
   * sees all. A service (the lease's store) is in group `service`, or, when that is absent, reachable
   * from every group.
   */
  | { kind: 'partition'; at: number; duration: number; groups: number[]; bridge?: number; service?: number }
  /**
   * Messages from every `from` slot to every `to` slot are lost; the other direction works. `service`
   * adds the service to the `from` side (a node that hears nothing from it: its requests are applied,
   * their replies lost) or to the `to` side (nothing the nodes send reaches it).
   */
  | { kind: 'one-way'; at: number; duration: number; from: number[]; to: number[]; service?: 'from' | 'to' }
  /** One node cut off from all; with `checkPreVote`, the leader's term must survive its return. */
  | { kind: 'isolate'; at: number; duration: number; node: number; checkPreVote?: boolean }
  /** A stop-the-world pause: the process runs nothing (its clock runs on), then resumes. */
  | { kind: 'pause'; at: number; duration: number; node: number }
  /** A slow node: every message to it and every timer of it runs `extraMs` late. */
  | { kind: 'slow'; at: number; duration: number; node: number; extraMs: number }
  /** The node's clock leaps by `jumpMs` (negative: back): beyond any drift bound. */
  | { kind: 'clock-jump'; at: number; node: number; jumpMs: number }
  /** `node` is told `peer` is unreachable though it is not (a spurious connection reset). */
  | { kind: 'false-unreachable'; at: number; node: number; peer: number; reconnectAfter: number }
  /** The node is asked to resign: a leader hands over to a ready voter and stays a candidate. */
  | { kind: 'resign'; at: number; node: number }
  /** A graceful stop with hand-over; the process exits a moment later and restarts after `restartAfter`. */
  | { kind: 'stop'; at: number; node: number; restartAfter?: number }
  /** The whole network loses, duplicates and reorders messages for a while. */
  | { kind: 'lossy'; at: number; duration: number; loss: number; duplicate: number; reorder: number }
  /** Every disk write of the node fails for a while (fsync errors); the runtime rebuilds the machine. */
  | { kind: 'disk-fail'; at: number; duration: number; node: number }
  /**
   * A faulty or hostile host (on a cluster without a key) sends `node` a message in `from`'s name; the
   * protocol's adapter makes it (`what` names the kind) from the target's view.
   */
  | { kind: 'forge'; at: number; node: number; from: number; what: string }
  /** The service (the lease's store) is unreachable from every node for a while; its clock runs on. */
  | { kind: 'outage'; at: number; duration: number }
  /** The service is slow: every request to it and every timer of it runs `extraMs` late. */
  | { kind: 'service-slow'; at: number; duration: number; extraMs: number }

export interface Scenario {
  name: string
  faults: Fault[]
  /** Clock rates: all exact, spread within the protocol's bound, or pushed to the bound's two ends. */
  drift: 'none' | 'within' | 'extreme'
  /** Nothing fails: no election may happen after the first leader. */
  stability?: boolean
}

/** When the last fault is over (real ms); liveness is measured from here. */
export function healTime(s: Scenario): number {
  let heal = 0
  for (const f of s.faults) {
    let end: number
    switch (f.kind) {
      case 'crash':
      case 'stop':
        end = f.at + (f.restartAfter ?? 0)
        break
      case 'resign':
      case 'forge':
        end = f.at
        break
      case 'clock-jump':
        end = f.at + Math.abs(f.jumpMs)
        break
      case 'false-unreachable':
        end = f.at + f.reconnectAfter
        break
      default:
        end = f.at + f.duration
    }
    if (end > heal) heal = end
  }
  return heal
}

export interface ScenarioContext {
  voters: number
  observers: number
  timing: SimTiming
  /**
   * The protocol has a service (the lease's store): partitions put it on the side away from the leader,
   * a one-way fault cuts it off in that direction. Draws nothing from the seed, so protocols without one
   * see the very same scenarios.
   */
  service?: boolean
  /** The scenarios `random` picks from and `mix` combines (default: DEFAULT_SCENARIOS). */
  set?: ScenarioSet
}

/** Which named scenarios a protocol runs: those `random` picks from, and those `mix` combines. */
export interface ScenarioSet {
  names: readonly string[]
  mix: readonly string[]
}

type Generator = (rng: SimRandom, ctx: ScenarioContext) => Scenario

/** Long enough after boot for the first leader to be agreed in nearly every run. */
function settle(ctx: ScenarioContext, rng: SimRandom): number {
  return rng.between(3, 5) * ctx.timing.electionTimeoutMaxMs
}

function span(rng: SimRandom, ctx: ScenarioContext, lo: number, hi: number): number {
  return rng.between(lo, hi) * ctx.timing.electionTimeoutMaxMs
}

/** A voter slot other than the leader's (slot 0), or 0 in a one-voter cluster. */
function follower(rng: SimRandom, ctx: ScenarioContext): number {
  return ctx.voters > 1 ? rng.int(1, ctx.voters - 1) : 0
}

/** Side assignment (by slot) with the leader on a side of `leaderSide` voters, the other side the rest. */
function split(ctx: ScenarioContext, leaderSide: number): number[] {
  const n = ctx.voters + ctx.observers
  const groups: number[] = []
  for (let slot = 0; slot < n; slot++) groups.push(slot < leaderSide ? 0 : 1)
  return groups
}

const minority = (ctx: ScenarioContext) => Math.max(1, Math.floor((ctx.voters - 1) / 2))
const majority = (ctx: ScenarioContext) => Math.floor(ctx.voters / 2) + 1

const GENERATORS: Record<string, Generator> = {
  quiet: () => ({ name: 'quiet', faults: [], drift: 'within', stability: true }),
  'crash-leader': (rng, ctx) => ({
    name: 'crash-leader',
    // With fewer than three voters no majority survives a crash, so the leader comes back.
    faults: [
      {
        kind: 'crash',
        at: settle(ctx, rng),
        node: 0,
        ...(ctx.voters < 3 ? { restartAfter: span(rng, ctx, 0.5, 2) } : {}),
      },
    ],
    drift: 'within',
  }),
  'crash-restart': (rng, ctx) => {
    const faults: Fault[] = []
    const at = settle(ctx, rng)
    const crashes = rng.int(1, 2)
    for (let i = 0; i < crashes; i++) {
      faults.push({
        kind: 'crash',
        at: at + span(rng, ctx, 0, 2),
        node: rng.int(0, ctx.voters - 1),
        // From almost at once (faster than a lease) to several timeouts.
        restartAfter: rng.chance(0.3)
          ? rng.between(1, ctx.timing.electionTimeoutMinMs)
          : span(rng, ctx, 0.5, 4),
      })
    }
    return { name: 'crash-restart', faults, drift: 'within' }
  },
  handover: (rng, ctx) => {
    // The leader resigns, or stops gracefully and comes back: a TimeoutNow hands leadership over.
    const faults: Fault[] = []
    let at = settle(ctx, rng)
    const count = rng.int(1, 3)
    for (let i = 0; i < count; i++) {
      if (rng.chance(0.5)) faults.push({ kind: 'resign', at, node: 0 })
      else faults.push({ kind: 'stop', at, node: 0, restartAfter: span(rng, ctx, 0.2, 3) })
      at += span(rng, ctx, 0.5, 4)
    }
    return { name: 'handover', faults, drift: 'within' }
  },
  'partition-minority': (rng, ctx) => ({
    name: 'partition-minority',
    faults: [
      {
        kind: 'partition',
        at: settle(ctx, rng),
        duration: span(rng, ctx, 2, 6),
        groups: split(ctx, minority(ctx)),
        ...awayFromLeader(ctx),
      },
    ],
    drift: 'within',
  }),
  'partition-majority': (rng, ctx) => ({
    name: 'partition-majority',
    faults: [
      {
        kind: 'partition',
        at: settle(ctx, rng),
        duration: span(rng, ctx, 2, 6),
        groups: split(ctx, majority(ctx)),
        ...awayFromLeader(ctx),
      },
    ],
    drift: 'within',
  }),
  'one-way': (rng, ctx) => {
    const others = Array.from({ length: ctx.voters + ctx.observers - 1 }, (_, i) => i + 1)
    const deaf = rng.chance(0.5) // the leader hears nobody, or nobody hears the leader
    return {
      name: 'one-way',
      faults: [
        {
          kind: 'one-way',
          at: settle(ctx, rng),
          duration: span(rng, ctx, 2, 6),
          from: deaf ? others : [0],
          to: deaf ? [0] : others,
          // The leader hears nothing from the store (its requests are applied, the replies lost), or
          // nothing it sends reaches the store.
          ...(ctx.service ? { service: deaf ? ('from' as const) : ('to' as const) } : {}),
        },
      ],
      drift: 'within',
    }
  },
  bridge: (rng, ctx) => {
    // Leader on one side, the rest on the other, one follower that sees both.
    const n = ctx.voters + ctx.observers
    const bridge = follower(rng, ctx)
    const groups = Array.from({ length: n }, (_, slot) => (slot === 0 ? 0 : 1))
    return {
      name: 'bridge',
      faults: [{ kind: 'partition', at: settle(ctx, rng), duration: span(rng, ctx, 2, 6), groups, bridge }],
      drift: 'within',
    }
  },
  'isolate-and-return': (rng, ctx) => ({
    name: 'isolate-and-return',
    faults: [
      {
        kind: 'isolate',
        at: settle(ctx, rng),
        duration: span(rng, ctx, 3, 8),
        node: follower(rng, ctx),
        checkPreVote: ctx.voters >= 3,
      },
    ],
    drift: 'within',
  }),
  'gc-pause': (rng, ctx) => ({
    name: 'gc-pause',
    faults: [
      {
        kind: 'pause',
        at: settle(ctx, rng),
        duration: span(rng, ctx, 1.2, 4),
        node: rng.chance(0.7) ? 0 : rng.int(0, ctx.voters - 1),
      },
    ],
    drift: 'within',
  }),
  slow: (rng, ctx) => ({
    name: 'slow',
    faults: [
      {
        kind: 'slow',
        at: settle(ctx, rng),
        duration: span(rng, ctx, 2, 6),
        node: rng.chance(0.6) ? 0 : rng.int(0, ctx.voters - 1),
        extraMs: rng.between(0.2, 1.5) * ctx.timing.electionTimeoutMinMs,
      },
    ],
    drift: 'within',
  }),
  drift: (rng, ctx) => ({
    // Clocks at both ends of the bound while the leader is cut off: the lease must still end in time.
    name: 'drift',
    faults: [
      {
        kind: 'partition',
        at: settle(ctx, rng),
        duration: span(rng, ctx, 2, 5),
        groups: split(ctx, minority(ctx)),
        ...awayFromLeader(ctx),
      },
    ],
    drift: 'extreme',
  }),
  'clock-jump': (rng, ctx) => {
    // Clocks leap beyond any drift bound as the leader is cut off. Either the leader's clock leaps back
    // (by its clock its lease would outlive the followers' promises: the machine must notice and drop
    // it), or every follower's leaps forward (their promises end early and they elect a successor while
    // the old lease runs: expected to break the lease, and reported apart from failures as what the
    // drift bound protects).
    const at = settle(ctx, rng)
    const jumpMs = span(rng, ctx, 1.5, 4)
    const isolate: Fault = { kind: 'isolate', at, node: 0, duration: jumpMs + span(rng, ctx, 1, 3) }
    const faults: Fault[] = rng.chance(0.5)
      ? [{ kind: 'clock-jump', at, node: 0, jumpMs: -jumpMs }, isolate]
      : [
          ...Array.from(
            { length: ctx.voters - 1 },
            (_, i): Fault => ({ kind: 'clock-jump', at, node: i + 1, jumpMs }),
          ),
          isolate,
        ]
    return { name: 'clock-jump', faults, drift: 'within' }
  },
  lossy: (rng, ctx) => ({
    name: 'lossy',
    faults: [
      {
        kind: 'lossy',
        at: rng.between(0, 1) * settle(ctx, rng),
        duration: span(rng, ctx, 3, 8),
        loss: rng.between(0.05, 0.4),
        duplicate: rng.between(0, 0.2),
        reorder: rng.between(0, 0.3),
      },
    ],
    drift: 'within',
  }),
  'false-unreachable': (rng, ctx) => {
    const at = settle(ctx, rng)
    const faults: Fault[] = []
    const count = rng.int(1, Math.max(1, ctx.voters - 1))
    for (let i = 0; i < count; i++) {
      faults.push({
        kind: 'false-unreachable',
        at: at + rng.between(0, ctx.timing.electionTimeoutMinMs),
        node: follower(rng, ctx),
        peer: 0,
        reconnectAfter: span(rng, ctx, 0.05, 1),
      })
    }
    return { name: 'false-unreachable', faults, drift: 'within' }
  },
  'hint-handover': (rng, ctx) => {
    // Every follower is told, wrongly, that the leader's process is gone; one of them wins on those
    // broken promises and must wait out the old lease. Then it hands over at once (a rolling restart
    // SIGTERMs it): its successor must wait as long, whatever the hand-over waives.
    const at = settle(ctx, rng)
    const faults: Fault[] = []
    for (let slot = 1; slot < ctx.voters; slot++) {
      faults.push({
        kind: 'false-unreachable',
        at: at + rng.between(0, 2),
        node: slot,
        peer: 0,
        reconnectAfter: span(rng, ctx, 0.05, 0.5),
      })
    }
    let next = at + rng.between(2, ctx.timing.electionTimeoutMinMs / 2)
    for (let i = rng.int(1, 2); i > 0; i--) {
      faults.push(
        rng.chance(0.5)
          ? { kind: 'resign', at: next, node: 0 }
          : { kind: 'stop', at: next, node: 0, restartAfter: span(rng, ctx, 0.2, 2) },
      )
      next += rng.between(1, ctx.timing.electionTimeoutMinMs / 2)
    }
    return { name: 'hint-handover', faults, drift: rng.chance(0.3) ? 'extreme' : 'within' }
  },
  'disk-fail': (rng, ctx) => {
    // fsync fails for a while on the leader or any voter, sometimes just as it campaigns or votes.
    const at = settle(ctx, rng)
    const faults: Fault[] = [
      {
        kind: 'disk-fail',
        at,
        duration: span(rng, ctx, 0.2, 3),
        node: rng.chance(0.5) ? 0 : rng.int(0, ctx.voters - 1),
      },
    ]
    if (rng.chance(0.5))
      faults.push({
        kind: 'crash',
        at: at + span(rng, ctx, 0, 2),
        node: 0,
        restartAfter: span(rng, ctx, 0.2, 2),
      })
    if (rng.chance(0.5)) faults.push({ kind: 'resign', at: at + span(rng, ctx, 0, 2), node: 0 })
    return { name: 'disk-fail', faults, drift: 'within' }
  },
  forged: (rng, ctx) => {
    // Frames a faulty peer or any host (no key) sends: acks of heartbeats never sent (an echo from an
    // older incarnation), terms near 2^53. None may pin a lease, stall elections or change who may lead.
    const at = settle(ctx, rng)
    const faults: Fault[] = []
    for (let i = rng.int(1, 4); i > 0; i--) {
      faults.push({
        kind: 'forge',
        at: at + span(rng, ctx, 0, 2),
        node: rng.chance(0.6) ? 0 : rng.int(0, ctx.voters - 1),
        from: rng.int(0, ctx.voters - 1),
        what: rng.pick(FORGED_KINDS),
      })
    }
    // A leader cut off after a forged ack must still lose its lease in time.
    if (rng.chance(0.5))
      faults.push({ kind: 'isolate', at: at + span(rng, ctx, 0, 2), node: 0, duration: span(rng, ctx, 2, 4) })
    faults.sort((a, b) => a.at - b.at)
    return { name: 'forged', faults, drift: 'within' }
  },
  mix: (rng, ctx) => {
    const faults: Fault[] = []
    const count = rng.int(1, 4)
    const start = settle(ctx, rng)
    for (let i = 0; i < count; i++) {
      const kind = rng.pick(ctx.set?.mix ?? MIX_KINDS)
      const base = generator(kind)?.(rng, ctx)
      for (const f of base?.faults ?? []) {
        // Spread the faults over a window so they overlap in many ways.
        faults.push({
          ...f,
          at: start + span(rng, ctx, 0, 6),
          ...(f.kind === 'crash' || f.kind === 'stop' ? restart(f, rng, ctx) : {}),
        })
      }
    }
    faults.sort((a, b) => a.at - b.at)
    for (const f of faults) if (f.kind === 'isolate') f.checkPreVote = false // other faults may move the leader
    return { name: 'mix', faults, drift: rng.chance(0.2) ? 'extreme' : 'within' }
  },
}

/** With a service, a partition puts it on the side away from the leader's (group 1). */
function awayFromLeader(ctx: ScenarioContext): { service?: number } {
  return ctx.service ? { service: 1 } : {}
}

/**
 * Scenarios only a protocol with a service (the lease's store) runs. Kept apart from GENERATORS so that
 * the default set, and every seed of raft and bully, stays what it was.
 */
const SERVICE_GENERATORS: Record<string, Generator> = {
  outage: (rng, ctx) => {
    // The store is unreachable from everyone, from shorter than a keep-alive period to several TTLs
    // (every session then expires on the store's clock while nobody can reach it); sometimes the
    // leader also crashes meanwhile, and comes back.
    const at = settle(ctx, rng)
    const duration = rng.chance(0.3) ? span(rng, ctx, 0.1, 0.9) : span(rng, ctx, 1, 4)
    const faults: Fault[] = [{ kind: 'outage', at, duration }]
    if (rng.chance(0.3))
      faults.push({
        kind: 'crash',
        at: at + rng.between(0, duration),
        node: 0,
        restartAfter: span(rng, ctx, 0.2, 2),
      })
    return { name: 'outage', faults, drift: rng.chance(0.3) ? 'extreme' : 'within' }
  },
  'service-slow': (rng, ctx) => ({
    // Every request takes long at the store: from a fraction of the request timeout to beyond it.
    name: 'service-slow',
    faults: [
      {
        kind: 'service-slow',
        at: settle(ctx, rng),
        duration: span(rng, ctx, 1, 5),
        extraMs: rng.between(0.05, 1) * ctx.timing.electionTimeoutMinMs,
      },
    ],
    drift: 'within',
  }),
}

function generator(name: string): Generator | undefined {
  return GENERATORS[name] ?? SERVICE_GENERATORS[name]
}

/** In a mix every crashed node restarts, so a majority is live once everything heals. */
function restart(f: { restartAfter?: number }, rng: SimRandom, ctx: ScenarioContext) {
  return { restartAfter: f.restartAfter ?? span(rng, ctx, 0.2, 3) }
}

/** The kinds of forged message a `forge` fault sends; each protocol's adapter makes them. */
export const FORGED_KINDS = ['ack', 'term-max'] as const

const MIX_KINDS = [
  'hint-handover',
  'disk-fail',
  'forged',
  'crash-restart',
  'handover',
  'partition-minority',
  'partition-majority',
  'one-way',
  'bridge',
  'isolate-and-return',
  'gc-pause',
  'slow',
  'lossy',
  'false-unreachable',
]

/** The scenarios of peer-to-peer protocols (raft, bully): every generator above, and their mix. */
export const DEFAULT_SCENARIOS: ScenarioSet = { names: Object.keys(GENERATORS), mix: MIX_KINDS }

/** Every scenario a user can name for raft and bully; `random` draws one of the others per run. */
export const SCENARIO_NAMES = [...DEFAULT_SCENARIOS.names, 'random'] as const

/** The names a user can give `--scenario` for a protocol with this set (its names and `random`). */
export function scenarioNames(set: ScenarioSet = DEFAULT_SCENARIOS): string[] {
  return [...set.names, 'random']
}

export function validateScenarioName(name: string, set: ScenarioSet = DEFAULT_SCENARIOS): string {
  const names = scenarioNames(set)
  if (!names.includes(name) || (name !== 'random' && generator(name) === undefined)) {
    throw new InvalidOptionsError('--scenario', `must be one of ${names.join(', ')}, got ${name}`)
  }
  return name
}

export function drawScenario(name: string, rng: SimRandom, ctx: ScenarioContext): Scenario {
  const pickName = name === 'random' ? rng.pick(ctx.set?.names ?? DEFAULT_SCENARIOS.names) : name
  const gen = generator(pickName)
  if (!gen) throw new InvalidOptionsError('--scenario', `unknown scenario ${name}`)
  return gen(rng, ctx)
}
