/**
 * How a bully node picks the epoch (the fencing token) of a claim, so that no two leaderships ever
 * share one.
 *
 * "One more than the largest epoch seen" is not enough: two nodes that saw the same epochs and claim
 * before hearing each other (in the same millisecond, or on the two sides of a partition) pick the same
 * number, and then two leaderships carry one token, which a resource fencing on tokens cannot tell
 * apart. So epochs are dealt out in `EPOCH_SLOTS` slots, like Paxos ballot numbers: a node claims only
 * epochs in its own slot (its pid modulo `EPOCH_SLOTS`), the smallest one above every epoch it has seen.
 * Nodes whose pids differ modulo `EPOCH_SLOTS` (distinct pids from 0 to 999, say) can never pick the
 * same epoch, whatever they know, and each claim is still above everything its claimer could know of.
 * An epoch's last three decimal digits name the slot of the node that claimed it.
 *
 * The cost is growth: a claim adds at most `EPOCH_SLOTS` (less when leadership passes between nodes
 * of different slots), so the 2^53 epochs (MAX_TERM) last for 9·10^12 elections, and the jump a
 * restarted node must believe (MAX_TERM_JUMP, 2^32) covers over four million elections it missed.
 */

/** How many slots epochs are dealt out in; a node's slot is its pid modulo this. */
export const EPOCH_SLOTS = 1000

/** The slot of a node with this pid: the residue of its epochs modulo EPOCH_SLOTS (0 to 999). */
export function epochSlot(pid: number): number {
  return ((pid % EPOCH_SLOTS) + EPOCH_SLOTS) % EPOCH_SLOTS
}

/**
 * The epoch a claim takes: the smallest number above `known` (the largest epoch seen) in `slot`.
 * May exceed MAX_TERM near the end of the range: callers check before using it (above 2^53 the result
 * is rounded, but stays above MAX_TERM, so the check holds).
 */
export function nextEpoch(known: number, slot: number): number {
  const above = known + 1
  return above + ((((slot - (above % EPOCH_SLOTS)) % EPOCH_SLOTS) + EPOCH_SLOTS) % EPOCH_SLOTS)
}
