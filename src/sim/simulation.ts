/**
 * One simulated run: N nodes of a protocol, a virtual clock, a simulated network and a fault schedule,
 * all in one process, driven by one seeded random source. Events are ordered by (time, sequence), so a
 * run is replayed exactly from its seed.
 *
 * Model (after FoundationDB's and TigerBeetle's simulation testing):
 *   - Each ordered link has its own latency (a base plus exponential jitter), so messages reorder
 *     naturally; lossy windows add loss, duplication and extra reordering.
 *   - Nodes talk over "connections" like the TCP transport: connected at boot, closed when a process
 *     dies (the peer gets `peerUnreachable` shortly after, if the network lets the reset through), and
 *     reopened (`peerConnected` both ways) once a restarted node's links work. Partitions cut links
 *     without closing connections: messages are simply lost.
 *   - A crashed node keeps only what its machine persisted (written before the messages of the same
 *     Ready are sent); it restarts from that alone, with its monotonic clock starting again near zero
 *     (as `performance.now()` does in a new process).
 *   - A failing disk: while a `disk-fail` fault lasts, every write fails. As the runtime does, the
 *     batch's messages are dropped and the machine is rebuilt from the last state that did reach the
 *     disk (an in-process restart: connections stay up).
 *   - Every node has its own clock (offset + rate × t); machines see only local time.
 *   - The lease check learns when isLeader() turns true at the instant it does (views say when a lease
 *     will start), and a crashed node's lease counts until it would have run out: nothing outside the
 *     process can know it is gone.
 *   - A protocol may bring a service (the lease driver's coordination store): one more participant with
 *     its own drifting clock, links and connections like any node's, never crashed, never judged. The
 *     arrays of links are sized for the participants (the members, then the service); faults name
 *     members by slot, and act on the service only where a fault says so (outage, service-slow, the
 *     service's side of a partition or one-way fault, an isolated node's link to it).
 */
import type { Input, ProtocolMachine } from '../protocol/machine.js'
import { BROADCAST } from '../protocol/machine.js'
import type { ProtocolAdapter, ServiceInput, ServiceMachine, SimMember } from './adapter.js'
import { NodeClock } from './clock.js'
import { EventQueue, type Queued } from './event-queue.js'
import { InvariantChecker, type Violation } from './invariants.js'
import { SimRandom } from './rng.js'
import { drawScenario, type Fault, healTime, type Scenario } from './scenario.js'
import { TraceRing } from './trace.js'

const WAKE = 0
const DELIVER = 1
const CONNECT = 2
const UNREACHABLE = 3
const BOOT = 4
const FAULT_START = 5
const FAULT_END = 6
const HEAL = 7
const LIVENESS = 8
const RECONNECT = 9
const EXIT = 10
/** Look at a node's isLeader() now, outside any step (a lease that starts at a set time). */
const OBSERVE = 11

/** How long a gracefully stopping process lingers, flushing its last messages, before it exits. */
const STOP_LINGER_MS = 50

interface SimEvent<M> extends Queued {
  kind: number
  /** The node the event happens to. */
  node: number
  /** The other node (sender, peer), or the fault's index. */
  from: number
  /** Incarnation of `node` (timers, connection events) or connection generation (deliveries). */
  gen: number
  msg: M | undefined
}

interface SimNode<M, P> {
  idx: number
  member: SimMember
  machine: ProtocolMachine<M, P> | undefined
  /** The service's machine, on the service's participant only. */
  service: ServiceMachine<M> | undefined
  alive: boolean
  incarnation: number
  persisted: P | undefined
  clock: NodeClock
  pausedUntil: number
  slowMs: number
  /** The machine's last deadline, on its local clock. */
  deadlineLocal: number
  /** When the machine wants its next tick (real time), and when the queued wake-up event is. */
  wantWake: number
  pendingWake: number
  /** isLeader at the node's last step (for the trace). */
  leading: boolean
  /** How many disk-fail faults are active on this node. */
  diskFaults: number
}

export interface RunOptions {
  seed: number
  voters: number
  observers?: number
  /** A scenario name (see SCENARIO_NAMES) or a ready-made scenario. Default 'random'. */
  scenario?: string | Scenario
  /** Receives every event as a readable line, as it happens (`--trace`). */
  traceSink?: (line: string) => void
  /** How many of the last events a violation report shows. Default 200. */
  traceSize?: number
}

