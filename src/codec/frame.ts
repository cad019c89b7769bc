/**
 * Length-prefixed frames for stream transports: a 4-byte big-endian length, then that many bytes.
 * A length over the bound cannot be skipped safely on a stream (the peer may be hostile or out of
 * step), so the decoder reports it and the transport closes the connection.
 */

export const LENGTH_PREFIX_BYTES = 4

export function encodeFrame(payload: Buffer): Buffer {
  const header = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES)
  header.writeUInt32BE(payload.length, 0)
  return Buffer.concat([header, payload])
}

export type FrameResult =
  | { ok: true; frames: Buffer[] }
  | { ok: false; frames: Buffer[]; reason: 'oversized' }

export class FrameDecoder {
  private buffered: Buffer = Buffer.alloc(0)

  constructor(private readonly maxFrameBytes: number) {}

  /** Appends bytes read from the stream and returns every frame now complete. */
  push(chunk: Buffer): FrameResult {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
    const frames: Buffer[] = []
    while (this.buffered.length >= LENGTH_PREFIX_BYTES) {
      const length = this.buffered.readUInt32BE(0)
      if (length > this.maxFrameBytes) {
        this.buffered = Buffer.alloc(0)
        return { ok: false, frames, reason: 'oversized' }
      }
      if (this.buffered.length < LENGTH_PREFIX_BYTES + length) break
      frames.push(this.buffered.subarray(LENGTH_PREFIX_BYTES, LENGTH_PREFIX_BYTES + length))
      this.buffered = this.buffered.subarray(LENGTH_PREFIX_BYTES + length)
    }
    return { ok: true, frames }
  }
}
