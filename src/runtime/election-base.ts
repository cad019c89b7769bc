/**
 * The parts of the Election interface that every driver shares: state callbacks with abort signals,
 * `changes()` as an async iterable, `whileLeader(work)`, `waitForLeader()`, the waiting half of
 * `resign()`, and the error stream. A driver reports what it observes through `observe()`; this class
 * turns that into events, in order.
 *
 * Two notions are kept apart on purpose: the *role* (follower, candidate, leader, ...) and *leading*
 * (this node may act as leader now: for raft, its lease is valid). enterLeader/leaveLeader and
 * whileLeader follow *leading*, so work is aborted the moment the lease lapses, even before the
 * protocol formally steps down.
 *
 * A leadership is one token: when the token changes while this node leads, that is leaving one
 * leadership and entering the next (leaveLeader, enterLeader, whileLeader work aborted and restarted).
 * @module
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
  ResignOptions,
  Role,
  StateCallback,
  StopOptions,
  WaitForLeaderOptions,
} from '../election.js'
import {
  CallbackError,
  ClosedError,
  InvalidOptionsError,
  LeadershipLostError,
  NotLeaderError,
} from '../errors.js'
import { changeStream } from './change-stream.js'
import { checkOptions } from './check-options.js'

type StateEvent = 'Leader' | 'Follower' | 'Candidate'

/** What every driver passes to the shared layer. */
export interface ElectionBaseOptions {
  /** How long a state callback may run before its signal aborts (ms). Default 10 000. */
  callbackTimeoutMs?: number | undefined
  /** Wall-clock milliseconds, for the `at` and `since` stamps. Default `Date.now`. */
  wall?: (() => number) | undefined
}

function sameLeader(a: LeaderInfo | undefined, b: LeaderInfo | undefined): boolean {
  return a?.id === b?.id && a?.token === b?.token
}

/** The shared layer under every driver; a driver calls `observe()` after each step of its machine. */
export abstract class ElectionBase implements Election {
  private readonly emitter = new EventEmitter()
  private readonly callbackTimeoutMs: number
  /** Wall-clock milliseconds since the Unix epoch. */
  protected readonly wall: () => number
  private role: Role = 'stopped'
  private leading = false
  private currentLeader: LeaderInfo | undefined
  /** The last leader known other than the current one: a change's `previous` (see LeadershipChange). */
  private priorLeader: LeaderInfo | undefined
  /** The last leader known at all (kept while nobody leads). */
  private lastKnownLeader: LeaderInfo | undefined
  /** Aborted when the state it belongs to is left. */
  private readonly stateControllers = new Map<StateEvent, AbortController>()
  private readonly subscribers = new Set<(change: LeadershipChange) => void>()
  /** Set once the driver reports 'stopped' (stop() was called): nothing will change any more. */
  private ended = false
  /** Told when the election ends, with or without a change event (stop() before start()). */
  private readonly endWatchers = new Set<() => void>()
  private readonly leaderWork = new Set<{
    work: Parameters<Election['whileLeader']>[0]
    ctl?: AbortController
  }>()

  constructor(opts: ElectionBaseOptions = {}) {
    this.callbackTimeoutMs = opts.callbackTimeoutMs ?? 10_000
    if (!(this.callbackTimeoutMs > 0))
      throw new InvalidOptionsError(
        'callbackTimeoutMs',
        `must be a positive number of ms, got ${opts.callbackTimeoutMs}`,
      )
    this.wall = opts.wall ?? Date.now
    // An 'error' event with no listener would throw; errors here are reports, never fatal.
    this.emitter.on('error', () => {})
  }

  /** This node's id. */
  abstract readonly id: string
  /** Where this node listens, or is published ('' when nowhere yet). */
  abstract readonly address: string
  /** Joins the group (see Election.start). */
  abstract start(): Promise<void>
  /** Leaves the group; a leader hands over first unless `handover: false` (see Election.stop). */
  abstract stop(opts?: StopOptions): Promise<void>
  /** Gives leadership up and waits for the next leadership (see Election.resign). */
  abstract resign(options?: ResignOptions): Promise<LeaderInfo | undefined>
  /** True only while leadership is provably held (see Election.isLeader). */
  abstract isLeader(): boolean
  /** Every member as this node sees it (see Election.clusterState). */
  abstract clusterState(): ClusterState