export interface RunResult {
  seed: number
  scenario: Scenario
  violations: Violation[]
  /** Violations under clocks beyond the drift bound: what the bound protects, not failures. */
  expected: Violation[]
  elections: number
  messages: number
  electionMessages: number
  events: number
  /** Boot to the first leader every live voter names (virtual ms). */
  firstLeaderMs: number | undefined
  /** Heal to an agreed leader, in runs that had none at the heal instant (virtual ms). */
  afterHealMs: number | undefined
  /** Real time with two or more nodes claiming isLeader() at once (protocols without a lease). */
  multiLeaderMs: number
  healAt: number
  endedAt: number
  /** The last events before the end of a run with a violation (empty otherwise). */
  trace: string[]
}

export function runSimulation<M, P>(adapter: ProtocolAdapter<M, P>, opts: RunOptions): RunResult {
  return new Simulation(adapter, opts).run()
}

class Simulation<M, P> {
  private readonly rng: SimRandom
  private readonly random: () => number
  private readonly queue = new EventQueue<SimEvent<M>>()
  private readonly nodes: SimNode<M, P>[] = []
  private readonly members: SimMember[] = []
  private readonly idxOf = new Map<string, number>()
  /** Members (voters and observers): the nodes the checker judges and faults name by slot. */
  private readonly n: number
  /** Participants: the members, then the service if the protocol has one (index `svc`). */
  private readonly p: number
  private readonly svc: number
  /** Every participant's id, by index. */
  private readonly ids: string[] = []
  /** Per ordered link (from × p + to): how many active faults cut it. */
  private readonly cut: Int32Array
  /** Per pair (both orders kept equal): whether a connection is open, and its generation. */
  private readonly connected: Uint8Array
  private readonly connGen: Int32Array
  private readonly linkBase: Float64Array
  private readonly linkJitter: Float64Array
  private readonly scenario: Scenario
  private readonly checker: InvariantChecker
  private readonly trace: TraceRing
  private readonly healAt: number
  private readonly tail: number
  private readonly lossy: Array<{ loss: number; duplicate: number; reorder: number }> = []
  /** Undo information for faults with an end: the links they cut, the nodes they touched. */
  private readonly undo = new Map<number, { links: number[]; nodes: number[] }>()
  private loss = 0
  private duplicate = 0
  private reorder = 0
  private now = 0
  private messages = 0
  private electionMessages = 0
  private events = 0

  constructor(
    private readonly adapter: ProtocolAdapter<M, P>,
    private readonly opts: RunOptions,
  ) {
    this.rng = new SimRandom(opts.seed)
    this.random = this.rng.asRandom()
    const observers = opts.observers ?? 0
    const timing = adapter.timing
    for (let i = 0; i < opts.voters; i++) this.members.push({ id: `n${i + 1}`, kind: 'voter' })
    for (let i = 0; i < observers; i++) this.members.push({ id: `o${i + 1}`, kind: 'observer' })
    this.n = this.members.length
    const n = this.n
    this.svc = adapter.service ? n : -1
    this.p = adapter.service ? n + 1 : n
    const p = this.p
    for (const m of this.members) this.ids.push(m.id)
    if (adapter.service) this.ids.push(adapter.service.id)
    this.scenario =
      typeof opts.scenario === 'object'
        ? opts.scenario
        : drawScenario(opts.scenario ?? 'random', this.rng, {
            voters: opts.voters,
            observers,
            timing,
            ...(adapter.service ? { service: true } : {}),
            ...(adapter.scenarios ? { set: adapter.scenarios } : {}),
          })
    this.healAt = healTime(this.scenario)
    this.tail = this.scenario.stability ? 15 * timing.electionTimeoutMaxMs : 2 * timing.electionTimeoutMaxMs
    this.trace = new TraceRing(opts.traceSize ?? 200, opts.traceSink)
    this.checker = new InvariantChecker({
      invariants: adapter.invariants,
      agreement: adapter.agreement,
      expectedLeader: adapter.expectedLeader,
      fencing: adapter.fencing,
      members: this.members,
      stability: this.scenario.stability ?? false,
      healAt: this.healAt,
      trace: this.trace,
    })
    this.cut = new Int32Array(p * p)
    this.connected = new Uint8Array(p * p)
    this.connGen = new Int32Array(p * p)
    this.linkBase = new Float64Array(p * p)
    this.linkJitter = new Float64Array(p * p)
    for (let i = 0; i < p * p; i++) {
      this.linkBase[i] = this.rng.between(0.1, 1)
      this.linkJitter[i] = this.rng.between(0.05, 0.5)
    }
    const d = timing.maxClockDrift
    for (let i = 0; i < p; i++) {
      // The service, last, is no member: a record of its own for the trace, never given to the checker.
      const member: SimMember = this.members[i] ?? { id: this.ids[i] as string, kind: 'observer' }
      this.idxOf.set(member.id, i)
      let rate = 1
      if (this.scenario.drift === 'within') rate = 1 + this.rng.between(-d, d)
      // Both ends of the bound, a whisker inside it.
      else if (this.scenario.drift === 'extreme') rate = this.rng.chance(0.5) ? 1 + d * 0.999 : 1 - d * 0.999
      this.nodes.push({
        idx: i,
        member,
        machine: undefined,
        service: undefined,
        alive: false,
        incarnation: 0,
        persisted: undefined,
        clock: new NodeClock(this.rng.between(0, 1e6), rate),
        pausedUntil: 0,
        slowMs: 0,
        deadlineLocal: Number.POSITIVE_INFINITY,
        wantWake: Number.POSITIVE_INFINITY,
        pendingWake: Number.POSITIVE_INFINITY,
        leading: false,
        diskFaults: 0,
      })
    }
  }

