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

  /**
   * `maxFrameBytes` also bounds what is held between reads: at most one partial frame, that is
   * 4 + maxFrameBytes bytes. A transport starts a connection with a small bound and raises it once the
   * peer has proved who it is (`setMaxFrameBytes`).
   */
  constructor(private maxFrameBytes: number) {}

  /** Changes the largest frame accepted from now on (frames already held are checked again). */
  setMaxFrameBytes(max: number): void {
    this.maxFrameBytes = max
  }

  /** Bytes held now, waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.buffered.length
  }

  /** Appends bytes read from the stream; take frames out with `next()`. */
  append(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
  }

  /**
   * The next complete frame, undefined when none is complete yet, or 'oversized' when the next frame
   * claims more than the bound in force (the stream cannot be resynchronised: close it). One at a time,
   * so that the bound may change between two frames of one read.
   */
  next(): Buffer | 'oversized' | undefined {
    if (this.buffered.length < LENGTH_PREFIX_BYTES) return undefined
    const length = this.buffered.readUInt32BE(0)
    if (length > this.maxFrameBytes) {
      this.buffered = Buffer.alloc(0)
      return 'oversized'
    }
    if (this.buffered.length < LENGTH_PREFIX_BYTES + length) return undefined
    const frame = this.buffered.subarray(LENGTH_PREFIX_BYTES, LENGTH_PREFIX_BYTES + length)
    this.buffered = this.buffered.subarray(LENGTH_PREFIX_BYTES + length)
    return frame
  }

  /** Appends bytes read from the stream and returns every frame now complete. */
  push(chunk: Buffer): FrameResult {
    this.append(chunk)
    const frames: Buffer[] = []
    for (;;) {
      const frame = this.next()
      if (frame === undefined) return { ok: true, frames }
      if (frame === 'oversized') return { ok: false, frames, reason: 'oversized' }
      frames.push(frame)
    }
  }
}
