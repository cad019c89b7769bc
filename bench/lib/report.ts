/**
 * Renders a run's results as docs/benchmarks.md and its SVG plots (docs/benchmarks/*.svg). Every plot
 * is followed by the command that reproduces it.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { markdownTable, type Summary, summarize } from '../stats.js'
import { ANCHORS } from './anchors.js'
import { type FailoverFigure, type Results, type Section, sourcesOf } from './results.js'
import { cdfPoints, type Lane, lineChart, timelineChart } from './svg.js'

const FAULT = { crash: 'kill -9', silent: 'SIGSTOP', handover: 'hand-over' } as const
const FIGURE = { named: 'all survivors name it', acts: 'new leader may act' } as const

const ratio = (v: number, floor: number) => (floor > 0 && Number.isFinite(v) ? (v / floor).toFixed(2) : '-')
const ms = (v: number) =>
  !Number.isFinite(v) ? '-' : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`

/** The command that reproduces one section, with the flags this run was given. */
export function reproduce(r: Results, section: Section): string {
  const flags = r.sources?.[section]?.flags ?? r.flags
  const keep: string[] = []
  for (let i = 0; i < flags.length; i++) {
    const f = flags[i] as string
    if (f === '--merge') continue
    if (f === '--sections' || f === '--out' || f === '--report-only') {
      i++
      continue
    }
    if (f.startsWith('--sections=') || f.startsWith('--out=') || f.startsWith('--report-only=')) continue
    keep.push(f)
  }
  return ['npm run bench --', '--sections', section, ...keep].join(' ')
}

