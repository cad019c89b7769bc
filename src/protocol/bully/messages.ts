/**
 * Bully messages. Every one carries the sender's pid (its rank), its unicast address (so a follower can
 * point at its leader), the highest epoch it knows (so a stale leader learns it is stale from any
 * message) and whether it has resigned (so others do not wait for it to claim).
 */
import { z } from 'zod'
import { MAX_TERM } from '../terms.js'

/**
 * Every epoch a machine can send or persist (it never goes above MAX_TERM), so that what one node
 * writes every node, and its own restart, can read. Whether an epoch from the wire is believed is the
 * machine's judgement (../terms.ts), not the schema's.
 */
const epoch = z.number().int().nonnegative().max(MAX_TERM)
const pid = z.number().int().min(-Number.MAX_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER)
const base = {
  pid,
  /** The sender's unicast address: host:port over TCP, the interface IP over multicast. */
  addr: z.string().min(1).max(256),
  epoch,
  /** The sender stepped down with resign() and does not take leadership back from a live leader. */
  resigned: z.boolean().optional(),
}

/**
 * The largest epoch the leader has heard of, when above the one it leads with (a higher node's, from
 * across a lossy link, say): so that whoever claims next, having heard this leader, claims above it.
 * Older nodes ignore it.
 */
const max = epoch.optional()

/** Every node the leader knows, so nodes that were given different lists still all find each other. */
const members = z
  .array(z.object({ id: z.string().min(1).max(128), addr: z.string().min(1).max(256) }))
  .max(256)
  .optional()

export const bullyMessageSchema = z.discriminatedUnion('t', [
  /** I am here (at start, every alive interval, and in reply to a newcomer). */
  z.object({ t: z.literal('hello'), ...base }),
  /** I lead from now on, with this new epoch (the fencing token). */
  z.object({ t: z.literal('claim'), ...base, max, members }),
  /** I still lead, with the epoch I claimed (now and then with the members I know). */
  z.object({ t: z.literal('hb'), ...base, max, members }),
  /** I am leaving (stop), or stepping down (resign): do not wait for my silence to be noticed. */
  z.object({ t: z.literal('bye'), ...base, leaving: z.boolean() }),
])

export type BullyMessage = z.infer<typeof bullyMessageSchema>

/** What a node persists (with a data directory): the highest epoch it knows, so a restart never reuses one. */
export const bullyHardStateSchema = z.object({ epoch })
export type BullyHardState = z.infer<typeof bullyHardStateSchema>