  run(): RunResult {
    const bound = this.adapter.livenessBoundMs
    // The service is up before any node boots, so their first requests find it.
    if (this.svc >= 0) this.push(0, BOOT, this.svc, -1, 0, undefined)
    for (let i = 0; i < this.n; i++) this.push(this.rng.between(0, 1), BOOT, i, -1, 0, undefined)
    for (let i = 0; i < this.scenario.faults.length; i++) {
      this.push((this.scenario.faults[i] as Fault).at, FAULT_START, 0, i, 0, undefined)
    }
    this.push(this.healAt, HEAL, 0, -1, 0, undefined)
    this.push(this.healAt + bound, LIVENESS, 0, -1, 0, undefined)
    let end = this.healAt + bound + this.tail
    let sameInstant = 0
    for (;;) {
      const ev = this.queue.pop()
      if (!ev || ev.time > end) break
      sameInstant = ev.time === this.now ? sameInstant + 1 : 0
      if (sameInstant > 100_000) {
        // A machine that asks to be woken at a deadline it then does not act on spins time to a halt.
        this.checker.fail(
          'progress',
          this.now,
          `time stands still: 100000 events at one instant (last: kind ${ev.kind} at node ${ev.node})`,
        )
        break
      }
      this.now = ev.time
      this.events++
      this.dispatch(ev)
      if (this.checker.failed) break
      const agreed = this.checker.agreedAfterHealAt
      if (agreed !== undefined) end = Math.min(end, Math.max(agreed, this.healAt) + this.tail)
    }
    const c = this.checker
    c.finish(this.now)
    const failed = c.violations.length > 0 || c.expected.length > 0
    return {
      seed: this.opts.seed,
      scenario: this.scenario,
      violations: c.violations,
      expected: c.expected,
      elections: c.elections,
      messages: this.messages,
      electionMessages: this.electionMessages,
      events: this.events,
      firstLeaderMs: c.firstAgreedAt,
      afterHealMs:
        this.scenario.faults.length === 0 || c.agreedAtHeal || c.agreedAfterHealAt === undefined
          ? undefined
          : c.agreedAfterHealAt - this.healAt,
      multiLeaderMs: c.multiLeaderMs,
      healAt: this.healAt,
      endedAt: this.now,
      trace: failed ? this.trace.lines() : [],
    }
  }

  // ------------------------------------------------------------------ events

  private push(
    time: number,
    kind: number,
    node: number,
    from: number,
    gen: number,
    msg: M | undefined,
  ): void {
    this.queue.push({ time, seq: 0, kind, node, from, gen, msg })
  }

  private dispatch(ev: SimEvent<M>): void {
    switch (ev.kind) {
      case WAKE:
      case DELIVER:
      case CONNECT:
      case UNREACHABLE:
        this.toNode(ev)
        return
      case BOOT:
        this.boot(ev.node)
        return
      case FAULT_START:
        this.startFault(ev.from)
        return
      case FAULT_END:
        this.endFault(ev.from)
        return
      case RECONNECT:
        this.connectAll()
        return
      case EXIT:
        if ((this.nodes[ev.node] as SimNode<M, P>).incarnation === ev.gen) this.crash(ev.node)
        return
      case OBSERVE: {
        const node = this.nodes[ev.node] as SimNode<M, P>
        if (node.alive && node.incarnation === ev.gen) this.observeLease(node)
        return
      }
      case HEAL:
        // Judge the heal after everything else that happens at that instant (a restart, a pause's end).
        if (this.queue.peekTime() === this.now) this.queue.push(ev)
        else this.checker.heal(this.now)
        return
      case LIVENESS:
        this.checker.livenessDeadline(this.now, this.adapter.livenessBoundMs)
        return
    }
  }

