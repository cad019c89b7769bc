/**
 * One node's view for its dashboard: the cluster as cards (`snapshot()`) and the leaderships it has seen
 * (`history()`), fed by the election's own change events. The role on each card is what the page may
 * honestly claim from this node: a peer's last known role goes stale (raft followers do not hear from
 * each other), so a "leader" this node no longer follows is not shown as one.
 */
import type { DaemonElection } from '../../daemon/elections.js'
import type { ClusterState, LeaderInfo, LeadershipChange, MemberState } from '../../election.js'
import { type LeadershipEnd, LeadershipHistory } from './history.js'
import type { ClusterSnapshot, HistorySnapshot, LeaderCard, MemberCard, ShownRole } from './types.js'

/** Peers not heard from for this many heartbeats are called silent (a leader sends one every interval). */
const SILENT_HEARTBEATS = 3
/** Used when the driver does not say how often it beats (bully, lease). */
const DEFAULT_SILENT_AFTER_MS = 1000
/** A leadership that ends this soon after POST /resign ended by hand-over, whatever the peers saw. */
const RESIGN_WINDOW_MS = 5000

/** The LeaderInfo as the page wants it. */
export function leaderCard(l: LeaderInfo | undefined): LeaderCard | null {
  if (!l) return null
  return { id: l.id, address: l.address, token: l.token.toString(), since: l.since, tags: l.tags ?? {} }
}

/** How long a peer may stay unheard before the page calls it silent, from the driver's heartbeat. */
export function silentAfterMs(election: DaemonElection): number {
  // Raft exposes its timings; the other drivers do not, and get a default that fits their defaults.
  const timing = (election as { timing?: { heartbeatIntervalMs?: unknown } }).timing
  const beat = timing?.heartbeatIntervalMs
  return typeof beat === 'number' && beat > 0 ? SILENT_HEARTBEATS * beat : DEFAULT_SILENT_AFTER_MS
}

/** The role a card may show for `m`, as seen by the node whose state `s` is. */
export function shownRole(
  m: MemberState,
  s: ClusterState,
  isLeader: boolean,
): { role: ShownRole; note?: string } {
  if (m.self) {
    if (s.role === 'stopped') return { role: 'down', note: 'stopped' }
    // Raft names itself leader a moment before its lease starts, and after it lapses (a paused leader):
    // without the lease it may not act as leader, so neither does its card.
    if (s.role === 'leader' && !isLeader) return { role: 'candidate', note: 'leads without a valid lease' }
    return { role: s.role }
  }
  if (!m.reachable) return { role: 'down', note: 'unreachable' }
  if (s.leader?.id === m.id) return { role: 'leader' }
  if (m.role === 'leader') return { role: 'unknown', note: 'last seen leading an older term' }
  if (m.role === 'stopped') return { role: 'down', note: 'stopped' }
  return { role: m.role }
}

/** The cards of a cluster state. `algo` 'lease' numbers the line of candidates. */
export function memberCards(s: ClusterState, isLeader: boolean, algo: string): MemberCard[] {
  return s.members.map((m, i) => {
    const { role, note } = shownRole(m, s, isLeader)
    return {
      id: m.id,
      address: m.address,
      kind: m.kind,
      role,
      ...(note ? { note } : {}),
      term: m.term.toString(),
      tags: m.tags,
      lastContactMs: m.lastContactMs,
      reachable: m.reachable,
      self: m.self,
      ...(algo === 'lease' ? { place: i + 1 } : {}),
    }
  })
}

/** A node's dashboard data; see the module comment. */
export class ClusterFeed {
  private readonly log = new LeadershipHistory()
  private readonly silentMs: number
  private resignedAt = Number.NEGATIVE_INFINITY
  private readonly onChange = (c: LeadershipChange) => this.record(c)

  constructor(
    private readonly election: DaemonElection,
    private readonly algo: string,
  ) {
    this.silentMs = silentAfterMs(election)
    election.on('change', this.onChange)
    const known = election.leader()
    if (known) this.log.observe(Date.now(), known)
  }

  /** Stops listening to the election. */
  close(): void {
    this.election.off('change', this.onChange)
  }

  /** This node was asked to resign: its leadership, when it ends, ended by hand-over. */
  noteResign(at = Date.now()): void {
    this.resignedAt = at
  }

  /** The cards and the leader as this node sees them now. */
  snapshot(): ClusterSnapshot {
    const e = this.election
    const s = e.clusterState()
    const isLeader = e.isLeader()
    return {
      algo: this.algo,
      view: e.id,
      viewing: true,
      role: s.role,
      isLeader,
      term: s.term.toString(),
      leader: leaderCard(s.leader),
      members: memberCards(s, isLeader, this.algo),
      silentAfterMs: this.silentMs,
      at: Date.now(),
    }
  }

  /** The leaderships this node has seen since it started, oldest first. */
  history(): HistorySnapshot {
    return { leaderships: this.log.list() }
  }

  private record(c: LeadershipChange): void {
    this.log.observe(c.at, c.leader, this.howItEnded(c))
  }

  /** How the leadership in force ended, judged when it changes (see LeadershipEnd). */
  private howItEnded(c: LeadershipChange): LeadershipEnd | undefined {
    const current = this.log.current
    if (!current || (c.leader?.id === current.leader && c.leader.token.toString() === current.token))
      return undefined
    if (current.leader === this.election.id)
      return { how: c.at - this.resignedAt <= RESIGN_WINDOW_MS ? 'hand-over' : 'election' }
    const m = this.election.clusterState().members.find((x) => x.id === current.leader)
    if (!m?.reachable) return { how: 'election' }
    // Lease candidates carry no contact time: one still in the line stepped back (a resign) rather than
    // vanished with its session.
    if (m.lastContactMs === undefined) return { how: this.algo === 'lease' ? 'hand-over' : 'election' }
    if (m.lastContactMs <= this.silentMs) return { how: 'hand-over' }
    // It fell silent: its leadership ended, as far as anyone here can tell, when it was last heard.
    return { how: 'election', at: c.at - m.lastContactMs }
  }
}