  /** How long this node's leadership has left unless renewed (ms); undefined without a lease. */
  leaseRemainingMs(): number | undefined {
    return undefined
  }

  /** Who leads, as far as this node knows. */
  leader(): LeaderInfo | undefined {
    return this.currentLeader
  }

  /** This node's role now. */
  state(): Role {
    return this.role
  }

  /** Adds a handler for an event (see ElectionEvents). */
  on<E extends keyof ElectionEvents>(event: E, handler: ElectionEvents[E]): this {
    this.emitter.on(event, handler as (...args: unknown[]) => void)
    return this
  }

  /** Removes a handler added with on(). */
  off<E extends keyof ElectionEvents>(event: E, handler: ElectionEvents[E]): this {
    this.emitter.off(event, handler as (...args: unknown[]) => void)
    return this
  }

  /** Every change of role, leading or leader, from when iteration begins (see Election.changes). */
  changes(options?: AbortSignal | ChangesOptions): AsyncIterable<LeadershipChange> {
    if (options !== undefined && !(options instanceof AbortSignal))
      checkOptions(options, { signal: true, maxQueued: true }, 'changes() options')
    return changeStream((push) => {
      this.subscribers.add(push)
      return () => this.subscribers.delete(push)
    }, options)
  }

  /** Runs `work` each time this node becomes leader, aborted when that ends (see Election.whileLeader). */
  whileLeader(work: (signal: AbortSignal, lead: LeaderInfo) => Promise<void>): Disposable {
    if (typeof work !== 'function') throw new InvalidOptionsError('whileLeader', 'expects a function')
    const entry: { work: typeof work; ctl?: AbortController } = { work }
    this.leaderWork.add(entry)
    if (this.leading && this.currentLeader) this.runLeaderWork(entry, this.currentLeader)
    const dispose = () => {
      this.leaderWork.delete(entry)
      entry.ctl?.abort(new Error('whileLeader disposed'))
    }
    return { dispose, [Symbol.dispose]: dispose }
  }

  /** Resolves with the leader once one is known (see Election.waitForLeader). */
  waitForLeader(options: WaitForLeaderOptions = {}): Promise<LeaderInfo> {
    checkOptions(options, { signal: true, self: true }, 'waitForLeader() options')
    const usable = (): LeaderInfo | undefined => {
      const leader = this.currentLeader
      if (!leader) return undefined
      // A node names itself only while it may act as leader (a raft leader waits out its lease first).
      if (leader.id === this.id && !this.leading) return undefined
      if (options.self && !(this.leading && leader.id === this.id)) return undefined
      return leader
    }
    return this.waitFor(usable, options.signal, undefined).then((leader) => leader as LeaderInfo)
  }

  /** Stops the election (with a hand-over), for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop()
  }

  /** Reports an error to 'error' listeners without stopping anything. */
  protected reportError(err: Error): void {
    this.emitter.emit('error', err)
  }

  /**
   * resign() for every driver: refuses when this node is not the leader, lets the driver step down
   * (`stepDown`), then waits for the next leadership: one that is not the one given up (another node,
   * or this node on a new token) and that its holder may act on. Resolves with it, or with undefined
   * once `timeoutMs` (default `defaultTimeoutMs`) has passed.
   */
  protected async resignAndWait(
    options: ResignOptions,
    defaultTimeoutMs: number,
    stepDown: () => void,
  ): Promise<LeaderInfo | undefined> {
    checkOptions(options, { timeoutMs: true }, 'resign() options')
    const timeoutMs = options.timeoutMs ?? defaultTimeoutMs
    if (!(timeoutMs >= 0))
      throw new InvalidOptionsError('timeoutMs', `must be a number of ms >= 0, got ${options.timeoutMs}`)
    if (this.role !== 'leader')
      throw new NotLeaderError(`cannot resign: this node is not the leader (it is ${this.role})`)
    const given = this.currentLeader
    const next = (): LeaderInfo | undefined => {
      const leader = this.currentLeader
      if (!leader || sameLeader(leader, given)) return undefined
      if (leader.id === this.id && !this.leading) return undefined
      return leader
    }
    const timeout = AbortSignal.timeout(timeoutMs)
    const waiting = this.waitFor(next, timeout, 'resolve')
    stepDown()
    return waiting
  }

