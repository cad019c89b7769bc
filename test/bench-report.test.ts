// The benchmark report's own machinery (no measuring): the SVG writer, the report rendered from a results
// file, the runner's flag errors, and bench:compare on two results files.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { writeReport } from '../bench/lib/report.js'
import { mergeResults, type Results } from '../bench/lib/results.js'
import { cdfPoints, lineChart, timelineChart } from '../bench/lib/svg.js'

const RUN = new URL('../bench/run.ts', import.meta.url).pathname
const COMPARE = new URL('../bench/compare.ts', import.meta.url).pathname

/** Every opened tag is closed, in order (enough to catch a malformed chart). */
function assertBalanced(svg: string): void {
  const stack: string[] = []
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    const [, close, name, self] = m as unknown as [string, string, string, string]
    if (self) continue
    if (close) assert.equal(stack.pop(), name, `</${name}> closes what was opened`)
    else stack.push(name)
  }
  assert.deepEqual(stack, [], 'every tag closed')
}

function results(scale: number): Results {
  const samples = (base: number) => Array.from({ length: 30 }, (_, i) => (base + i) * scale)
  return {
    version: 1,
    quick: true,
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T01:00:00.000Z',
    command: 'npm run bench -- --quick',
    flags: ['--quick'],
    machine: { cpus: 2, model: 'test', memGiB: 1, node: '20', platform: 'linux', loadavg: [1, 1, 1] },
    settings: {},
    durations: { failover: 10, sim: 1 },
    failover: [
      {
        driver: 'raft default',
        family: 'raft',
        fault: 'crash',
        figure: 'named',
        floorMs: 500,
        floorNote: 'min election timeout',
        samples: samples(40),
      },
      {
        driver: 'raft default',
        family: 'raft',
        fault: 'crash',
        figure: 'acts',
        floorMs: 500,
        floorNote: 'min election timeout',
        samples: samples(500),
      },
      {
        driver: 'bully tcp',
        family: 'bully',
        fault: 'silent',
        figure: 'named',
        floorMs: 350,
        floorNote: 'leader timeout',
        samples: samples(300),
      },
      {
        driver: 'lease etcd',
        family: 'lease',
        fault: 'crash',
        figure: 'acts',
        floorMs: 2000,
        floorNote: 'TTL',
        samples: samples(2000),
      },
    ],
    leaseIdle: [
      { store: 'etcd', who: 'ballot candidate (leading)', perSecond: 1.5, counts: 'gRPC messages' },
    ],
    timeline: {
      t0: 1000,
      gone: 'n1',
      named: 1300,
      nodes: [
        { id: 'n1', events: [{ ev: 'change', t: 100, leader: 'n1', token: 1 }] },
        {
          id: 'n2',
          events: [
            { ev: 'change', t: 100, leader: 'n1', token: 1 },
            { ev: 'change', t: 1250, leader: 'n2', token: 2 },
            { ev: 'lead', t: 1500, leading: true },
          ],
        },
        {
          id: 'n3',
          events: [
            { ev: 'change', t: 100, leader: 'n1', token: 1 },
            { ev: 'change', t: 1300, leader: 'n2', token: 2 },
          ],
        },
      ],
    },
    scale: [3, 5].map((nodes) => ({
      driver: 'raft' as const,
      nodes,
      firstLeaderMs: 500,
      crash: [50 * scale],
      handover: [20],
      messagesPerSecond: nodes * 10,
      bytesPerSecond: nodes * 1000,
      cpuPercentPerNode: 1,
      rssMiBPerNode: 90,
      electionsAtRest: 0,
    })),
    sim: [3, 5].map((voters) => ({
      algo: 'raft' as const,
      voters,
      scenario: 'crash-leader',
      runs: 10,
      elections: 20,
      messagesPerElection: voters * 4,
      failedRuns: 0,
    })),
    groups: [
      {
        kind: 'raft groups',
        count: 10,
        ok: true,
        allLedMs: 400,
        cpuPercentPerGroup: 1,
        rssMiBPerGroup: 0.5,
        rssMiBPerProcess: 100,
        changesAtRest: 0,
      },
    ],
    stability: [
      {
        driver: 'raft',
        nodes: 5,
        hog: 'none',
        seconds: 30,
        leaderChanges: 0,
        electionsStarted: 0,
        cpuPercentPerNode: 1,
      },
    ],
    notes: ['lease store consul: could not start (test)'],
  }
}

