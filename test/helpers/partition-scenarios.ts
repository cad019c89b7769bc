/**
 * The partition scenarios, shared by test/partitions.test.ts (which asserts) and bench/partitions.ts
 * (which repeats them and prints figures). Each one starts from a leader all five nodes agree on, cuts
 * links with nftables, heals, and returns what the poller saw; every one throws if two nodes claimed
 * leadership with a lease at the same moment (see partition-lab.ts) or a process died.
 *
 * Waiting: faults last for a stretch of the poller's observed time (a fault's length is the input, not
 * an assertion); every check waits for the fact it needs, with a generous deadline.
 */
import { now, type Observation, type PartitionLab } from './partition-lab.js'

export interface ScenarioFigures {
  scenario: string
  /** The leader and term before the fault. */
  before: string
  /** From the cut to the old leader's first answer that no longer claims (ms; poll-bounded). */
  oldLeaderStoppedMs?: number | undefined
  /**
   * From the cut to the end of the old leader's lease as its last claim reported it (ms): it stopped
   * claiming by then at the latest.
   */
  oldLeaseEndMs?: number | undefined
  /** From the cut to the first claim by a node on the majority side (ms; poll-bounded). */
  majorityLeaderMs?: number | undefined
  /** Between the old leader's last observed claim and the first new claim (ms; > 0: never overlapped). */
  claimGapMs?: number | undefined
  /** The leader and term on the majority side while cut (or the leader after the fault). */
  during?: string | undefined
  /** From the heal to every node naming one leader (ms). */
  healAgreeMs: number
  /** The leader and term after the heal. */
  after: string
  /** The highest term a cut-off node reached while cut (pre-vote keeps it at or below the majority's). */
  cutOffTerm?: number | undefined
  /** Leaderships (node@term) that claimed during the fault. */
  leaderships: string[]
  /** Claims whose poll intervals overlap another node's (not violations, see partition-lab.ts). */
  ambiguous: number
}

const label = (l: { id: string; term: number }) => `${l.id}@${l.term}`

/** Resolves once the poller has observed answers sent `ms` after `from` (a fault's length). */
async function hold(lab: PartitionLab, from: number, ms: number): Promise<void> {
  await lab.waitFor(
    `${ms} ms of observations`,
    () => (lab.observations.at(-1)?.s ?? 0) > from + ms,
    ms + 30_000,
  )
}

function leadershipsBetween(lab: PartitionLab, from: number, to: number): string[] {
  return [...new Set(lab.claims(from, to).map((o) => `${o.node}@${o.term}`))]
}

function checkSafety(lab: PartitionLab, scenario: string, from: number): number {
  const { certain, ambiguous } = lab.violations(from)
  if (certain.length > 0) {
    const v = certain[0] as { a: Observation; b: Observation }
    throw new Error(
      `${scenario}: two leaders at once: ${JSON.stringify(v.a)} claimed with a lease running past ${JSON.stringify(v.b)} (${certain.length} such pairs)`,
    )
  }
  if (lab.died.length > 0) throw new Error(`${scenario}: ${lab.died.join(', ')}`)
  return ambiguous
}

/** Heals, then waits for every node to name one leader; returns it and how long that took. */
async function healAndAgree(
  lab: PartitionLab,
): Promise<{ leader: { id: string; term: number }; ms: number }> {
  const tHeal = now()
  lab.heal()
  const leader = await lab.stableLeader(tHeal, 30_000)
  return { leader, ms: Math.round(now() - tHeal) }
}

/**
 * Cuts the leader's side (`minorityOf(leader)`) from the rest, both ways or one way; the old leader must
 * stop claiming, the majority must elect, and after the heal the majority's leader stays, same term.
 */
async function cutLeaderSide(
  lab: PartitionLab,
  scenario: string,
  fault: (leader: string) => string[],
): Promise<ScenarioFigures> {
  const start = now()
  const before = await lab.stableLeader(start)
  const tCut = now()
  const minority = fault(before.id)
  const majority = lab.ids.filter((id) => !minority.includes(id))
  const newClaim = await lab.waitFor(
    'a leader on the majority side',
    () => lab.first(tCut, (o) => o.isLeader === true && majority.includes(o.node)),
    30_000,
  )
  const stopped = await lab.waitFor(
    'the old leader to stop claiming',
    () => lab.first(tCut, (o) => o.node === before.id && o.isLeader === false),
    30_000,
  )
  const during = await lab.waitFor('the majority to agree', () => lab.agreed(newClaim.s, majority), 30_000)
  // The cut lasts a while longer: the cut-off side times out, and (pre-vote) must not raise its term.
  await hold(lab, stopped.r, 2000)
  const lastOld = lab.lastClaim(before.id, start, newClaim.s)
  // Pre-vote: the cut-off side never raised its term past the majority's while it could not win.
  const tHeal = now()
  const raised = lab.observations.find(
    (o) => o.ok && o.s >= tCut && o.s < tHeal && minority.includes(o.node) && (o.term ?? 0) > during.term,
  )
  if (raised)
    throw new Error(
      `${scenario}: ${raised.node}, cut off, raised its term to ${raised.term} (majority: ${label(during)})`,
    )
  const healed = await healAndAgree(lab)
  // A returning node must not depose the leader: same leader, same term, and still so a moment later.
  if (healed.leader.id !== during.id || healed.leader.term !== during.term)
    throw new Error(`${scenario}: the heal changed the leader: ${label(during)} -> ${label(healed.leader)}`)
  const tAgreed = now()
  await hold(lab, tAgreed, 1000)
  const later = await lab.stableLeader(tAgreed + 1000)
  if (later.id !== during.id || later.term !== during.term)
    throw new Error(`${scenario}: after the heal the leader changed: ${label(during)} -> ${label(later)}`)
  return {
    scenario,
    before: label(before),
    oldLeaderStoppedMs: Math.round(stopped.r - tCut),
    oldLeaseEndMs: lastOld ? Math.round(lastOld.s + (lastOld.lease ?? 0) - tCut) : undefined,
    majorityLeaderMs: Math.round(newClaim.r - tCut),
    claimGapMs: lastOld ? Math.round(newClaim.s - lastOld.r) : undefined,
    during: label(during),
    healAgreeMs: healed.ms,
    after: label(later),
    cutOffTerm: Math.max(
      ...lab.observations
        .filter((o) => o.ok && o.s >= tCut && o.s < tHeal && minority.includes(o.node))
        .map((o) => o.term ?? 0),
    ),
    leaderships: leadershipsBetween(lab, tCut, now()),
    ambiguous: checkSafety(lab, scenario, start),
  }
}

