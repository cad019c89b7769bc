/**
 * A burst of TCP connections to one address: open `count` connections at once, wait until each is
 * either established or closed, then reset every one still open at once (RST, not FIN). This is the
 * load that once stalled a leader's event loop and cost it its leadership (issue 14).
 */
import net from 'node:net'

export interface BurstResult {
  /** Connections the server accepted (the handshake completed). */
  established: number
  /** Connections refused or timed out (ECONNREFUSED, ETIMEDOUT, ...). */
  failed: number
  /** Established connections the server had closed before the reset (a capped server closes the excess). */
  closedByServer: number
  /** Connections reset by us at the end. */
  reset: number
  /** From the first connect to the last one settled (ms). */
  openMs: number
}

export async function httpBurst(
  host: string,
  port: number,
  count: number,
  timeoutMs = 60_000,
): Promise<BurstResult> {
  const sockets: net.Socket[] = []
  let established = 0
  let failed = 0
  let pending = count
  const t0 = performance.now()
  const settled = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs)
    const settle = () => {
      if (--pending === 0) {
        clearTimeout(timer)
        resolve()
      }
    }
    for (let i = 0; i < count; i++) {
      const s = net.connect({ host, port })
      sockets.push(s)
      let done = false
      s.once('connect', () => {
        established++
        if (!done) {
          done = true
          settle()
        }
      })
      s.on('error', () => {
        if (!done) {
          failed++
          done = true
          settle()
        }
      })
      s.once('close', () => {
        if (!done) {
          failed++
          done = true
          settle()
        }
      })
    }
  })
  await settled
  const openMs = performance.now() - t0
  let reset = 0
  for (const s of sockets) {
    if (!s.destroyed) {
      s.resetAndDestroy()
      reset++
    }
  }
  return { established, failed, closedByServer: established - reset, reset, openMs }
}