  private toNode(ev: SimEvent<M>): void {
    const node = this.nodes[ev.node] as SimNode<M, P>
    const now = this.now
    if (ev.kind === DELIVER) {
      const link = ev.from * this.p + ev.node
      if (!node.alive || this.connected[link] === 0 || this.connGen[link] !== ev.gen) {
        this.note(node, 'drop', () => `${this.describe(ev)}: connection closed`)
        return
      }
      if (this.cut[link] !== 0) {
        this.note(node, 'drop', () => `${this.describe(ev)}: partitioned in flight`)
        return
      }
    } else if (!node.alive || ev.gen !== node.incarnation) {
      return
    }
    if (ev.kind === WAKE && ev.time !== node.pendingWake) return // superseded by an earlier wake-up
    if (node.pausedUntil > now) {
      // The process is frozen: everything waits for it (sockets buffer, timers fire late), in order.
      ev.time = node.pausedUntil
      if (ev.kind === WAKE) node.pendingWake = ev.time
      this.queue.push(ev)
      return
    }
    switch (ev.kind) {
      case WAKE:
        node.pendingWake = Number.POSITIVE_INFINITY
        if (node.wantWake > now) this.schedule(node)
        else this.step(node, { kind: 'tick' })
        return
      case DELIVER: {
        const from = this.ids[ev.from] as string
        this.note(node, 'recv', () => this.describe(ev))
        this.step(node, { kind: 'receive', from, msg: ev.msg as M })
        return
      }
      case CONNECT: {
        const link = ev.node * this.p + ev.from
        if (this.connected[link] === 0) return
        const peer = this.ids[ev.from] as string
        this.note(node, 'connected', peer)
        this.step(node, { kind: 'peerConnected', peer })
        return
      }
      case UNREACHABLE: {
        const peer = this.ids[ev.from] as string
        this.note(node, 'unreachable', peer)
        this.step(node, { kind: 'peerUnreachable', peer })
        return
      }
    }
  }

  private describe(ev: SimEvent<M>): string {
    return `${this.ids[ev.from]} → ${this.adapter.describe(ev.msg as M)}`
  }

  private note(node: SimNode<M, P> | undefined, what: string, detail: string | (() => string)): void {
    this.trace.add({
      t: this.now,
      local: node ? node.clock.local(this.now) : undefined,
      node: node ? node.member.id : '*',
      what,
      detail,
    })
  }

  // ------------------------------------------------------------------ driving machines

  private step(node: SimNode<M, P>, input: Input<M>): void {
    if (node.service) {
      this.stepService(node, node.service, input as ServiceInput<M>)
      return
    }
    const machine = node.machine
    if (!machine) return
    const local = node.clock.local(this.now)
    machine.step(local, input)
    const ready = machine.ready()
    if (ready.persist !== undefined && node.diskFaults > 0) {
      this.persistFailed(node)
      return
    }
    // Persisted before any message of this Ready leaves: a crash in between loses nothing promised.
    if (ready.persist !== undefined) node.persisted = ready.persist
    for (const out of ready.messages) {
      if (out.to === BROADCAST) {
        for (let j = 0; j < this.p; j++) if (j !== node.idx) this.send(node.idx, j, out.msg)
      } else {
        const j = this.idxOf.get(out.to)
        if (j !== undefined) this.send(node.idx, j, out.msg)
      }
    }
    for (const tr of ready.transitions) {
      this.note(
        node,
        'becomes',
        () => `${tr.role}${tr.leader ? `, leader ${tr.leader.id} term ${tr.leader.term}` : ''}`,
      )
      this.checker.transition(node.idx, tr.role, tr.leader, this.now)
    }
    node.deadlineLocal = ready.deadline
    this.schedule(node)
    if (this.checker.mayLead(node.idx, this.now)) this.observeLease(node)
  }

