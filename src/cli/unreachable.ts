/**
 * Reaching a node's HTTP API from the client commands (leader, status, watch), with failures a script
 * can tell apart: exit code 3 means "could not ask" (nothing listens there, no answer in time), never
 * to be confused with exit code 1, "asked, and nobody leads".
 * @module
 */

/** Exit code of a client command that could not reach the node it was pointed at. */
export const EXIT_UNREACHABLE = 3

/** A failure to reach a node: main.ts prints the message as one line and exits with `exitCode`. */
export class UnreachableError extends Error {
  readonly exitCode = EXIT_UNREACHABLE
}

const CAUSES: Record<string, string> = {
  ECONNREFUSED: 'connection refused: is a node running there with --http?',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'timed out',
  UND_ERR_SOCKET: 'the connection closed',
  UND_ERR_CONNECT_TIMEOUT: 'connect timed out',
}

/** Why a fetch failed, in a few words (fetch's own message is only "fetch failed"). */
export function fetchFailure(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } }
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no answer within ${timeoutMs} ms`
  const code = e?.cause?.code
  if (code) return `${CAUSES[code] ?? e.cause?.message ?? 'failed'} (${code})`
  return e?.cause?.message ?? e?.message ?? String(err)
}

/** GET `url`; a failure to get any answer becomes one UnreachableError naming the URL and the cause. */
export async function get(url: string, timeoutMs: number, headers: Record<string, string> = {}) {
  try {
    return await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) })
  } catch (err) {
    throw new UnreachableError(`cannot reach ${url}: ${fetchFailure(err, timeoutMs)}`)
  }
}