export function leaderIsolated(lab: PartitionLab): Promise<ScenarioFigures> {
  return cutLeaderSide(lab, 'leader isolated', (leader) => {
    lab.split(
      [leader],
      lab.ids.filter((id) => id !== leader),
    )
    return [leader]
  })
}

export function splitTwoThree(lab: PartitionLab): Promise<ScenarioFigures> {
  return cutLeaderSide(lab, '2|3 split, leader on the 2 side', (leader) => {
    const small = [leader, lab.ids.find((id) => id !== leader) as string]
    lab.split(
      small,
      lab.ids.filter((id) => !small.includes(id)),
    )
    return small
  })
}

export function oneWayLoss(lab: PartitionLab): Promise<ScenarioFigures> {
  return cutLeaderSide(lab, "one-way: the leader's packets to the others lost", (leader) => {
    lab.blockOneWay(
      leader,
      lab.ids.filter((id) => id !== leader),
    )
    return [leader]
  })
}

/**
 * The leader and one follower on one side, two nodes on the other, and a fifth node that reaches both:
 * the leader keeps a majority through the bridge; at most one node may claim at any moment, and a
 * leader must be usable at the end.
 */
export async function bridgeNode(lab: PartitionLab, faultMs = 3000): Promise<ScenarioFigures> {
  const scenario = 'bridge node reaches both halves'
  const start = now()
  const before = await lab.stableLeader(start)
  const others = lab.ids.filter((id) => id !== before.id)
  const [b, c, d, bridge] = others as [string, string, string, string]
  const tCut = now()
  lab.split([before.id, b], [c, d])
  await hold(lab, tCut, faultMs)
  // Somebody leads with a lease (the old leader keeps its majority through the bridge, or another wins).
  const claim = await lab.waitFor('a leader during the bridge cut', () =>
    lab.first(tCut + faultMs / 2, (o) => o.isLeader === true),
  )
  const healed = await healAndAgree(lab)
  return {
    scenario: `${scenario} (${before.id},${b} | ${c},${d}; bridge ${bridge})`,
    before: label(before),
    during: `${claim.node}@${claim.term}`,
    healAgreeMs: healed.ms,
    after: label(healed.leader),
    leaderships: leadershipsBetween(lab, tCut, now()),
    ambiguous: checkSafety(lab, scenario, start),
  }
}

/** The leader's links go down and up every `periodMs` for `cycles` cycles. */
export async function flappingLink(lab: PartitionLab, cycles = 8, periodMs = 300): Promise<ScenarioFigures> {
  const scenario = `the leader's link flaps (${periodMs} ms down, ${periodMs} ms up, ${cycles} times)`
  const start = now()
  const before = await lab.stableLeader(start)
  const tCut = now()
  for (let i = 0; i < cycles; i++) {
    const t = now()
    lab.split(
      [before.id],
      lab.ids.filter((id) => id !== before.id),
    )
    await hold(lab, t, periodMs)
    lab.heal()
    await hold(lab, t, 2 * periodMs)
  }
  const healed = await healAndAgree(lab)
  return {
    scenario,
    before: label(before),
    healAgreeMs: healed.ms,
    after: label(healed.leader),
    leaderships: leadershipsBetween(lab, tCut, now()),
    ambiguous: checkSafety(lab, scenario, start),
  }
}

/** Every node drops `percent`% of what it receives from the others, for `faultMs`. */
export async function randomLoss(lab: PartitionLab, percent = 20, faultMs = 4000): Promise<ScenarioFigures> {
  const scenario = `random loss of ${percent}% on every link`
  const start = now()
  const before = await lab.stableLeader(start)
  const tCut = now()
  lab.randomLoss(percent)
  await hold(lab, tCut, faultMs)
  // Availability while lossy: the share of 100 ms slots in which some node was seen claiming.
  const slots = new Set(lab.claims(tCut, tCut + faultMs).map((o) => Math.floor((o.s - tCut) / 100)))
  const healed = await healAndAgree(lab)
  const leaderships = leadershipsBetween(lab, tCut, now())
  return {
    scenario,
    before: label(before),
    during: `a leader seen claiming in ${Math.round((100 * slots.size) / Math.ceil(faultMs / 100))}% of 100 ms slots`,
    healAgreeMs: healed.ms,
    after: label(healed.leader),
    leaderships,
    ambiguous: checkSafety(lab, scenario, start),
  }
}

/** All scenarios in order, as the test and the bench run them. */
export const SCENARIOS = [
  leaderIsolated,
  splitTwoThree,
  bridgeNode,
  oneWayLoss,
  flappingLink,
  randomLoss,
] as const