  /** The service's step: its messages go out, its notes go to the trace; nothing of it is judged. */
  private stepService(node: SimNode<M, P>, service: ServiceMachine<M>, input: ServiceInput<M>): void {
    service.step(node.clock.local(this.now), input)
    const ready = service.ready()
    for (const line of ready.notes) this.note(node, 'store', line)
    for (const out of ready.messages) {
      const j = this.idxOf.get(out.to)
      if (j !== undefined && j !== node.idx) this.send(node.idx, j, out.msg)
    }
    node.deadlineLocal = ready.deadline
    this.schedule(node)
  }

  /**
   * The write of a Ready failed: nothing of it leaves the node, and the machine is rebuilt from what
   * the disk last held, then told about the connections that are still up (what the runtime does).
   */
  private persistFailed(node: SimNode<M, P>): void {
    this.note(node, 'disk', 'write failed: messages dropped, machine rebuilt from the last saved state')
    node.machine = this.adapter.create({
      id: node.member.id,
      members: this.members,
      random: this.random,
      persisted: node.persisted,
    })
    this.step(node, { kind: 'tick' })
    for (let j = 0; j < this.p; j++) {
      if (j === node.idx || this.connected[node.idx * this.p + j] === 0) continue
      if (node.machine === undefined) return
      this.step(node, { kind: 'peerConnected', peer: this.ids[j] as string })
    }
  }

  /** Reads isLeader from the view and tells the checker when, in real time, the lease would lapse. */
  private observeLease(node: SimNode<M, P>): void {
    const machine = node.machine
    if (!machine) return
    const view = machine.view(node.clock.local(this.now))
    if (!view.isLeader && view.leaseStartsAt !== undefined) {
      // Look again the instant the lease starts, whatever the node's timers are doing (a slow node's
      // isLeader() still turns true on time for the code that calls it).
      this.push(
        node.clock.realAt(view.leaseStartsAt, this.now),
        OBSERVE,
        node.idx,
        -1,
        node.incarnation,
        undefined,
      )
    }
    const end =
      view.leaseExpiresAt === undefined
        ? Number.POSITIVE_INFINITY
        : node.clock.realAt(view.leaseExpiresAt, this.now)
    if (view.isLeader !== node.leading) {
      node.leading = view.isLeader
      this.note(
        node,
        'isLeader',
        view.isLeader ? `true (lease to ${end.toFixed(3)} ms unless renewed)` : 'false',
      )
    }
    this.checker.lease(node.idx, view.isLeader, end, view.leader?.term ?? view.term, this.now)
  }

  /** Queues a wake-up for the machine's deadline, unless an earlier one is queued already. */
  private schedule(node: SimNode<M, P>): void {
    node.wantWake = node.clock.realAt(node.deadlineLocal, this.now) + node.slowMs
    if (node.wantWake < node.pendingWake) {
      node.pendingWake = node.wantWake
      this.push(node.wantWake, WAKE, node.idx, -1, node.incarnation, undefined)
    }
  }

  private send(i: number, j: number, msg: M): void {
    this.messages++
    if (this.adapter.isElectionMessage(msg)) this.electionMessages++
    if (i < this.n && j < this.n) {
      const check = this.adapter.checkMessage?.(
        this.members[i] as SimMember,
        this.members[j] as SimMember,
        msg,
      )
      if (check !== undefined) this.checker.fail(check.invariant, this.now, check.message)
    }
    const link = i * this.p + j
    if (this.connected[link] === 0 || this.cut[link] !== 0) return
    if (this.rng.chance(this.loss)) {
      this.note(this.nodes[i], 'lost', () => `→ ${this.ids[j]} ${this.adapter.describe(msg)}`)
      return
    }
    const gen = this.connGen[link] as number
    const receiver = this.nodes[j] as SimNode<M, P>
    this.push(this.now + this.delay(link) + receiver.slowMs, DELIVER, j, i, gen, msg)
    if (this.rng.chance(this.duplicate))
      this.push(this.now + this.delay(link) + receiver.slowMs, DELIVER, j, i, gen, msg)
  }

  private delay(link: number): number {
    let d = (this.linkBase[link] as number) + this.rng.exponential(this.linkJitter[link] as number)
    if (this.rng.chance(this.reorder)) d += this.rng.between(0, 2 * this.adapter.timing.heartbeatIntervalMs)
    return d
  }

  // ------------------------------------------------------------------ processes and connections

