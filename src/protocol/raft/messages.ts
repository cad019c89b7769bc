/**
 * Raft election messages. The schema is the single source of truth: the codec checks every decoded
 * message against it, and the TypeScript type is inferred from it.
 */
import { z } from 'zod'

const term = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)
const tags = z.record(z.string().max(64), z.string().max(256)).refine((t) => Object.keys(t).length <= 32, {
  message: 'at most 32 tags',
})

/** A node id as it travels in messages. */
const memberId = z.string().min(1).max(128)

/** A heartbeat's number, unique among the heartbeats one leader sends in one term. */
const seq = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)

export const raftMessageSchema = z.discriminatedUnion('t', [
  /**
   * Sent when a connection opens: who I am, my tags, and the voters I count quorums over (sorted), so
   * that two nodes started with different member lists refuse each other instead of computing
   * different majorities.
   */
  z.object({
    t: z.literal('hello'),
    term,
    kind: z.enum(['voter', 'observer']),
    tags,
    voters: z.array(memberId).max(1024),
  }),
  /** "Would you vote for me in term `term`?" (pre-vote: changes nobody's term). */
  z.object({ t: z.literal('prevote'), term }),
  z.object({ t: z.literal('prevote-resp'), term, granted: z.boolean() }),
  /** A real vote request; `transfer` marks a hand-over that voters honour even while they follow a leader. */
  z.object({ t: z.literal('vote'), term, transfer: z.boolean() }),
  /**
   * `promiseMs`: how much longer (by the voter's clock) the voter had promised an earlier leader not to
   * vote, when it granted this vote anyway (a crash hint, a restart). The winner's lease waits it out.
   * A promise never lasts longer than electionTimeoutMin, and the receiver caps it there.
   */
  z.object({
    t: z.literal('vote-resp'),
    term,
    granted: z.boolean(),
    promiseMs: z.number().finite().nonnegative().max(3_600_000).optional(),
  }),
  /**
   * Leader heartbeat. It carries no time: the leader keeps its own send time under `seq`, and only a
   * reply naming a heartbeat it sent in its current term renews its lease.
   */
  z.object({ t: z.literal('hb'), term, seq }),
  /**
   * Reply to a heartbeat: `term` is the responder's term, `seq` the heartbeat's, and `ack` says the
   * responder followed it (so promised not to vote for another node for electionTimeoutMin). A refusal
   * (`ack: false`) tells a stale leader the newer term.
   */
  z.object({ t: z.literal('hb-resp'), term, seq, ack: z.boolean() }),
  /**
   * From the leader to its chosen successor: campaign now, skipping pre-vote. `waitMs`: how long the
   * leader itself still had to wait before its own lease could start (it won on broken promises); the
   * successor inherits that wait.
   */
  z.object({
    t: z.literal('timeout-now'),
    term,
    waitMs: z.number().finite().nonnegative().max(3_600_000),
  }),
  /**
   * From a leader handing over to every other member: `to` is about to campaign; do not compete with it
   * when this leader's connection drops a moment later.
   */
  z.object({ t: z.literal('handover'), term, to: memberId }),
])

export type RaftMessage = z.infer<typeof raftMessageSchema>

/** What a raft node must keep across a crash so that it never votes twice in one term. */
export const raftHardStateSchema = z.object({
  term,
  votedFor: z.string().optional(),
})

export type RaftHardState = z.infer<typeof raftHardStateSchema>
