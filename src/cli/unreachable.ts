/**
 * Reaching a node's HTTP API from the client commands (leader, status, watch), with failures a script
 * can tell apart: exit code 3 means "could not ask" (nothing listens there, no answer in time), never
 * to be confused with exit code 1, "asked, and nobody leads".
 * Requests go through node:http rather than fetch: fetch refuses some ports outright ("bad port", port
 * 1 among them) and hides the cause; node:http says what really happened (ECONNREFUSED, ...).
 * @module
 */
import http from 'node:http'

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

/** Why a request failed, in a few words with the system's code. */
export function fetchFailure(err: unknown, timeoutMs: number): string {
  const e = err as {
    name?: string
    message?: string
    code?: string
    cause?: { code?: string; message?: string }
  }
  if (e?.name === 'TimeoutError' || e?.code === 'ETIMEDOUT') return `no answer within ${timeoutMs} ms`
  const code = e?.code ?? e?.cause?.code
  if (code) return `${CAUSES[code] ?? e.message ?? 'failed'} (${code})`
  return e?.message ?? String(err)
}

/** An answer: its status and, for `get`, its whole body; for `open`, the body as a stream. */
export interface Answer {
  status: number
  ok: boolean
  body: http.IncomingMessage
}

/**
 * GET `url` and resolve once the answer's head is in (its body still streaming). Rejects with the
 * system's error when no answer came; `timeoutMs` bounds only the wait for the head.
 */
export function open(url: string, timeoutMs: number, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers }, (res) => {
      clearTimeout(timer)
      const status = res.statusCode ?? 0
      resolve({ status, ok: status >= 200 && status < 300, body: res })
    })
    const timer = setTimeout(
      () => req.destroy(Object.assign(new Error('timed out'), { name: 'TimeoutError' })),
      timeoutMs,
    )
    req.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}

/** GET `url`; a failure to get any answer becomes one UnreachableError naming the URL and the cause. */
export async function get(
  url: string,
  timeoutMs: number,
  headers: Record<string, string> = {},
): Promise<{ status: number; ok: boolean; text(): Promise<string> }> {
  try {
    const answer = await open(url, timeoutMs, headers)
    const chunks: Buffer[] = []
    for await (const chunk of answer.body) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks).toString('utf8')
    return { status: answer.status, ok: answer.ok, text: async () => body }
  } catch (err) {
    throw new UnreachableError(`cannot reach ${url}: ${fetchFailure(err, timeoutMs)}`)
  }
}