  private boot(idx: number): void {
    const node = this.nodes[idx] as SimNode<M, P>
    if (node.alive) return
    const restart = node.incarnation > 0
    node.alive = true
    node.incarnation++
    // A new process: its monotonic clock starts again near zero, far from where the old one was.
    if (restart) node.clock = node.clock.restarted(this.now, this.rng.between(0, 1000))
    node.pausedUntil = 0
    node.deadlineLocal = Number.POSITIVE_INFINITY
    node.wantWake = Number.POSITIVE_INFINITY
    node.pendingWake = Number.POSITIVE_INFINITY
    if (idx === this.svc && this.adapter.service) node.service = this.adapter.service.create(this.random)
    else
      node.machine = this.adapter.create({
        id: node.member.id,
        members: this.members,
        random: this.random,
        persisted: node.persisted,
      })
    this.note(node, restart ? 'restart' : 'boot', restart ? `from ${JSON.stringify(node.persisted)}` : '')
    if (restart) this.checker.restarted(idx, this.now)
    this.step(node, { kind: 'tick' })
    this.connectAll()
  }

  private crash(idx: number): void {
    const node = this.nodes[idx] as SimNode<M, P>
    if (!node.alive) return
    node.alive = false
    node.machine = undefined
    node.incarnation++
    node.pendingWake = Number.POSITIVE_INFINITY
    node.leading = false
    this.note(node, 'crash', '')
    this.checker.crashed(idx, this.now)
    for (let j = 0; j < this.p; j++) {
      if (j === idx || this.connected[idx * this.p + j] === 0) continue
      this.disconnect(idx, j)
      const peer = this.nodes[j] as SimNode<M, P>
      // The OS resets the dead process's connections; the peer hears of it if the network lets it through.
      if (peer.alive && this.cut[idx * this.p + j] === 0)
        this.push(this.now + this.rng.between(0.5, 3), UNREACHABLE, j, idx, peer.incarnation, undefined)
    }
  }

  private disconnect(i: number, j: number): void {
    this.connected[i * this.p + j] = 0
    this.connected[j * this.p + i] = 0
  }

  /** Opens every connection that is closed though both ends are alive and the links work both ways. */
  private connectAll(): void {
    const n = this.p
    for (let i = 0; i < n; i++) {
      const a = this.nodes[i] as SimNode<M, P>
      if (!a.alive) continue
      for (let j = i + 1; j < n; j++) {
        const b = this.nodes[j] as SimNode<M, P>
        if (
          !b.alive ||
          this.connected[i * n + j] === 1 ||
          this.cut[i * n + j] !== 0 ||
          this.cut[j * n + i] !== 0
        )
          continue
        this.connected[i * n + j] = 1
        this.connected[j * n + i] = 1
        const gen = (this.connGen[i * n + j] as number) + 1
        this.connGen[i * n + j] = gen
        this.connGen[j * n + i] = gen
        const handshake = this.linkBase[i * n + j] as number
        this.push(this.now + handshake * 1.5, CONNECT, i, j, a.incarnation, undefined)
        this.push(this.now + handshake * 1.5, CONNECT, j, i, b.incarnation, undefined)
      }
    }
  }

  // ------------------------------------------------------------------ faults

  /** Slot → node index: the current leader first, then everyone else in member order. */
  private slots(): number[] {
    const leader = this.checker.currentLeader() ?? 0
    const order = [leader]
    for (let i = 0; i < this.n; i++) if (i !== leader) order.push(i)
    return order
  }

