/**
 * Drives a pure protocol machine with a real clock and a transport: feeds it inputs stamped with the
 * clock's time, persists what it asks to persist (before sending anything), sends its messages and
 * wakes it at the deadline it names. This thin layer owns every timer; the machine owns every decision.
 *
 * A failed save. When the durable state of a Ready cannot be saved, the batch's messages are not sent,
 * the error is reported (PersistenceError), and the machine is discarded and rebuilt from the last state
 * that was saved, as if the process had crashed and restarted (but keeping the transport and its
 * connections). So no decision that rested on the unsaved state survives: a candidate that could not
 * save its new term does not lead on it, and a later restart cannot lead on it a second time. The
 * rebuilt machine starts at once (a tick, then a peerConnected for every connection the transport has
 * open, as a restarted process would see them), and saving is retried the next time it changes its
 * durable state. The simulator models exactly this.
 */
import { BallotError, ClosedError, PersistenceError, TransportError } from '../errors.js'
import type { Input, MachineView, ProtocolMachine, Refusal, Transition } from '../protocol/machine.js'
import type { Transport } from '../transport/transport.js'
import type { Clock } from './clock.js'

/** Builds a fresh machine from the durable state last saved (undefined: nothing was ever saved). */
export type MachineFactory<M, P> = (persisted: P | undefined) => ProtocolMachine<M, P>

export interface DriverHooks<P> {
  /**
   * Must write and sync `state` before returning. A throw stops the batch's messages from going out
   * and rebuilds the machine from the last state saved.
   */
  persist?: (state: P) => void
  /** Called after every batch with the fresh view and the transitions it contained. */
  update: (view: MachineView, transitions: Transition[]) => void
  error: (err: Error) => void
  /** A message the machine refused though it passed the codec (counted as a drop by the caller). */
  refused?: (refusal: Refusal) => void
}

export class MachineDriver<M, P> {
  private current: ProtocolMachine<M, P>
  /** The durable state last saved (or loaded at start): what a rebuilt machine starts from. */
  private saved: P | undefined
  private timer: unknown
  private leaseTimer: unknown
  private restartTimer: unknown
  /**
   * idle: never started, or the last start failed (it may be tried again); starting: the transport is
   * opening; running; stopped: for good.
   */
  private phase: 'idle' | 'starting' | 'running' | 'stopped' = 'idle'
  private starting: Promise<void> | undefined
  /** stop() came while starting: the start ends by closing the transport instead of running. */
  private stopRequested = false

  constructor(
    private readonly build: MachineFactory<M, P>,
    /** The durable state loaded at start-up. */
    persisted: P | undefined,
    private readonly transport: Transport<M>,
    private readonly clock: Clock,
    private readonly hooks: DriverHooks<P>,
  ) {
    this.saved = persisted
    this.current = build(persisted)
  }

  /** The machine being driven now (a failed save replaces it). */
  get machine(): ProtocolMachine<M, P> {
    return this.current
  }

  /** Whether the machine runs (started, not stopped). */
  get running(): boolean {
    return this.phase === 'running'
  }

  /**
   * Opens the transport and starts the machine. Calls while a start is under way share it. A start that
   * fails (a TransportError, EADDRINUSE say) leaves the driver as it was, to be started again; a stop()
   * that comes during the start makes it close the transport and reject with a ClosedError.
   */
  start(): Promise<void> {
    if (this.phase === 'running') return Promise.resolve()
    if (this.phase === 'stopped') return Promise.reject(new ClosedError())
    this.starting ??= this.open().finally(() => {
      this.starting = undefined
    })
    return this.starting
  }

  private async open(): Promise<void> {
    this.phase = 'starting'
    try {
      await this.transport.start({
        onMessage: (from, msg) => this.input({ kind: 'receive', from, msg }),
        onPeerConnected: (peer) => this.input({ kind: 'peerConnected', peer }),
        onPeerUnreachable: (peer) => this.input({ kind: 'peerUnreachable', peer }),
      })
    } catch (err) {
      this.phase = this.stopRequested ? 'stopped' : 'idle'
      throw err instanceof BallotError
        ? err
        : new TransportError(`cannot start: ${(err as Error)?.message ?? err}`, { cause: err })
    }
    if (this.stopRequested) {
      // Stopped while the transport opened: close it without ever running the machine, so this node
      // cannot win an election that nobody would act on.
      this.phase = 'stopped'
      await this.transport.close()
      throw new ClosedError('stopped while starting')
    }
    this.phase = 'running'
    this.input({ kind: 'tick' })
  }

  /** Feeds one input and carries out everything the machine decided. */
  input(input: Input<M>): void {
    if (this.phase !== 'running') return
    this.current.step(this.clock.now(), input)
    this.flush()
  }

  view(): MachineView {
    return this.current.view(this.clock.now())
  }

  /**
   * Stops the machine (a leader hands over first if asked), flushes its last messages, closes the
   * transport. During a start, waits for it to end with the transport closed.
   */
  async stop(handover: boolean): Promise<void> {
    if (this.phase === 'starting') {
      this.stopRequested = true
      await this.starting?.catch(() => {})
      return
    }
    if (this.phase !== 'running') {
      this.phase = 'stopped'
      return
    }
    this.input({ kind: 'stop', handover })
    this.phase = 'stopped'
    this.clock.clearTimer(this.timer)
    this.clock.clearTimer(this.leaseTimer)
    this.clock.clearTimer(this.restartTimer)
    await this.transport.close()
  }

  private flush(): void {
    const ready = this.current.ready()
    if (ready.persist !== undefined && this.hooks.persist) {
      try {
        this.hooks.persist(ready.persist)
        this.saved = ready.persist
      } catch (err) {
        this.persistFailed(err)
        return
      }
    }
    for (const r of ready.refused ?? []) this.hooks.refused?.(r)
    for (const m of ready.messages) this.transport.send(m.to, m.msg)
    const now = this.clock.now()
    const view = this.current.view(now)
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

  /**
   * The batch's state is not on disk: send none of its messages (a vote or a claim could otherwise be
   * repeated after a crash), and replace the machine with one built from the last saved state, so it
   * cannot go on acting (leading above all) on what it failed to save.
   */
  private persistFailed(err: unknown): void {
    this.hooks.error(
      err instanceof PersistenceError
        ? err
        : new PersistenceError(`cannot save durable state: ${(err as Error)?.message ?? err}`, {
            cause: err,
          }),
    )
    this.current = this.build(this.saved)
    this.clock.clearTimer(this.timer)
    this.clock.clearTimer(this.leaseTimer)
    this.clock.clearTimer(this.restartTimer)
    if (this.running) {
      // Started from the next turn of the event loop, not from inside this flush: a machine whose first
      // step fails to save again must not recurse here.
      this.restartTimer = this.clock.setTimer(() => {
        this.input({ kind: 'tick' })
        for (const peer of this.transport.connectedPeers?.() ?? [])
          this.input({ kind: 'peerConnected', peer })
      }, 0)
    }
    this.hooks.update(this.current.view(this.clock.now()), [])
  }
}
