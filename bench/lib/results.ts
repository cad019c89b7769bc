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

/** Where one section's figures came from: the run that measured them. */
export interface SectionSource {
  command: string
  /** Flags as given on that run's command line. */
  flags: string[]
  quick: boolean
  startedAt: string
  /** Load average when the section started. */
  loadavg: number[]
  /** Seconds the section took. */
  durationS: number
  /** What the section could not measure. */
  notes: string[]
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
  /**
   * Per section, the run that measured it. A run with `--merge` keeps the sections it does not measure
   * from the results file it writes over, so a full report can be put together section by section.
   */
  sources?: Partial<Record<Section, SectionSource>>
}

/** The fields of Results that belong to each section. */
const SECTION_FIELDS = {
  failover: ['failover', 'leaseIdle', 'timeline'],
  scale: ['scale', 'baselineRssMiB'],
  sim: ['sim'],
  groups: ['groups'],
  stability: ['stability'],
} as const satisfies Record<Section, readonly (keyof Results)[]>

/** Notes of a file written before sections had sources, told apart by how each part names itself. */
const NOTE_SECTION: [RegExp, Section][] = [
  [/^(raft|bully|lease)\b/, 'failover'],
  [/^(scale|baseline)\b/, 'scale'],
  [/^sim\b/, 'sim'],
  [/^groups\b/, 'groups'],
  [/^stability\b/, 'stability'],
]

/** Whether a section has any figures in `r`. */
export function hasSection(r: Results, section: Section): boolean {
  return SECTION_FIELDS[section].some((f) => {
    const v = r[f]
    return Array.isArray(v) ? v.length > 0 : v !== undefined
  })
}

/** The source of each section of `r` that has figures (made up from the run's own fields if need be). */
export function sourcesOf(r: Results): Partial<Record<Section, SectionSource>> {
  const out: Partial<Record<Section, SectionSource>> = {}
  for (const s of SECTIONS) {
    if (!hasSection(r, s)) continue
    out[s] = r.sources?.[s] ?? {
      command: r.command,
      flags: r.flags,
      quick: r.quick,
      startedAt: r.startedAt,
      loadavg: r.machine.loadavg,
      durationS: r.durations[s] ?? 0,
      notes: r.notes.filter((n) => NOTE_SECTION.find(([re]) => re.test(n))?.[1] === s),
    }
  }
  return out
}

/**
 * `fresh` (which measured `measured`) with every other section that `old` has taken from `old`, with its
 * source: its figures, notes and duration. `quick` holds when any section of the result is quick.
 */
export function mergeResults(old: Results, fresh: Results, measured: readonly Section[]): Results {
  const out: Results = { ...fresh, durations: { ...fresh.durations } }
  const sources: Partial<Record<Section, SectionSource>> = { ...sourcesOf(old), ...fresh.sources }
  for (const s of SECTIONS) {
    if (measured.includes(s) || !hasSection(old, s)) continue
    for (const f of SECTION_FIELDS[s]) (out as unknown as Record<string, unknown>)[f] = old[f]
    if (old.durations[s] !== undefined) out.durations[s] = old.durations[s]
  }
  out.sources = sources
  out.notes = SECTIONS.flatMap((s) => sources[s]?.notes ?? [])
  out.quick = Object.values(sources).some((src) => src?.quick)
  return out
}
