/**
 * Bounds on terms (raft) and epochs (bully), the numbers fencing tokens are made of.
 *
 * Terms travel as JSON numbers, so they must stay safe integers, and a node must always be able to
 * propose the next one: a term that a peer accepts but whose successor no peer accepts would stop all
 * elections for good. One forged frame from any host (on a cluster without a key) could otherwise do
 * that by naming a term near 2^53. So a term from the wire is believed only if it is at most
 * `MAX_TERM_JUMP` above the highest this node knows: legitimate terms grow by one per election, so no
 * real cluster ever jumps that far, and a forger needs millions of accepted frames, not one, to use up
 * the 2^53 space. A node whose own next term would pass `MAX_TERM` refuses to campaign and says so.
 */

/** The largest term or epoch that can be sent (JSON numbers are exact up to here). */
export const MAX_TERM = Number.MAX_SAFE_INTEGER

/** How far above the highest known term a term from the wire may be and still be believed. */
export const MAX_TERM_JUMP = 2 ** 32

/** Whether a term or epoch that arrived on the wire may be believed, given the highest one known. */
export function believableTerm(known: number, incoming: number): boolean {
  return Number.isSafeInteger(incoming) && incoming >= 0 && incoming - known <= MAX_TERM_JUMP
}

/** Whether a node at `term` may start the next one. */
export function canAdvanceTerm(term: number): boolean {
  return term < MAX_TERM
}
