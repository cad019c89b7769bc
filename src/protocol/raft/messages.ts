/**
 * Raft election messages. The schema is the single source of truth: the codec checks every decoded
 * message against it, and the TypeScript type is inferred from it.
 */
import { z } from 'zod'

const term = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)
const tags = z.record(z.string().max(64), z.string().max(256)).refine((t) => Object.keys(t).length <= 32, {
  message: 'at most 32 tags',
})

export const raftMessageSchema = z.discriminatedUnion('t', [
  /** Sent when a connection opens: who I am and my tags. */
  z.object({ t: z.literal('hello'), term, kind: z.enum(['voter', 'observer']), tags }),
  /** "Would you vote for me in term `term`?" (pre-vote: changes nobody's term). */
  z.object({ t: z.literal('prevote'), term }),
  z.object({ t: z.literal('prevote-resp'), term, granted: z.boolean() }),
  /** A real vote request; `transfer` marks a hand-over that voters honour even while they follow a leader. */
  z.object({ t: z.literal('vote'), term, transfer: z.boolean() }),
  /**
   * `promiseMs`: how much longer (by the voter's clock) the voter had promised an earlier leader not to
   * vote, when it granted this vote anyway (a crash hint, a restart). The winner's lease waits it out.
   */
  z.object({
    t: z.literal('vote-resp'),
    term,
    granted: z.boolean(),
    promiseMs: z.number().finite().nonnegative().max(3_600_000).optional(),
  }),
  /** Leader heartbeat; `sent` is the leader's own clock, echoed back so it can time its lease. */
  z.object({ t: z.literal('hb'), term, sent: z.number().finite() }),
  z.object({ t: z.literal('hb-resp'), term, sent: z.number().finite() }),
  /** From the leader to its chosen successor: campaign now, skipping pre-vote. */
  z.object({ t: z.literal('timeout-now'), term }),
  /**
   * From a leader handing over to every other member: `to` is about to campaign; do not compete with it
   * when this leader's connection drops a moment later.
   */
  z.object({ t: z.literal('handover'), term, to: z.string().min(1).max(256) }),
])

export type RaftMessage = z.infer<typeof raftMessageSchema>

/** What a raft node must keep across a crash so that it never votes twice in one term. */
export const raftHardStateSchema = z.object({
  term,
  votedFor: z.string().optional(),
})

export type RaftHardState = z.infer<typeof raftHardStateSchema>
