/**
 * What the raft and bully drivers share above their state machines: a MachineDriver to start, stop and
 * resign through, isLeader() from the machine's view, election counters, and each view turned into the
 * role and leader that ElectionBase reports. A driver builds its machine and transport, then calls
 * `drive()`.
 */

import type { DropReason } from '../codec/envelope.js'
import type { LeaderInfo, StopOptions } from '../election.js'
import { ClosedError, ProtocolError } from '../errors.js'
import type { MachineView, ProtocolMachine } from '../protocol/machine.js'
import type { Transport, TransportStats } from '../transport/transport.js'
import type { Clock } from './clock.js'
import { MachineDriver } from './driver.js'
import { ElectionBase } from './election-base.js'

export abstract class DrivenElection<M, P> extends ElectionBase {
  /** Elections this node started and won, and leaders it saw come in: for status and metrics. */
  readonly counters = { electionsStarted: 0, electionsWon: 0, leaderChanges: 0 }
  protected readonly clock: Clock
  private machineDriver: MachineDriver<M, P> | undefined
  private machineTransport: Transport<M> | undefined
  private readonly leaderSince = new Map<string, number>()
  private lastView: MachineView | undefined
  /** The machine's own drop counts already added to the transport's, by reason. */
  private readonly machineDrops = new Map<string, number>()
  /** Problems the machine named that were already reported. */
  private readonly reportedProblems = new Set<string>()
  private started = false
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

  /** Wires the machine to the transport; call once, at the end of the subclass constructor. */
  protected drive(
    machine: ProtocolMachine<M, P>,
    transport: Transport<M>,
    persist?: (state: P) => void,
  ): void {
    this.machineTransport = transport
    this.machineDriver = new MachineDriver(machine, transport, this.clock, {
      persist,
      update: (view) => this.onView(view),
      error: (err) => this.reportError(err),
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

  get transportStats(): TransportStats {
    return (this.machineTransport as Transport<M>).stats
  }

  async start(): Promise<void> {
    if (this.stopped) throw new ClosedError()
    if (this.started) return
    this.started = true
    await this.driver.start()
  }

  async stop(opts: StopOptions = {}): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    await this.driver.stop(opts.handover ?? true)
    this.observe('stopped', false, undefined)
  }

  async resign(): Promise<void> {
    if (this.stopped) throw new ClosedError()
    this.driver.input({ kind: 'resign' })
  }

  isLeader(): boolean {
    return !this.stopped && this.started && this.driver.view().isLeader
  }

  private onView(view: MachineView): void {
    const prev = this.lastView
    this.lastView = view
    this.countMachineDrops(view)
    for (const problem of view.problems ?? []) {
      if (this.reportedProblems.has(problem)) continue
      this.reportedProblems.add(problem)
      this.reportError(new ProtocolError(problem))
    }
    if (view.role === 'candidate' && (prev?.role !== 'candidate' || view.term > prev.term))
      this.counters.electionsStarted++
    if (view.role === 'leader' && (prev?.role !== 'leader' || prev.term !== view.term))
      this.counters.electionsWon++
    if (this.stopped) return
    let leader: LeaderInfo | undefined
    if (view.leader) {
      const key = `${view.leader.id}@${view.leader.term}`
      let since = this.leaderSince.get(key)
      if (since === undefined) {
        this.leaderSince.clear()
        since = this.clock.wall()
        this.leaderSince.set(key, since)
        this.counters.leaderChanges++
      }
      const { address, tags } = this.describe(view.leader.id, view)
      leader = { id: view.leader.id, address, token: BigInt(view.leader.term), since, tags }
    }
    this.observe(view.role, view.isLeader, leader)
  }

  /**
   * Adds what the machine refused (an epoch beyond belief, say) to the transport's drop counts, so
   * /status, /metrics and the fixtures show it with every other dropped message, by its own reason.
   */
  private countMachineDrops(view: MachineView): void {
    const stats = this.machineTransport?.stats
    if (!view.dropped || !stats) return
    for (const [reason, total] of Object.entries(view.dropped)) {
      const counted = this.machineDrops.get(reason) ?? 0
      // The codec's DropReason does not list the machine's reasons ('term') yet; the counts are a
      // plain map keyed by the reason's name all the same.
      for (let i = counted; i < total; i++) stats.drop(reason as DropReason)
      this.machineDrops.set(reason, total)
    }
  }
}
