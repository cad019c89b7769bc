/**
 * Notices: the one thing a connection's receiving end may say back to the dialler, or a dialler may say
 * before it hangs up: "I refuse this connection, because CODE". They carry no secret and no state,
 * only a stable reason word (an OpenSSL verification code such as CERT_HAS_EXPIRED, or TLS_REQUIRED),
 * so that both ends of a refused TLS connection can say why in their logs. A TLS 1.3 server checks
 * the client's certificate after the client thinks the handshake is done, and Node never sends a TLS
 * alert for a certificate it refuses; without a notice the refused side would only see a hang-up.
 *
 * A notice is the payload of one frame: byte 0 is 0 (never a valid envelope version), then the reason
 * in ASCII, at most 64 characters of A–Z, 0–9 and _. Anything else is not a notice.
 *
 * The same mark alone (a payload of one zero byte) is a link acknowledgement: the receiving end of a
 * connection says "your bytes are arriving", when the dialler asked for it in its hello. A dialler that
 * sent and saw no acknowledgement for long knows the connection stopped moving data (see transport/tcp.ts).
 */

/** The first byte of a notice frame's payload (envelopes start with their format version, 1). */
export const NOTICE_MARK = 0
const REASON = /^[A-Z0-9_]{1,64}$/

/** A notice frame payload that refuses the connection for `reason` (a stable word, see above). */
export function encodeNotice(reason: string): Buffer {
  const word = REASON.test(reason) ? reason : 'REFUSED'
  return Buffer.concat([Buffer.from([NOTICE_MARK]), Buffer.from(word, 'ascii')])
}

/** The reason a notice payload carries, or undefined when the payload is not a well-formed notice. */
export function decodeNotice(payload: Buffer): string | undefined {
  if (payload.length < 2 || payload.length > 65 || payload[0] !== NOTICE_MARK) return undefined
  const word = payload.subarray(1).toString('latin1')
  return REASON.test(word) ? word : undefined
}

/** A whole frame (length prefix included) acknowledging that data arrives on this connection. */
export const ACK_FRAME: Buffer = Buffer.from([0, 0, 0, 1, NOTICE_MARK])

/** True for the payload of a link acknowledgement. */
export function isAck(payload: Buffer): boolean {
  return payload.length === 1 && payload[0] === NOTICE_MARK
}