  private startFault(index: number): void {
    const f = this.scenario.faults[index] as Fault
    const slots = this.slots()
    const at = (slot: number) => slots[Math.abs(Math.trunc(slot)) % this.n] as number
    const id = (idx: number) => this.ids[idx] as string
    const n = this.n
    const p = this.p
    const svc = this.svc
    const links: number[] = []
    const cutLink = (a: number, b: number) => {
      if (a === b) return
      this.cut[a * p + b] = (this.cut[a * p + b] as number) + 1
      links.push(a * p + b)
    }
    const end = (duration: number, nodes: number[]) => {
      this.undo.set(index, { links, nodes })
      this.push(this.now + duration, FAULT_END, 0, index, 0, undefined)
    }
    switch (f.kind) {
      case 'crash': {
        const node = at(f.node)
        this.note(
          undefined,
          'fault',
          `crash ${id(node)}${f.restartAfter === undefined ? '' : ` for ${f.restartAfter.toFixed(1)} ms`}`,
        )
        this.crash(node)
        if (f.restartAfter !== undefined) this.push(this.now + f.restartAfter, BOOT, node, -1, 0, undefined)
        return
      }
      case 'resign': {
        const node = this.nodes[at(f.node)] as SimNode<M, P>
        this.note(node, 'fault', 'resign')
        if (node.alive && node.pausedUntil <= this.now) this.step(node, { kind: 'resign' })
        return
      }
      case 'stop': {
        const node = this.nodes[at(f.node)] as SimNode<M, P>
        if (!node.alive) return
        this.note(
          node,
          'fault',
          `graceful stop${f.restartAfter === undefined ? '' : `, back in ${f.restartAfter.toFixed(1)} ms`}`,
        )
        this.step(node, { kind: 'stop', handover: true })
        // The process flushes what it sent (a TimeoutNow, say) and exits a moment later.
        this.push(this.now + STOP_LINGER_MS, EXIT, node.idx, -1, node.incarnation, undefined)
        if (f.restartAfter !== undefined)
          this.push(this.now + STOP_LINGER_MS + f.restartAfter, BOOT, node.idx, -1, 0, undefined)
        return
      }
      case 'partition': {
        const side = new Array<number>(n).fill(0)
        for (let s = 0; s < n; s++) side[at(s)] = f.groups[s] ?? 0
        const bridge = f.bridge === undefined ? -1 : at(f.bridge)
        for (let a = 0; a < n; a++)
          for (let b = 0; b < n; b++) if (a !== bridge && b !== bridge && side[a] !== side[b]) cutLink(a, b)
        const withService = svc >= 0 && f.service !== undefined
        if (withService)
          for (let a = 0; a < n; a++)
            if (a !== bridge && side[a] !== f.service) {
              cutLink(a, svc)
              cutLink(svc, a)
            }
        const groups = new Map<number, string[]>()
        for (let a = 0; a < n; a++) {
          if (a === bridge) continue
          const g = groups.get(side[a] as number) ?? []
          g.push(id(a))
          groups.set(side[a] as number, g)
        }
        if (withService)
          groups.set(f.service as number, [...(groups.get(f.service as number) ?? []), id(svc)])
        const shape = [...groups.values()].map((g) => `{${g.join(',')}}`).join(' | ')
        this.note(
          undefined,
          'fault',
          `partition ${shape}${bridge >= 0 ? ` bridge ${id(bridge)}` : ''} for ${f.duration.toFixed(1)} ms`,
        )
        end(f.duration, [])
        return
      }
      case 'one-way': {
        const from = [...new Set(f.from.map(at))]
        const to = [...new Set(f.to.map(at))]
        if (svc >= 0 && f.service === 'from') from.push(svc)
        if (svc >= 0 && f.service === 'to') to.push(svc)
        for (const a of from) for (const b of to) cutLink(a, b)
        this.note(
          undefined,
          'fault',
          `one-way: {${from.map(id).join(',')}} ↛ {${to.map(id).join(',')}} for ${f.duration.toFixed(1)} ms`,
        )
        end(f.duration, [])
        return
      }
      case 'isolate': {
        const node = at(f.node)
        if (f.checkPreVote) {
          // Only meaningful when the isolated node is a follower of an agreed leader.
          const leader = this.checker.agreedLeader()
          if (leader !== undefined && leader !== node) this.checker.guardPreVote(this.now)
        }
        for (let b = 0; b < p; b++) {
          cutLink(node, b)
          cutLink(b, node)
        }
        this.note(undefined, 'fault', `isolate ${id(node)} for ${f.duration.toFixed(1)} ms`)
        end(f.duration, [])
        return
      }
      case 'pause': {
        const node = this.nodes[at(f.node)] as SimNode<M, P>
        node.pausedUntil = Math.max(node.pausedUntil, this.now + f.duration)
        this.note(node, 'fault', `pause for ${f.duration.toFixed(1)} ms`)
        return
      }
      case 'slow': {
        const node = this.nodes[at(f.node)] as SimNode<M, P>
        node.slowMs += f.extraMs
        this.note(node, 'fault', `slow by ${f.extraMs.toFixed(1)} ms for ${f.duration.toFixed(1)} ms`)
        end(f.duration, [node.idx])
        return
      }
      case 'clock-jump': {
        const node = this.nodes[at(f.node)] as SimNode<M, P>
        node.clock.jump(f.jumpMs)
        // Any interval this node measures across the jump is wrong; its promises and leases last at most
        // an election timeout, so after that its clock is as good as any.
        this.checker.clockOutOfBound(
          node.idx,
          this.now + Math.abs(f.jumpMs) + 2 * this.adapter.timing.electionTimeoutMaxMs,
        )
        this.note(node, 'fault', `clock jumps ${f.jumpMs.toFixed(1)} ms (beyond the drift bound)`)
        // The runtime feeds the machine a tick when its clock is read going backwards.
        if (node.alive && node.pausedUntil <= this.now) this.step(node, { kind: 'tick' })
        else if (node.alive) this.schedule(node)
        return
      }
      case 'false-unreachable': {
        const node = this.nodes[at(f.node)] as SimNode<M, P>
        const peer = at(f.peer)
        if (peer === node.idx || !node.alive || this.connected[node.idx * p + peer] === 0) return
        this.disconnect(node.idx, peer)
        this.note(
          node,
          'fault',
          `false peerUnreachable about ${id(peer)}; reconnect in ${f.reconnectAfter.toFixed(1)} ms`,
        )
        this.push(
          this.now + this.rng.between(0.1, 1),
          UNREACHABLE,
          node.idx,
          peer,
          node.incarnation,
          undefined,
        )
        this.push(this.now + f.reconnectAfter, RECONNECT, 0, -1, 0, undefined)
        return
      }
      case 'disk-fail': {
        const node = this.nodes[at(f.node)] as SimNode<M, P>
        node.diskFaults++
        this.note(node, 'fault', `disk writes fail for ${f.duration.toFixed(1)} ms`)
        end(f.duration, [node.idx])
        return
      }
      case 'forge': {
        const node = this.nodes[at(f.node)] as SimNode<M, P>
        const from = at(f.from)
        if (!node.alive || !node.machine || from === node.idx || !this.adapter.forge) return
        const msg = this.adapter.forge(f.what, node.machine.view(node.clock.local(this.now)))
        if (msg === undefined) {
          this.note(node, 'fault', `forged ${f.what} from ${id(from)}: refused by the codec`)
          return
        }
        this.note(node, 'fault', `forged message from ${id(from)}: ${this.adapter.describe(msg)}`)
        this.step(node, { kind: 'receive', from: id(from), msg })
        return
      }
      case 'outage': {
        if (svc < 0) return
        for (let a = 0; a < n; a++) {
          cutLink(a, svc)
          cutLink(svc, a)
        }
        this.note(undefined, 'fault', `${id(svc)} unreachable for ${f.duration.toFixed(1)} ms`)
        end(f.duration, [])
        return
      }
      case 'service-slow': {
        if (svc < 0) return
        const node = this.nodes[svc] as SimNode<M, P>
        node.slowMs += f.extraMs
        this.note(node, 'fault', `slow by ${f.extraMs.toFixed(1)} ms for ${f.duration.toFixed(1)} ms`)
        end(f.duration, [svc])
        return
      }
      case 'lossy': {
        this.lossy.push({ loss: f.loss, duplicate: f.duplicate, reorder: f.reorder })
        this.applyLossy()
        this.note(
          undefined,
          'fault',
          `lossy network: loss ${f.loss.toFixed(2)} dup ${f.duplicate.toFixed(2)} reorder ${f.reorder.toFixed(2)} for ${f.duration.toFixed(1)} ms`,
        )
        this.undo.set(index, { links: [], nodes: [] })
        this.push(this.now + f.duration, FAULT_END, 0, index, 0, undefined)
        return
      }
    }
  }

