/**
 * The parts of the Election interface that every driver shares: state callbacks with abort signals,
 * `changes()` as an async iterable, `whileLeader(work)`, and the error stream. A driver reports what it
 * observes through `observe()`; this class turns that into events, in order.
 *
 * Two notions are kept apart on purpose: the *role* (follower, candidate, leader, ...) and *leading*
 * (this node may act as leader now: for raft, its lease is valid). enterLeader/leaveLeader and
 * whileLeader follow *leading*, so work is aborted the moment the lease lapses, even before the
 * protocol formally steps down.
 *
 * A leadership is one token: when the token changes while this node leads, that is leaving one
 * leadership and entering the next (leaveLeader, enterLeader, whileLeader work aborted and restarted).
 */
import { EventEmitter } from 'node:events'
import type {
  CallbackContext,
  ChangesOptions,
  ClusterState,
  Disposable,
  Election,
  ElectionEvents,
  LeaderInfo,
  LeadershipChange,
  Role,
  StateCallback,
  StopOptions,
} from '../election.js'
import { CallbackError } from '../errors.js'
import { changeStream } from './change-stream.js'

type StateEvent = 'Leader' | 'Follower' | 'Candidate'

export interface ElectionBaseOptions {
  /** How long a state callback may run before its signal aborts (ms). Default 10 000. */
  callbackTimeoutMs?: number
  wall?: () => number
}

function sameLeader(a: LeaderInfo | undefined, b: LeaderInfo | undefined): boolean {
  return a?.id === b?.id && a?.token === b?.token
}

export abstract class ElectionBase implements Election {
  private readonly emitter = new EventEmitter()
  private readonly callbackTimeoutMs: number
  protected readonly wall: () => number
  private role: Role = 'stopped'
  private leading = false
  private currentLeader: LeaderInfo | undefined
  /** Aborted when the state it belongs to is left. */
  private readonly stateControllers = new Map<StateEvent, AbortController>()
  private readonly subscribers = new Set<(change: LeadershipChange) => void>()
  private readonly leaderWork = new Set<{
    work: Parameters<Election['whileLeader']>[0]
    ctl?: AbortController
  }>()

  constructor(opts: ElectionBaseOptions = {}) {
    this.callbackTimeoutMs = opts.callbackTimeoutMs ?? 10_000
    this.wall = opts.wall ?? Date.now
    // An 'error' event with no listener would throw; errors here are reports, never fatal.
    this.emitter.on('error', () => {})
  }

  abstract start(): Promise<void>
  abstract stop(opts?: StopOptions): Promise<void>
  abstract resign(): Promise<void>
  abstract isLeader(): boolean
  abstract clusterState(): ClusterState

  leader(): LeaderInfo | undefined {
    return this.currentLeader
  }

  state(): Role {
    return this.role
  }

  on<E extends keyof ElectionEvents>(event: E, handler: ElectionEvents[E]): this {
    this.emitter.on(event, handler as (...args: unknown[]) => void)
    return this
  }

  off<E extends keyof ElectionEvents>(event: E, handler: ElectionEvents[E]): this {
    this.emitter.off(event, handler as (...args: unknown[]) => void)
    return this
  }

  changes(options?: AbortSignal | ChangesOptions): AsyncIterable<LeadershipChange> {
    return changeStream((push) => {
      this.subscribers.add(push)
      return () => this.subscribers.delete(push)
    }, options)
  }

  whileLeader(work: (signal: AbortSignal, lead: LeaderInfo) => Promise<void>): Disposable {
    const entry: { work: typeof work; ctl?: AbortController } = { work }
    this.leaderWork.add(entry)
    if (this.leading && this.currentLeader) this.runLeaderWork(entry, this.currentLeader)
    const dispose = () => {
      this.leaderWork.delete(entry)
      entry.ctl?.abort(new Error('whileLeader disposed'))
    }
    return { dispose, [Symbol.dispose]: dispose }
  }

  /** Reports an error to 'error' listeners without stopping anything. */
  protected reportError(err: Error): void {
    this.emitter.emit('error', err)
  }

