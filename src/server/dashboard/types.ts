/**
 * What the dashboard page receives, as JSON in `/events` (`event: cluster` and `event: history`). Served
 * the same way by a node (its own view) and by `ballot demo` (every node's view combined, plus the
 * processes). Tokens and terms travel as decimal strings: they are bigints and may pass 2^53.
 */

/** A role as the page shows it: what the member says or was last known to be, or 'down'. */
export type ShownRole = 'leader' | 'follower' | 'candidate' | 'observer' | 'down' | 'unknown'

/** One member's card. */
export interface MemberCard {
  id: string
  address?: string
  kind: 'voter' | 'observer'
  /** What the card shows (and its `data-role` attribute). */
  role: ShownRole
  /** Why the role is what it is, in a few words, when it is not self-evident ("paused", "not heard"). */
  note?: string
  term: string
  tags: Record<string, string>
  /** Milliseconds since the viewing node last heard from the member (undefined: never). */
  lastContactMs?: number
  reachable: boolean
  /** The member is the node whose view this is. */
  self: boolean
  /** Lease driver: the place in the line of candidates (1 leads). */
  place?: number
}

/** The current leadership, as the viewing node names it. */
export interface LeaderCard {
  id: string
  address?: string
  token: string
  /** When the viewing node learned of it (ms since the Unix epoch). */
  since: number
  tags: Record<string, string>
}

/** A demo node's process, as `ballot demo` sees it. */
export interface ProcessCard {
  pid?: number
  state: 'running' | 'paused' | 'killed' | 'exited' | 'starting'
  /** The node's HTTP API (host:port). */
  http: string
}

/** Which controls the page may offer; the page never receives a credential, only this. */
export type ControlsMode =
  /** No HTTP token is configured: a read-only page. */
  | 'none'
  /** The node has an HTTP token: a client that holds it may make this node resign. */
  | 'token'
  /** `ballot demo`: kill, pause, resume, restart and resign, for a client holding the demo's key. */
  | 'demo'

/** `event: cluster`: everything a page shows but the history. */
export interface ClusterSnapshot {
  /** 'raft', 'bully' or 'lease'. */
  algo: string
  /** The node whose view this is (in the demo: the node whose view was freshest). */
  view: string
  /** Whether the viewing node is answering (the demo: false while no node answers). */
  viewing: boolean
  role: string
  isLeader: boolean
  term: string
  leader: LeaderCard | null
  members: MemberCard[]
  /** A peer not heard from for longer than this is shown as silent (ms). */
  silentAfterMs: number
  /** Server time when the snapshot was taken (ms since the Unix epoch). */
  at: number
  /** `ballot demo` only: each node's process. */
  processes?: Record<string, ProcessCard>
}

/** How a leadership came after the one before it. */
export type Succession = 'first' | 'election' | 'hand-over'

/** One leadership in the timeline. */
export interface LeadershipRecord {
  leader: string
  token: string
  /** When it began, as seen (ms since the Unix epoch). */
  from: number
  /** When it ended, as seen; undefined while it lasts. */
  to?: number
  /** How it followed the previous one: after an election (the old leader fell silent) or a hand-over. */
  after: Succession
  /** Milliseconds without a leader between the previous leadership's end and this one's start. */
  gapMs?: number
}

/** `event: history`: the leaderships seen, oldest first (bounded). */
export interface HistorySnapshot {
  leaderships: LeadershipRecord[]
}