  private endFault(index: number): void {
    const f = this.scenario.faults[index] as Fault
    const undo = this.undo.get(index)
    if (!undo) return
    this.undo.delete(index)
    for (const link of undo.links) this.cut[link] = (this.cut[link] as number) - 1
    if (f.kind === 'slow' || f.kind === 'service-slow')
      for (const idx of undo.nodes) (this.nodes[idx] as SimNode<M, P>).slowMs -= f.extraMs
    if (f.kind === 'disk-fail') for (const idx of undo.nodes) (this.nodes[idx] as SimNode<M, P>).diskFaults--
    if (f.kind === 'lossy') {
      const i = this.lossy.findIndex(
        (l) => l.loss === f.loss && l.duplicate === f.duplicate && l.reorder === f.reorder,
      )
      if (i >= 0) this.lossy.splice(i, 1)
      this.applyLossy()
    }
    this.note(undefined, 'heal', f.kind)
    if (undo.links.length > 0) this.connectAll()
  }

  private applyLossy(): void {
    this.loss = Math.max(0, ...this.lossy.map((l) => l.loss))
    this.duplicate = Math.max(0, ...this.lossy.map((l) => l.duplicate))
    this.reorder = Math.max(0, ...this.lossy.map((l) => l.reorder))
  }
}
