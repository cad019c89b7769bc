/**
 * Drives a pure protocol machine with a real clock and a transport: feeds it inputs stamped with the
 * clock's time, persists what it asks to persist (before sending anything), sends its messages and
 * wakes it at the deadline it names. This thin layer owns every timer; the machine owns every decision.
 */
import type { Input, MachineView, ProtocolMachine, Refusal, Transition } from '../protocol/machine.js'
import type { Transport } from '../transport/transport.js'
import type { Clock } from './clock.js'

export interface DriverHooks<P> {
  /** Must write and sync `state` before returning; a throw stops the batch's messages from going out. */
  persist?: (state: P) => void
  /** Called after every batch with the fresh view and the transitions it contained. */
  update: (view: MachineView, transitions: Transition[]) => void
  error: (err: Error) => void
  /** A message the machine refused though it passed the codec (counted as a drop by the caller). */
  refused?: (refusal: Refusal) => void
}

export class MachineDriver<M, P> {
  private timer: unknown
  private leaseTimer: unknown
  private running = false

  constructor(
    readonly machine: ProtocolMachine<M, P>,
    private readonly transport: Transport<M>,
    private readonly clock: Clock,
    private readonly hooks: DriverHooks<P>,
  ) {}

  async start(): Promise<void> {
    await this.transport.start({
      onMessage: (from, msg) => this.input({ kind: 'receive', from, msg }),
      onPeerConnected: (peer) => this.input({ kind: 'peerConnected', peer }),
      onPeerUnreachable: (peer) => this.input({ kind: 'peerUnreachable', peer }),
    })
    this.running = true
    this.input({ kind: 'tick' })
  }

  /** Feeds one input and carries out everything the machine decided. */
  input(input: Input<M>): void {
    if (!this.running && input.kind !== 'stop') return
    this.machine.step(this.clock.now(), input)
    this.flush()
  }

  view(): MachineView {
    return this.machine.view(this.clock.now())
  }

  /** Stops the machine (a leader hands over first if asked), flushes its last messages, closes the transport. */
  async stop(handover: boolean): Promise<void> {
    if (!this.running) return
    this.input({ kind: 'stop', handover })
    this.running = false
    this.clock.clearTimer(this.timer)
    this.clock.clearTimer(this.leaseTimer)
    await this.transport.close()
  }

  private flush(): void {
    const ready = this.machine.ready()
    let sendable = true
    if (ready.persist !== undefined && this.hooks.persist) {
      try {
        this.hooks.persist(ready.persist)
      } catch (err) {
        // Without the state on disk, a vote or a campaign could be repeated after a crash: send nothing.
        sendable = false
        this.hooks.error(err as Error)
      }
    }
    for (const r of ready.refused ?? []) this.hooks.refused?.(r)
    if (sendable) for (const m of ready.messages) this.transport.send(m.to, m.msg)
    const now = this.clock.now()
    const view = this.machine.view(now)
    if (this.running) {
      this.clock.clearTimer(this.timer)
      if (Number.isFinite(ready.deadline)) {
        this.timer = this.clock.setTimer(() => this.input({ kind: 'tick' }), ready.deadline - now)
      }
      // The lease can lapse between inputs; look again the moment it would, so leaving leadership is
      // reported (and leader work aborted) on time rather than at the next message.
      this.clock.clearTimer(this.leaseTimer)
      if (view.leaseExpiresAt !== undefined) {
        this.leaseTimer = this.clock.setTimer(
          () => this.hooks.update(this.view(), []),
          view.leaseExpiresAt - now + 1,
        )
      }
    }
    this.hooks.update(view, ready.transitions)
  }
}