  /**
   * Resolves with `probe()`'s value at the first change (or now) where it is defined. On abort:
   * rejects with the signal's reason, or resolves with undefined when `onAbort` is 'resolve'. Rejects
   * with a ClosedError when the election stops first.
   */
  private waitFor(
    probe: () => LeaderInfo | undefined,
    signal: AbortSignal | undefined,
    onAbort: 'resolve' | undefined,
  ): Promise<LeaderInfo | undefined> {
    const now = probe()
    if (now) return Promise.resolve(now)
    return new Promise((resolve, reject) => {
      const done = () => {
        this.emitter.off('change', onChange)
        this.endWatchers.delete(onEnd)
        signal?.removeEventListener('abort', aborted)
      }
      const onChange = () => {
        const value = probe()
        if (value) {
          done()
          resolve(value)
        }
      }
      const onEnd = () => {
        done()
        if (onAbort === 'resolve') resolve(undefined)
        else reject(new ClosedError('the election stopped before a leader was known'))
      }
      const aborted = () => {
        done()
        if (onAbort === 'resolve') resolve(undefined)
        else reject(signal?.reason)
      }
      if (this.ended) return onEnd()
      if (signal?.aborted) return aborted()
      this.emitter.on('change', onChange)
      this.endWatchers.add(onEnd)
      signal?.addEventListener('abort', aborted, { once: true })
    })
  }

  /**
   * The driver's single entry point: the role, whether this node may lead now, and who leads.
   * Emits every resulting event in order: leave callbacks, enter callbacks, then the change.
   */
  protected observe(role: Role, leading: boolean, leader: LeaderInfo | undefined): void {
    if (role === 'stopped' && !this.ended) {
      this.ended = true
      // After this call's change (if any) is out, so a waiter that the change satisfies sees it first.
      queueMicrotask(() => {
        for (const watcher of [...this.endWatchers]) watcher()
      })
    }
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
    // Leading needs a known leadership (its token fences the work): never one without the other.
    this.leading = leading && leader !== undefined
    this.currentLeader = leader
    if (leader && !sameLeader(leader, this.lastKnownLeader)) {
      this.priorLeader = this.lastKnownLeader
      this.lastKnownLeader = leader
    }

    const before = this.stateEvent(previousRole, wasLeading)
    const after = this.stateEvent(role, this.leading)
    // A new token while leading is a new leadership (bully claiming again with a larger epoch, say):
    // the old one is over, so whatever was fenced with its token must stop, and start again with the
    // new one. Leading straight through, without this, work would run on with a token no longer current.
    const newLeadership = before === 'Leader' && after === 'Leader' && leaderChanged
    if (before !== after || newLeadership) {
      if (before) this.leave(before, previousLeader)
      if (before === 'Leader') {
        const why = new LeadershipLostError(
          newLeadership
            ? `leadership with token ${previousLeader?.token} ended: a new one began with token ${leader?.token}`
            : `leadership with token ${previousLeader?.token} was lost (this node is now ${role})`,
        )
        for (const entry of this.leaderWork) entry.ctl?.abort(why)
      }
      if (after) this.enter(after, leader)
      if (after === 'Leader' && leader) for (const entry of this.leaderWork) this.runLeaderWork(entry, leader)
    }
    const change: LeadershipChange = {
      role,
      leading: this.leading,
      leader,
      previous: leader ? this.priorLeader : this.lastKnownLeader,
      at: this.wall(),
    }
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
    this.stateControllers
      .get(state)
      ?.abort(
        state === 'Leader'
          ? new LeadershipLostError(`leadership with token ${leader?.token} ended`)
          : new Error(`left ${state.toLowerCase()} state`),
      )
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
    entry.ctl?.abort(new LeadershipLostError('leadership renewed'))
    const ctl = new AbortController()
    entry.ctl = ctl
    entry.work(ctl.signal, lead).catch((err) => {
      if (!ctl.signal.aborted) this.callbackFailed('whileLeader', err)
    })
  }
}
