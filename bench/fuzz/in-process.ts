/**
 * The in-process fuzz run: hostile inputs into live raft and bully machines (three-node clusters on a
 * bus, see cluster.ts), keyed and open, rebuilt every `framesPerCluster` inputs. For every input whose
 * every frame was dropped or refused, the target's view and its sends must be exactly as before; no
 * exception may escape. Deterministic from the seed.
 */
import { isDeepStrictEqual } from 'node:util'
import { SimRandom } from '../../src/sim/rng.js'
import { type Algo, FuzzCluster, type FuzzNode, MEMBER_IDS, type Outcome } from './cluster.js'
import { CATEGORIES, type Category, nextInput } from './frames.js'

export interface InProcessOptions {
  seed: number
  frames: number
  /** Inputs into one cluster before a fresh one is built. Default 50 000. */
  framesPerCluster?: number
  /** Every this many inputs, cluster time moves 5 ms (heartbeats flow, new frames are captured). Default 500. */
  tickEvery?: number
  onProgress?: (done: number) => void
}

export interface Violation {
  index: number
  config: string
  category: Category
  what: string
}

export interface InProcessReport {
  seed: number
  frames: number
  /** Frames that reached a codec (a stream input may hold several, or none yet). */
  messages: number
  elapsedMs: number
  framesPerSecond: number
  /** Dropped by the transport's checks, by reason ('partial': bytes buffered, no frame complete yet). */
  dropped: Record<string, number>
  /** Passed the codec, refused by the machine, by reason. */
  refused: Record<string, number>
  /** Passed every check (a forgery of an open cluster, a fresh insider message). */
  accepted: number
  byCategory: Record<string, { inputs: number; accepted: number }>
  /** Inputs that were all dropped or refused but changed the target (must be empty). */
  stateChanges: Violation[]
  /** Exceptions that escaped (must be empty). */
  exceptions: Violation[]
  /** Inputs a keyed cluster accepted that were not signed with its key, or were replays (must be empty). */
  strangerAccepted: Violation[]
  heapBeforeBytes: number
  heapAfterBytes: number
  /** Leaders seen at the end of each cluster's run (for the record). */
  clusters: Array<{ config: string; leaderAtStart: string; leaderAtEnd: string | undefined }>
}

const CONFIGS: Array<{ algo: Algo; keyed: boolean }> = [
  { algo: 'raft', keyed: true },
  { algo: 'bully', keyed: true },
  { algo: 'raft', keyed: false },
  { algo: 'bully', keyed: false },
]

/** Where two snapshots (as JSON) part, with a little context (they can be long). */
function diff(a: string, b: string): string {
  let i = 0
  while (i < a.length && a[i] === b[i]) i++
  return `at ${i}: ${a.slice(Math.max(0, i - 80), i + 120)} -> ${b.slice(Math.max(0, i - 80), i + 120)}`
}

function gcNow(): void {
  ;(globalThis as { gc?: () => void }).gc?.()
}