  /**
   * The driver's single entry point: the role, whether this node may lead now, and who leads.
   * Emits every resulting event in order: leave callbacks, enter callbacks, then the change.
   */
  protected observe(role: Role, leading: boolean, leader: LeaderInfo | undefined): void {
    const previousRole = this.role
    const wasLeading = this.leading
    const previousLeader = this.currentLeader
    const leaderChanged = !sameLeader(previousLeader, leader)
    if (role === previousRole && leading === wasLeading && !leaderChanged) {
      // Tags may change without a change of leader; keep the freshest copy.
      if (leader) this.currentLeader = leader
      return
    }
    this.role = role
    this.leading = leading
    this.currentLeader = leader

    const before = this.stateEvent(previousRole, wasLeading)
    const after = this.stateEvent(role, leading)
    // A new token while leading is a new leadership (bully claiming again with a larger epoch, say):
    // the old one is over, so whatever was fenced with its token must stop, and start again with the
    // new one. Leading straight through, without this, work would run on with a token no longer current.
    const newLeadership = before === 'Leader' && after === 'Leader' && leaderChanged
    if (before !== after || newLeadership) {
      if (before) this.leave(before, previousLeader)
      if (before === 'Leader') {
        const why = newLeadership
          ? `leadership with token ${previousLeader?.token} ended: a new one began with token ${leader?.token}`
          : 'leadership lost'
        for (const entry of this.leaderWork) entry.ctl?.abort(new Error(why))
      }
      if (after) this.enter(after, leader)
      if (after === 'Leader' && leader) for (const entry of this.leaderWork) this.runLeaderWork(entry, leader)
    }
    const change: LeadershipChange = { role, leader, previous: previousLeader, at: this.wall() }
    for (const push of this.subscribers) push(change)
    this.emitter.emit('change', change)
  }

  private stateEvent(role: Role, leading: boolean): StateEvent | undefined {
    if (leading) return 'Leader'
    if (role === 'follower' || role === 'observer') return 'Follower'
    if (role === 'candidate') return 'Candidate'
    // A leader without a valid lease is, for callbacks, neither leading nor following: it waits.
    return undefined
  }

  private enter(state: StateEvent, leader: LeaderInfo | undefined): void {
    const ctl = new AbortController()
    this.stateControllers.set(state, ctl)
    this.invoke(`enter${state}` as keyof ElectionEvents, ctl.signal, leader)
  }

  private leave(state: StateEvent, leader: LeaderInfo | undefined): void {
    this.stateControllers.get(state)?.abort(new Error(`left ${state.toLowerCase()} state`))
    this.stateControllers.delete(state)
    this.invoke(`leave${state}` as keyof ElectionEvents, undefined, leader)
  }

  private invoke(
    event: keyof ElectionEvents,
    stateSignal: AbortSignal | undefined,
    leader: LeaderInfo | undefined,
  ) {
    const listeners = this.emitter.listeners(event) as StateCallback[]
    if (listeners.length === 0) return
    const timeout = AbortSignal.timeout(this.callbackTimeoutMs)
    const signal = stateSignal ? AbortSignal.any([stateSignal, timeout]) : timeout
    const ctx: CallbackContext = { signal, timeoutMs: this.callbackTimeoutMs }
    for (const listener of listeners) {
      try {
        const result = listener(ctx, leader)
        if (result instanceof Promise) result.catch((err) => this.callbackFailed(event, err))
      } catch (err) {
        this.callbackFailed(event, err)
      }
    }
  }

  private callbackFailed(event: string, err: unknown): void {
    this.reportError(
      new CallbackError(`${event} callback failed: ${(err as Error)?.message ?? err}`, { cause: err }),
    )
  }

  private runLeaderWork(
    entry: { work: Parameters<Election['whileLeader']>[0]; ctl?: AbortController },
    lead: LeaderInfo,
  ) {
    entry.ctl?.abort(new Error('leadership renewed'))
    const ctl = new AbortController()
    entry.ctl = ctl
    entry.work(ctl.signal, lead).catch((err) => {
      if (!ctl.signal.aborted) this.callbackFailed('whileLeader', err)
    })
  }
}
