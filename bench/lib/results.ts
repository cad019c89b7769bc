/**
 * The JSON a benchmark run writes (docs/benchmarks/results.json): everything the report and its plots
 * are made from, raw samples included, so two runs can be compared (bench/compare.ts) and the report
 * regenerated without measuring again (`npm run bench -- --report-only <file>`).
 */
import type { GroupsRow } from '../groups.js'
import type { LeaseIdle } from '../lease.js'
import type { FailoverTrace, FaultKind } from '../raft.js'
import type { ScaleRow } from '../scale.js'
import type { SimMessagesRow } from '../sim.js'
import type { StabilityRow } from '../stability.js'

/** The sections of a run, in the order they run. */
export const SECTIONS = ['failover', 'scale', 'sim', 'groups', 'stability'] as const
/** A section's name. */
export type Section = (typeof SECTIONS)[number]

/** One failover figure: a driver, a fault, what was timed, against its floor. */
export interface FailoverFigure {
  /** e.g. "raft default", "bully multicast", "lease etcd", "etcd3 Election (etcd)". */
  driver: string
  family: 'raft' | 'bully' | 'lease' | 'etcd3'
  fault: FaultKind
  /** named: every survivor names the new leader; acts: the new leader may act (isLeader true). */
  figure: 'named' | 'acts'
  /** The configured detection time or lease the figure is divided by (ms). */
  floorMs: number
  /** What the floor is. */
  floorNote: string
  note?: string
  /** Raw samples (ms). */
  samples: number[]
}

/** What one run measured, with the settings it ran with. */
export interface Results {
  version: 1
  /** Whether this was the --quick smoke profile (few runs: not for citing). */
  quick: boolean
  startedAt: string
  finishedAt?: string
  /** The command line that produced it. */
  command: string
  /** Flags as given on the command line (reproduce commands repeat them). */
  flags: string[]
  machine: { cpus: number; model: string; memGiB: number; node: string; platform: string; loadavg: number[] }
  settings: Record<string, unknown>
  /** Seconds each section took. */
  durations: Partial<Record<Section, number>>
  failover: FailoverFigure[]
  leaseIdle: LeaseIdle[]
  /** One real raft failover (kill -9 of the leader): every node's changes around it. */
  timeline?: FailoverTrace
  scale: ScaleRow[]
  baselineRssMiB?: number
  sim: SimMessagesRow[]
  groups: GroupsRow[]
  stability: StabilityRow[]
  /** What could not be measured, and why (a benchmark reports; it does not fail). */
  notes: string[]
}
