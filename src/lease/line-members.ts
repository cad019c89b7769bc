/**
 * A store's line as `clusterState().members`, the same for a lease candidate and a lease follower: the
 * head leads (or, for a candidate, is still only a candidate until it may act), the rest follow.
 */
import type { MemberState } from '../election.js'
import { type LineEntry, lineHead } from './backend.js'

/**
 * The members of `line` (head first). `leaderKey`: the key of the head once it is accepted as leader
 * (absent: the head is shown as leader if it holds the lock, see lineHead); `selfKey`: this candidate's
 * own entry, if any.
 */
export function lineMembers(
  line: readonly LineEntry[],
  opts: { leaderKey?: string | undefined; selfKey?: string | undefined; headLeads?: boolean } = {},
): MemberState[] {
  const head = lineHead(line)
  const leads = head !== undefined && (opts.headLeads !== false || opts.leaderKey === head.key)
  return line.map((e, i) => ({
    id: e.id,
    address: e.address,
    kind: 'voter',
    role: i > 0 ? 'follower' : leads ? 'leader' : 'candidate',
    term: e.token,
    tags: e.tags ?? {},
    reachable: true,
    self: opts.selfKey !== undefined && e.key === opts.selfKey,
  }))
}