/** Writes the report (Markdown) and its plots; returns the Markdown's path. */
export function writeReport(r: Results, docsDir: string): string {
  const plotDir = join(docsDir, 'benchmarks')
  mkdirSync(plotDir, { recursive: true })
  const plot = (name: string, svg: string, alt: string, section: Section) => {
    writeFileSync(join(plotDir, name), svg)
    return `![${alt}](benchmarks/${name})\n\nReproduce: \`${reproduce(r, section)}\`\n`
  }
  const md: string[] = []
  md.push('# Benchmarks\n')
  const sources = Object.entries(sourcesOf(r)) as [Section, NonNullable<Results['sources']>[Section]][]
  const quickSections = sources.filter(([, src]) => src?.quick).map(([s]) => s)
  if (r.quick)
    md.push(
      `> **Quick run (\`--quick\`, a smoke profile) for ${quickSections.length && quickSections.length < sources.length ? `the sections ${quickSections.join(', ')}` : 'every section'}: a few runs per figure on a shared, loaded 2-core machine.** These`,
      '> numbers show that every benchmark runs and what the report looks like; they are distorted and too few',
      '> for percentiles. Do not cite them: the full report comes from `npm run bench` on a quiet machine.\n',
    )
  md.push(
    `Machine: ${r.machine.cpus} × ${r.machine.model}, ${r.machine.memGiB} GiB, ${r.machine.platform}, Node ${r.machine.node}.`,
    `Raw results: [benchmarks/results.json](benchmarks/results.json) (compare two runs with \`npm run bench:compare -- old.json new.json\`).`,
    `Benchmarks report and never fail on a slow machine: what could not be measured is listed under Notes.\n`,
  )
  // Sections may come from different runs (--merge): say for each which run measured it, and when.
  if (sources.length)
    md.push(
      markdownTable(
        sources.map(([s, src]) => ({
          section: s,
          'measured by': `\`${src?.command}\`${src?.quick ? ' (quick)' : ''}`,
          started: src?.startedAt.replace('T', ' ').slice(0, 16) ?? '',
          'load average at start': src?.loadavg.map((l) => l.toFixed(1)).join(' / ') ?? '',
          took:
            (src?.durationS ?? 0) < 120
              ? `${src?.durationS ?? 0} s`
              : `${Math.round((src?.durationS ?? 0) / 60)} min`,
        })),
      ),
      '',
    )

  // Failover.
  if (r.failover.length > 0) {
    md.push(
      '## Failover, side by side\n',
      'Each figure is timed from the fault to the moment named; p50/p90/p99 over the runs, and each as a ratio to',
      "its own floor: the configured detection time (raft's minimum election timeout, bully's leader timeout) or",
      'the lease/session TTL, which no safe design can beat after a silent failure. A kill -9 on one host can beat the',
      'floor: its connection closes and the redial is refused at once, which survivors take as a hint (raft, bully over TCP);',
      'SIGSTOP (a hung host) gives no such hint. For raft two figures: when every survivor names the new leader, and',
      'when that leader may act (its `isLeader()` turns true, once any older lease has surely run out). Lease',
      'drivers and the etcd3 package report when the next candidate leads; after a kill -9 or SIGSTOP that waits for',
      'the session to expire at the store, TTL after the last keep-alive, which came up to a keep-alive period',
      '(TTL/3) before the fault: a ratio from about 0.67 is as good as it gets (Consul: about 2 × TTL + lock-delay).\n',
    )
    const rows = r.failover.map((f) => {
      const s = summarize(f.samples)
      return {
        driver: f.driver,
        fault: FAULT[f.fault],
        figure:
          f.family === 'raft'
            ? FIGURE[f.figure]
            : f.family === 'bully'
              ? 'all survivors name it'
              : 'next leads',
        floor: `${ms(f.floorMs)} (${f.floorNote})`,
        runs: s.runs,
        p50: ms(s.p50),
        p90: ms(s.p90),
        p99: ms(s.p99),
        'p50 / floor': ratio(s.p50, f.floorMs),
        'p99 / floor': ratio(s.p99, f.floorMs),
        anchor: ANCHORS[f.family].short,
      }
    })
    md.push(markdownTable(rows), '')
    const notes = [...new Set(r.failover.filter((f) => f.note).map((f) => `${f.driver}: ${f.note}`))]
    if (notes.length) md.push(notes.map((n) => `- ${n}`).join('\n'), '')
    // Raft's "acts" figure (the leader may act) is the one comparable with the others' "next leads".
    const comparable = (f: FailoverFigure) => !(f.family === 'raft' && f.figure === 'named')
    const crash = r.failover.filter((f) => f.fault === 'crash' && comparable(f))
    const crashSeries = crash.map((f) => ({ name: f.driver, points: cdfPoints(f.samples), step: true }))
    md.push(
      plot(
        'failover-cdf.svg',
        lineChart({
          title: 'Failover after kill -9 of the leader: CDF per driver',
          xLabel: 'ms from kill -9 until the new leader acts / leads (log scale)',
          yLabel: 'fraction of runs',
          series: crashSeries,
          logX: true,
          refs: [
            { x: 300, label: 'Raft paper 300 ms' },
            { x: 2340, label: 'MultiBully 2.34 s' },
            { x: 15000, label: 'k8s lease 15 s' },
          ],
        }),
        'CDF of failover times per driver',
        'failover',
      ),
    )
    const silent = r.failover.filter((f) => f.fault === 'silent' && comparable(f))
    if (silent.length)
      md.push(
        plot(
          'failover-sigstop-cdf.svg',
          lineChart({
            title: 'Failover after SIGSTOP of the leader (a hung host): CDF per driver',
            xLabel: 'ms from SIGSTOP until the new leader acts / leads (log scale)',
            yLabel: 'fraction of runs',
            series: silent.map((f) => ({ name: f.driver, points: cdfPoints(f.samples), step: true })),
            logX: true,
          }),
          'CDF of failover times after SIGSTOP per driver',
          'failover',
        ),
      )
  }
  if (r.leaseIdle.length > 0) {
    md.push(
      '### Lease drivers at rest\n',
      'Requests per second the store receives from one idle candidate (while it leads) and from one idle follower.\n',
      markdownTable(
        r.leaseIdle.map((i) => ({ store: i.store, who: i.who, 'requests/s': i.perSecond, counts: i.counts })),
      ),
      '',
    )
  }
  if (r.timeline) md.push(timelineSection(r, plot))

  // Scale.
  if (r.scale.length > 0) {
    md.push(
      '## Scale: real processes on one host\n',
      'Every node a process of its own on loopback, default timings. First leader: from the last node up to every',
      'node naming the same leader. Failover: kill -9 and hand-over, every survivor names the new leader (p50 of the',
      `runs). At rest (from \`--settle-s\` after the first agreement, 10 s by default, over \`--rest-s\`): the whole cluster's messages and bytes per second sent, CPU (% of one core) and RSS per node.${
        r.baselineRssMiB
          ? ` RSS includes Node and tsx's loader: an idle \`node --import tsx\` process takes ${r.baselineRssMiB} MiB here.`
          : ''
      } CPU per node falls as the cluster grows: on a virtual machine an idle core sleeps deeply and every wake-up of a`,
      "node is dear; with more processes the cores sleep less. The built daemon's own idle cost (no tsx) is measured by",
      "`bench/idle.ts`: see the README's 'What an idle node costs'.\n",
    )
    md.push(
      markdownTable(
        r.scale.map((s) => ({
          driver: s.driver,
          nodes: s.nodes,
          'first leader': ms(s.firstLeaderMs),
          'kill -9 p50': ms(summarize(s.crash).p50),
          'kill -9 max': ms(summarize(s.crash).max),
          'hand-over p50': ms(summarize(s.handover).p50),
          runs: s.crash.length,
          'msgs/s': s.messagesPerSecond,
          'bytes/s': s.bytesPerSecond,
          'CPU %/node': s.cpuPercentPerNode,
          'RSS MiB/node': s.rssMiBPerNode,
          'elections at rest': s.electionsAtRest,
        })),
      ),
      '',
    )
    const drivers = [...new Set(r.scale.map((s) => s.driver))]
    const series = (f: (s: (typeof r.scale)[number]) => number) =>
      drivers.map((d) => ({
        name: d,
        points: r.scale.filter((s) => s.driver === d).map((s) => [s.nodes, f(s)] as [number, number]),
      }))
    md.push(
      plot(
        'rest-messages.svg',
        lineChart({
          title: 'Cost at rest: messages per second, whole cluster',
          xLabel: 'nodes (processes)',
          yLabel: 'messages/s sent',
          series: series((s) => s.messagesPerSecond),
        }),
        'messages per second at rest against cluster size',
        'scale',
      ),
      plot(
        'rest-cpu.svg',
        lineChart({
          title: 'Cost at rest: CPU per node',
          xLabel: 'nodes (processes)',
          yLabel: '% of one core per node',
          series: series((s) => s.cpuPercentPerNode),
        }),
        'CPU per node at rest against cluster size',
        'scale',
      ),
    )
  }

  // Simulator.
  if (r.sim.length > 0) {
    md.push(
      '## Messages per election (simulator)\n',
      'Seeded simulator runs (the same state machines as the daemon, virtual time) in which the leader crashes once;',
      'messages sent per election, raft (pre-vote, votes, first heartbeats) and bully (one claim to every peer, as',
      'over TCP; over multicast a claim is one datagram).\n',
      markdownTable(
        r.sim.map((s) => ({
          algo: s.algo,
          voters: s.voters,
          runs: s.runs,
          elections: s.elections,
          'msgs/election': s.messagesPerElection,
          'failed runs': s.failedRuns,
        })),
      ),
      '',
    )
    const algos = [...new Set(r.sim.map((s) => s.algo))]
    md.push(
      plot(
        'election-messages.svg',
        lineChart({
          title: 'Messages per election against voters (simulator)',
          xLabel: 'voters',
          yLabel: 'messages per election',
          series: algos.map((a) => ({
            name: a,
            points: r.sim
              .filter((s) => s.algo === a)
              .map((s) => [s.voters, s.messagesPerElection] as [number, number]),
          })),
        }),
        'election messages against voters',
        'sim',
      ),
    )
  }

  // Groups.
  if (r.groups.length > 0) {
    md.push(
      '## Many groups in one process\n',
      'Raft: G independent groups of 3 over 3 processes, each process a member of every group. Each election has',
      'its own TCP port: the library cannot share one transport between groups today, so these are G separate',
      'elections per process. Lease: N candidates in one process, each in an election of its own on one etcd; each',
      'has its own etcd3 client (no shared store connection today). The count grows until a step fails (not every',
      'group led within 2 minutes, or leadership moved while idle). RSS per group is the growth over the first step.\n',
      markdownTable(
        r.groups.map((g) => ({
          kind: g.kind,
          'per process': g.count,
          ok: g.ok ? 'yes' : 'no',
          'all led after': g.allLedMs === undefined ? '-' : ms(g.allLedMs),
          'CPU %/group': g.cpuPercentPerGroup,
          'RSS MiB/group': g.rssMiBPerGroup || '-',
          'RSS MiB/process': g.rssMiBPerProcess,
          'changes at rest': g.changesAtRest,
          'store msgs/s per candidate': g.storeMessagesPerSecond ?? '-',
        })),
      ),
      '',
    )
  }

  // Stability.
  if (r.stability.length > 0) {
    md.push(
      '## Stability: leader changes when nothing fails\n',
      'A cluster left alone; with a CPU hog, every node process spins its event loop for a while at a fixed period',
      '(timers fire late, as on a busy host). The goal is no change at all.\n',
      markdownTable(
        r.stability.map((s) => ({
          driver: s.driver,
          nodes: s.nodes,
          'CPU hog': s.hog,
          duration: `${s.seconds} s`,
          'leader changes': s.leaderChanges,
          'elections started': s.electionsStarted,
          'CPU %/node': s.cpuPercentPerNode,
        })),
      ),
      '',
      `Reproduce: \`${reproduce(r, 'stability')}\`\n`,
    )
  }

  md.push('## Anchors\n')
  for (const a of Object.values(ANCHORS)) md.push(`- **${a.short}**: ${a.source}.`)
  md.push('')
  if (r.notes.length) md.push('## Notes\n', ...r.notes.map((n) => `- ${n}`), '')
  md.push(
    '## Running it\n',
    '```sh',
    'npm run bench                                  # everything, full profile (≥30 runs per figure, 10-minute stability runs)',
    'npm run bench -- --quick                       # smoke profile: a few runs per figure, short windows',
    'npm run bench -- --sections failover,sim       # some sections only (failover, scale, sim, groups, stability)',
    'npm run bench -- --sections scale --merge      # one section into the existing report, the others kept',
    'npm run bench -- --runs 50 --stability-s 1800  # more runs, longer stability runs',
    'npm run bench -- --report-only docs/benchmarks/results.json   # re-render this page from a results file',
    'npm run bench:compare -- old.json new.json     # what changed between two runs',
    '```',
    '',
    'How long a full run takes: the "took" column of the table at the top, section by section (about 2 hours in all on',
    'this 2-core machine; the slowest part is Consul in the failover section, where each kill -9 waits out about 2 × its',
    '10 s TTL, and stability is 2 drivers × with and without the hog × 10 min). `--quick` takes ~20 min.',
    '',
    'Each benchmark also runs alone and prints a table: `npm run bench:raft`, `bench:bully`, `bench:lease`,',
    '`bench:sim`, `bench:scale`, `bench:groups`, `bench:stability`, `bench:exec` (see each file under bench/).',
    '',
  )
  const path = join(docsDir, 'benchmarks.md')
  writeFileSync(path, md.join('\n'))
  return relative(process.cwd(), path)
}