export async function fuzzInProcess(opts: InProcessOptions): Promise<InProcessReport> {
  const rng = new SimRandom(opts.seed)
  const perCluster = opts.framesPerCluster ?? 50_000
  const tickEvery = opts.tickEvery ?? 500
  const report: InProcessReport = {
    seed: opts.seed,
    frames: 0,
    messages: 0,
    elapsedMs: 0,
    framesPerSecond: 0,
    dropped: {},
    refused: {},
    accepted: 0,
    byCategory: Object.fromEntries(CATEGORIES.map((c) => [c, { inputs: 0, accepted: 0 }])),
    stateChanges: [],
    exceptions: [],
    strangerAccepted: [],
    heapBeforeBytes: 0,
    heapAfterBytes: 0,
    clusters: [],
  }
  gcNow()
  report.heapBeforeBytes = process.memoryUsage().heapUsed
  const started = performance.now()
  let round = 0
  while (report.frames < opts.frames) {
    const cfg = CONFIGS[round % CONFIGS.length] as (typeof CONFIGS)[number]
    round++
    const config = `${cfg.algo}-${cfg.keyed ? 'keyed' : 'open'}`
    const cluster = new FuzzCluster({
      algo: cfg.algo,
      key: cfg.keyed ? 'fuzz-shared-key' : undefined,
      cluster: 'ballot',
      random: new SimRandom(rng.int(0, 2 ** 31 - 1)),
    })
    const leaderAtStart = await cluster.settle()
    const incarnations = new Map([...cluster.nodes.values()].map((n) => [n.id, n.incarnation]))
    const end = Math.min(opts.frames, report.frames + perCluster)
    for (; report.frames < end; report.frames++) {
      if (report.frames % tickEvery === 0) cluster.run(5)
      if (report.frames % 10_000 === 0) opts.onProgress?.(report.frames)
      const node = cluster.nodes.get(
        MEMBER_IDS[rng.int(0, MEMBER_IDS.length - 1)] as string,
      ) as FuzzNode<unknown>
      let input: ReturnType<typeof nextInput> | undefined
      try {
        input = nextInput(rng, {
          algo: cfg.algo,
          cluster: 'ballot',
          key: cfg.keyed ? 'fuzz-shared-key' : undefined,
          self: node.id,
          members: MEMBER_IDS,
          incarnations,
          wall: cluster.clock.wall(),
          maxMessageBytes: node.codec.maxMessageBytes,
          captured: cluster.captured.get(node.id) ?? [],
        })
        // The codec drops most inputs before the machine: then nothing may have reached it, nor gone out.
        // When one passes, the full snapshot is taken just before the machine gets it.
        const inputsBefore = node.machineInputs
        const sentBefore = node.transport.sent
        let before: ReturnType<typeof cluster.snapshot> | undefined
        cluster.beforeMachine = (n) => {
          before ??= cluster.snapshot(n)
        }
        const outcomes: Outcome[] = cluster.ingest(node, input.bytes, input.delivery)
        cluster.beforeMachine = undefined
        const stat = report.byCategory[input.category] as { inputs: number; accepted: number }
        stat.inputs++
        let anyAccepted = false
        for (const o of outcomes) {
          if (o.kind !== 'dropped' || o.reason !== 'partial') report.messages++
          if (o.kind === 'accepted') anyAccepted = true
          else if (o.kind === 'refused') report.refused[o.reason] = (report.refused[o.reason] ?? 0) + 1
          else report.dropped[o.reason] = (report.dropped[o.reason] ?? 0) + 1
        }
        if (anyAccepted) {
          report.accepted++
          stat.accepted++
          // With a key, only the insider's fresh forgeries may pass: never a stranger's, never a replay.
          if (
            cfg.keyed &&
            (!input.signed || input.category === 'replay') &&
            report.strangerAccepted.length < 20
          )
            report.strangerAccepted.push({
              index: report.frames,
              config,
              category: input.category,
              what: `accepted without the key or replayed: ${input.bytes.toString('hex').slice(0, 400)}`,
            })
        } else if (
          (before
            ? !isDeepStrictEqual(cluster.snapshot(node), before)
            : node.machineInputs !== inputsBefore || node.transport.sent !== sentBefore) &&
          report.stateChanges.length < 20
        ) {
          report.stateChanges.push({
            index: report.frames,
            config,
            category: input.category,
            what: `input ${input.bytes.toString('hex').slice(0, 400)} changed ${node.id}: ${diff(JSON.stringify(before ?? { sent: sentBefore }), JSON.stringify(cluster.snapshot(node)))}`,
          })
        }
      } catch (err) {
        if (report.exceptions.length < 20)
          report.exceptions.push({
            index: report.frames,
            config,
            category: input?.category ?? 'random-bytes',
            what: (err as Error)?.stack ?? String(err),
          })
      }
    }
    cluster.run(50)
    report.clusters.push({ config, leaderAtStart, leaderAtEnd: cluster.leader() })
  }
  report.elapsedMs = performance.now() - started
  report.framesPerSecond = Math.round(report.frames / (report.elapsedMs / 1000))
  gcNow()
  report.heapAfterBytes = process.memoryUsage().heapUsed
  return report
}
