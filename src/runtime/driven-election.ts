/**
 * What the raft and bully drivers share above their state machines: a MachineDriver to start, stop and
 * resign through, isLeader() from the machine's view, election counters, and each view turned into the
 * role and leader that ElectionBase reports. A driver builds its machine and transport, then calls
 * `drive()`.
 * @module
 */
import type { ElectionCounters, LeaderInfo, ResignOptions, StopOptions } from '../election.js'
import { ClosedError, PeerRefusedError, ProtocolError } from '../errors.js'
import type { MachineView } from '../protocol/machine.js'
import type { Transport, TransportStatsSnapshot } from '../transport/transport.js'
import type { Clock } from './clock.js'
import { MachineDriver, type MachineFactory } from './driver.js'
import { ElectionBase } from './election-base.js'
import type { HardStateStore } from './hard-state-store.js'

/** The part raft and bully share: a protocol machine driven over a transport. */
export abstract class DrivenElection<M, P> extends ElectionBase {
  /** Elections this node started and won, and leaders it saw come in: for status and metrics. */
  private readonly electionCounters = { electionsStarted: 0, electionsWon: 0, leaderChanges: 0 }
  protected readonly clock: Clock
  private machineDriver: MachineDriver<M, P> | undefined
  private machineTransport: Transport<M> | undefined
  private readonly leaderSince = new Map<string, number>()
  private lastView: MachineView | undefined
  private readonly refusalsSaid = new Set<string>()
  /** Problems the machine named that were already reported. */
  private readonly reportedProblems = new Set<string>()
  private stopped = false

  constructor(opts: { clock: Clock; callbackTimeoutMs?: number }) {
    super({ callbackTimeoutMs: opts.callbackTimeoutMs, wall: () => opts.clock.wall() })
    this.clock = opts.clock
  }

  /** Where the leader can be reached and its tags, as this driver knows them. */
  protected abstract describe(
    id: string,
    view: MachineView,
  ): { address?: string; tags: Record<string, string> }

  /**
   * Wires the machine to the transport; call once, at the end of the subclass constructor. `build`
   * makes a machine from durable state: first from what `store` holds now (a corrupt store throws here,
   * so a node never starts with unknown state), again after any failed save.
   */
  protected drive(build: MachineFactory<M, P>, transport: Transport<M>, store?: HardStateStore<P>): void {
    this.machineTransport = transport
    this.machineDriver = new MachineDriver(build, store?.load(), transport, this.clock, {
      persist: store ? (state) => store.save(state) : undefined,
      update: (view) => this.onView(view),
      error: (err) => this.reportError(err),
      refused: (r) => {
        transport.stats.drop(r.reason, r.peer)
        // Every refused message is counted; each distinct reason for refusing a peer is said once.
        const said = `${r.peer}\u0000${r.detail}`
        if (this.refusalsSaid.has(said) || this.refusalsSaid.size >= 100) return
        this.refusalsSaid.add(said)
        this.reportError(new PeerRefusedError(r.reason, r.detail))
      },
    })
  }

  protected get driver(): MachineDriver<M, P> {
    if (!this.machineDriver) throw new Error('drive() was not called')
    return this.machineDriver
  }

  /** The address this node listens on (TCP host:port once started; the interface IP over multicast). */
  get address(): string {
    return this.machineTransport?.address ?? ''
  }

  /** Elections started and won, leaderships seen: a snapshot, for status pages and metrics. */
  get counters(): ElectionCounters {
    return Object.freeze({ ...this.electionCounters })
  }

  /** Messages sent, received and dropped (by reason): a snapshot, for status pages and metrics. */
  get transportStats(): TransportStatsSnapshot {
    return (this.machineTransport as Transport<M>).stats.snapshot()
  }

  /** How long resign() waits for the next leadership unless told otherwise (ms). */
  protected abstract defaultResignTimeoutMs(): number

  /**
   * Listens and joins. Rejects with a BallotError: a TransportError (with the address) when the port
   * cannot be had, after which start() may be called again; a ClosedError when stop() came first.
   */
  async start(): Promise<void> {
    if (this.stopped) throw new ClosedError()
    await this.driver.start()
  }

  /** Leaves (a leader hands over first, unless `handover: false`); during a start, the start is undone. */
  async stop(opts: StopOptions = {}): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    await this.driver.stop(opts.handover ?? true)
    this.observe('stopped', false, undefined)
  }

  /** Hands leadership over and waits for the next leadership (see Election.resign). */
  async resign(options: ResignOptions = {}): Promise<LeaderInfo | undefined> {
    if (this.stopped) throw new ClosedError()
    return this.resignAndWait(options, this.defaultResignTimeoutMs(), () =>
      this.driver.input({ kind: 'resign' }),
    )
  }

  /** True only while the machine says this node may act as leader (raft: its lease holds). */
  isLeader(): boolean {
    return !this.stopped && this.driver.running && this.driver.view().isLeader
  }

  private onView(view: MachineView): void {
    const prev = this.lastView
    this.lastView = view
    for (const problem of view.problems ?? []) {
      if (this.reportedProblems.has(problem)) continue
      this.reportedProblems.add(problem)
      this.reportError(new ProtocolError(problem))
    }
    if (view.role === 'candidate' && (prev?.role !== 'candidate' || view.term > prev.term))
      this.electionCounters.electionsStarted++
    if (view.role === 'leader' && (prev?.role !== 'leader' || prev.term !== view.term))
      this.electionCounters.electionsWon++
    if (this.stopped) return
    let leader: LeaderInfo | undefined
    if (view.leader) {
      const key = `${view.leader.id}@${view.leader.term}`
      let since = this.leaderSince.get(key)
      if (since === undefined) {
        this.leaderSince.clear()
        since = this.clock.wall()
        this.leaderSince.set(key, since)
        this.electionCounters.leaderChanges++
      }
      const { address, tags } = this.describe(view.leader.id, view)
      leader = { id: view.leader.id, address, token: BigInt(view.leader.term), since, tags }
    }
    this.observe(view.role, view.isLeader, leader)
  }
}