/** The timeline of one real failover: who named whom, when, relative to the kill. */
function timelineSection(
  r: Results,
  plot: (name: string, svg: string, alt: string, section: Section) => string,
): string {
  const t = r.timeline
  if (!t) return ''
  const t0 = t.t0
  // Up to when the new leader may act (or every survivor named it, if later), and a little after.
  const acts = t.nodes
    .filter((n) => n.id !== t.gone)
    .flatMap((n) => n.events.filter((e) => e.ev === 'lead' && e.leading === true && (e.t as number) > t0))
    .map((e) => e.t as number)
  const end = Math.max(t.named, ...acts) - t0 + 250
  const start = -300
  const lanes: Lane[] = t.nodes.map((n) => {
    const changes = n.events.filter((e) => e.ev === 'change')
    const segments: Lane['segments'] = []
    let cur: { from: number; label: string } | undefined
    for (const e of changes) {
      const at = (e.t as number) - t0
      const label = e.leader ? `names ${e.leader}` : 'names nobody'
      if (at > end) break
      if (cur && at > start) segments.push({ from: Math.max(cur.from, start), to: at, label: cur.label })
      cur = { from: at, label }
    }
    const stopAt = n.id === t.gone ? 0 : end
    if (cur && stopAt > Math.max(cur.from, start))
      segments.push({ from: Math.max(cur.from, start), to: stopAt, label: cur.label })
    const marks = n.events
      .filter(
        (e) =>
          e.ev === 'lead' &&
          e.leading === true &&
          (e.t as number) - t0 > start &&
          (e.t as number) - t0 <= end,
      )
      .map((e) => ({ t: (e.t as number) - t0, label: 'may act' }))
    return { name: n.id === t.gone ? `${n.id} (killed)` : n.id, segments, marks }
  })
  const svg = timelineChart({
    title: `One raft failover from a real run: kill -9 of ${t.gone}, 5 processes`,
    xLabel: 'ms since kill -9 (▼ = the new leader may act)',
    lanes,
    markers: [
      { t: 0, label: `kill -9 ${t.gone}` },
      { t: t.named - t0, label: 'all name it' },
    ],
  })
  return [
    '### One failover, node by node\n',
    'Who each node named as leader around one kill -9 of the leader (the first raft default-profile run of this report).\n',
    plot('failover-timeline.svg', svg, 'timeline of one raft failover', 'failover'),
  ].join('\n')
}

/** Summaries of one failover figure, for compare. */
export function figureKey(f: FailoverFigure): string {
  return `${f.driver} | ${FAULT[f.fault]} | ${f.figure}`
}

/** p50/p90/p99 of a figure. */
export function figureSummary(f: FailoverFigure): Summary {
  return summarize(f.samples)
}
