/**
 * A forger that speaks the codec: it dials a node's cluster port and sends whatever messages a test
 * gives it, in real envelopes and frames (unsigned, or signed with the key given), as any id it likes.
 * What a stranger on the network can do to a cluster without a key.
 */
import net from 'node:net'
import { z } from 'zod'
import { Codec } from '../../src/codec/envelope.js'
import { encodeFrame } from '../../src/codec/frame.js'

export interface Forged {
  /** The id the envelope claims to come from. */
  from: string
  /** A node id, or '*' (the default). */
  to?: string
  /** The protocol message, sent as it is: the forger need not respect the schema. */
  msg: unknown
}

/** Sends the messages on one connection, in order, and resolves once the connection is closed. */
export async function sendForged(
  address: string,
  messages: Forged[],
  opts: { cluster?: string; key?: string } = {},
): Promise<void> {
  const codecs = new Map<string, Codec<unknown>>()
  const codecOf = (from: string) => {
    let c = codecs.get(from)
    if (!c) {
      c = new Codec<unknown>({
        cluster: opts.cluster ?? 'ballot',
        self: from,
        schema: z.unknown(),
        key: opts.key,
      })
      codecs.set(from, c)
    }
    return c
  }
  const colon = address.lastIndexOf(':')
  const sock = net.connect({ host: address.slice(0, colon), port: Number(address.slice(colon + 1)) })
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()))
  sock.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve())
    sock.once('error', reject)
  })
  for (const m of messages) sock.write(encodeFrame(codecOf(m.from).encode(m.to ?? '*', m.msg)))
  sock.end()
  await closed
}
