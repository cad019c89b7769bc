/**
 * A node's incarnation that grows across restarts whatever the wall clock does.
 *
 * Peers refuse messages from an incarnation older than the newest they have seen from the same node
 * (replay protection). The boot time alone fails when the wall clock steps back between two starts (an
 * NTP correction): every peer would then drop the restarted node's messages until the peer itself
 * restarts. So, with a data directory, the incarnation is a boot counter kept in a file there, saved
 * and synced before the first message goes out: the larger of the previous value plus one and the
 * time-based value (which keeps it above incarnations a node used before it had the file).
 */
import { z } from 'zod'
import { timeBasedIncarnation } from '../codec/envelope.js'
import { StateFile } from './state-file.js'

const incarnationSchema = z.object({
  incarnation: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
})

/**
 * Reads the last incarnation from `dataDir`, saves the next one and returns it. Throws a
 * PersistenceError when the file is corrupt or cannot be saved: starting with an incarnation that might
 * not be newer would make this node deaf to its peers.
 */
export function nextIncarnation(dataDir: string, wallMs: number): number {
  const file = new StateFile(dataDir, incarnationSchema, 'incarnation.json')
  const previous = file.load()?.incarnation ?? -1
  const next = Math.max(previous + 1, timeBasedIncarnation(wallMs))
  file.save({ incarnation: next })
  return next
}