describe('benchmark report', () => {
  test('charts are well-formed SVG with a path per series and the reference lines', () => {
    const svg = lineChart({
      title: 'a <title> & more',
      xLabel: 'x',
      yLabel: 'y',
      series: [
        { name: 'a', points: cdfPoints([3, 1, 2]), step: true },
        {
          name: 'b',
          points: [
            [1, 10],
            [100, 1000],
          ],
        },
      ],
      logX: true,
      refs: [{ x: 50, label: 'anchor' }],
    })
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/)
    assert.match(svg, /a &lt;title&gt; &amp; more/)
    assert.equal(svg.match(/<path /g)?.length, 2)
    assert.match(svg, /anchor/)
    assertBalanced(svg)
    assert.deepEqual(cdfPoints([3, 1, 2]), [
      [1, 0],
      [1, 1 / 3],
      [2, 2 / 3],
      [3, 1],
    ])
    const timeline = timelineChart({
      title: 't',
      xLabel: 'ms',
      lanes: [
        {
          name: 'n1',
          segments: [{ from: 0, to: 10, label: 'names n1' }],
          marks: [{ t: 5, label: 'may act' }],
        },
      ],
      markers: [{ t: 2, label: 'kill' }],
    })
    assertBalanced(timeline)
    assert.match(timeline, /names n1/)
  })

  test('the report has every section, a ratio to the floor, an anchor and a reproduce command under each plot', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ballot-bench-'))
    try {
      writeReport(results(1), dir)
      const md = readFileSync(join(dir, 'benchmarks.md'), 'utf8')
      for (const heading of [
        '## Failover, side by side',
        '## Scale',
        '## Messages per election',
        '## Many groups',
        '## Stability',
        '## Anchors',
        '## Notes',
      ])
        assert.ok(md.includes(heading), heading)
      assert.match(md, /Quick run/)
      // raft default, kill -9, acts: p50 of 500..529 is 514 ms; ratio to the 500 ms floor 1.03.
      assert.match(
        md,
        /\| raft default \| kill -9 \| new leader may act \| 500 ms \(min election timeout\) \| 30 \| 514 ms \| [^|]+ \| [^|]+ \| 1\.03 \|/,
      )
      assert.match(md, /Raft paper: 150–300 ms/)
      const plots = readdirSync(join(dir, 'benchmarks'))
        .filter((f) => f.endsWith('.svg'))
        .sort()
      assert.deepEqual(plots, [
        'election-messages.svg',
        'failover-cdf.svg',
        'failover-sigstop-cdf.svg',
        'failover-timeline.svg',
        'rest-cpu.svg',
        'rest-messages.svg',
      ])
      for (const p of plots) {
        assert.ok(
          md.includes(`(benchmarks/${p})\n\nReproduce: \`npm run bench -- --sections `),
          `${p} has its command`,
        )
        assertBalanced(readFileSync(join(dir, 'benchmarks', p), 'utf8'))
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('bad flags are one clear line naming the flag, and --report-only renders a results file', () => {
    const bad = spawnSync(process.execPath, ['--import', 'tsx', RUN, '--sections', 'failover,nope'], {
      encoding: 'utf8',
    })
    assert.equal(bad.status, 2)
    assert.equal(
      bad.stderr.trim(),
      '--sections: unknown section "nope" (known: failover, scale, sim, groups, stability)',
    )
    const runs = spawnSync(process.execPath, ['--import', 'tsx', RUN, '--runs', 'many'], { encoding: 'utf8' })
    assert.equal(runs.status, 2)
    assert.equal(runs.stderr.trim(), '--runs: must be a number >= 0, got "many"')
    const dir = mkdtempSync(join(tmpdir(), 'ballot-bench-'))
    try {
      writeFileSync(join(dir, 'r.json'), JSON.stringify(results(1)))
      const r = spawnSync(
        process.execPath,
        ['--import', 'tsx', RUN, '--report-only', join(dir, 'r.json'), '--out', dir],
        { encoding: 'utf8' },
      )
      assert.equal(r.status, 0, r.stderr)
      assert.match(readFileSync(join(dir, 'benchmarks.md'), 'utf8'), /## Failover, side by side/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('--merge keeps the sections a run did not measure, each with the run that measured it', () => {
    // An older file without per-section sources (a quick run of everything), and a full run of one section.
    const old = results(1)
    const fresh: Results = {
      ...results(3),
      quick: false,
      command: 'npm run bench -- --sections stability --merge',
      flags: ['--sections', 'stability', '--merge'],
      startedAt: '2026-02-01T00:00:00.000Z',
      durations: { stability: 2400 },
      failover: [],
      leaseIdle: [],
      scale: [],
      sim: [],
      groups: [],
      stability: [{ ...(old.stability[0] as Results['stability'][number]), seconds: 600 }],
      notes: ['stability bully-tcp with hog: not measured (test)'],
      sources: {
        stability: {
          command: 'npm run bench -- --sections stability --merge',
          flags: ['--sections', 'stability', '--merge'],
          quick: false,
          startedAt: '2026-02-01T00:00:00.000Z',
          loadavg: [0.5, 0.5, 0.5],
          durationS: 2400,
          notes: ['stability bully-tcp with hog: not measured (test)'],
        },
      },
    }
    delete fresh.timeline
    const merged = mergeResults(old, fresh, ['stability'])
    assert.deepEqual(merged.failover, old.failover, 'failover kept from the old file')
    assert.deepEqual(merged.timeline, old.timeline)
    assert.deepEqual(merged.scale, old.scale)
    assert.equal(merged.stability[0]?.seconds, 600, 'stability from the new run')
    assert.deepEqual(merged.durations, { failover: 10, sim: 1, stability: 2400 })
    assert.equal(merged.sources?.failover?.command, 'npm run bench -- --quick')
    assert.equal(merged.sources?.stability?.quick, false)
    assert.equal(merged.quick, true, 'still quick while any section is')
    assert.deepEqual(merged.notes, [
      'lease store consul: could not start (test)',
      'stability bully-tcp with hog: not measured (test)',
    ])
    // Merged again with the rest measured in full, nothing quick is left.
    const rest: Results = {
      ...results(2),
      quick: false,
      notes: [],
      sources: Object.fromEntries(
        (['failover', 'scale', 'sim', 'groups'] as const).map((s) => [
          s,
          { command: 'full', flags: [], quick: false, startedAt: 'x', loadavg: [1], durationS: 1, notes: [] },
        ]),
      ),
    }
    const all = mergeResults(merged, rest, ['failover', 'scale', 'sim', 'groups'])
    assert.equal(all.quick, false)
    assert.equal(all.stability[0]?.seconds, 600)
    assert.deepEqual(all.notes, ['stability bully-tcp with hog: not measured (test)'])
    const dir = mkdtempSync(join(tmpdir(), 'ballot-bench-'))
    try {
      writeReport(merged, dir)
      const md = readFileSync(join(dir, 'benchmarks.md'), 'utf8')
      assert.match(
        md,
        /Quick run \(`--quick`, a smoke profile\) for the sections failover, scale, sim, groups:/,
      )
      assert.match(
        md,
        /\| stability \| `npm run bench -- --sections stability --merge` \| 2026-02-01 00:00 \| 0\.5 \/ 0\.5 \/ 0\.5 \| 40 min \|/,
      )
      assert.match(md, /Reproduce: `npm run bench -- --sections stability`\n/, 'no --merge in the command')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('bench:compare shows each shared figure old and new with its change, and marks a big move', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ballot-bench-'))
    try {
      writeFileSync(join(dir, 'old.json'), JSON.stringify(results(1)))
      writeFileSync(join(dir, 'new.json'), JSON.stringify(results(2)))
      const r = spawnSync(
        process.execPath,
        ['--import', 'tsx', COMPARE, join(dir, 'old.json'), join(dir, 'new.json')],
        { encoding: 'utf8' },
      )
      assert.equal(r.status, 0, r.stderr)
      assert.match(
        r.stdout,
        /!\s+raft default \| kill -9 \| acts\s+514 \/ 526 \/ 529\s+1028 \/ 1052 \/ 1058\s+\+100%/,
      )
      assert.match(r.stdout, /raft 3 nodes: kill -9 p50 ms\s+50\s+100\s+\+100%/)
      assert.match(r.stdout, /raft 3 nodes: msgs\/s at rest\s+30\s+30\s+0%/)
      const missing = spawnSync(process.execPath, ['--import', 'tsx', COMPARE, join(dir, 'old.json')], {
        encoding: 'utf8',
      })
      assert.equal(missing.status, 2)
      assert.match(missing.stderr, /usage: npm run bench:compare -- old.json new.json/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
