/**
 * What a lease candidate (LeaseElection) and a lease follower (LeaseFollower) do alike with their
 * backend: connect it within a deadline, with one clear error (the backend closed) when that fails, and
 * close it on stop; and how a backend's failure becomes a library error.
 */
import { BallotError, StoreUnavailableError } from '../errors.js'
import type { BackendEvents, LeaseBackend } from './backend.js'

/** Runs `work` with a timeout; rejects with StoreUnavailableError when the store does not answer. */
export async function withTimeout<T>(
  store: string,
  what: string,
  ms: number,
  work: () => Promise<T>,
  target?: string,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const where = target ? `${store} ${target}` : store
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new StoreUnavailableError(store, `${where}: no answer to ${what} within ${ms} ms`)),
      ms,
    )
  })
  try {
    return await Promise.race([work(), timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** A backend's failure as a library error: a BallotError as is, anything else STORE_UNAVAILABLE. */
export function asStoreError(store: string, err: unknown): Error {
  if (err instanceof BallotError) return err
  return new StoreUnavailableError(store, `${store}: ${(err as Error)?.message ?? String(err)}`, {
    cause: err,
  })
}

/**
 * Connects `backend` (one round trip that also checks the election's data) within `timeoutMs`. On
 * failure the backend is closed and the error, a StoreError in one line, is thrown: what start()
 * reports for a bad address, credentials or election.
 */
export async function connectBackend(
  backend: LeaseBackend,
  events: BackendEvents,
  opts: { watchOnly: boolean; timeoutMs: number | undefined },
): Promise<void> {
  try {
    await withTimeout(
      backend.store,
      'connect',
      opts.timeoutMs ?? 5000,
      () => backend.connect(events, { watchOnly: opts.watchOnly }),
      backend.target,
    )
  } catch (err) {
    await backend.close().catch(() => undefined)
    throw asStoreError(backend.store, err)
  }
}

/** Closes `backend` on stop; a failure goes to `report` (the election's error stream), never thrown. */
export async function closeBackend(backend: LeaseBackend, report: (err: Error) => void): Promise<void> {
  await backend.close().catch((err: unknown) => report(asStoreError(backend.store, err)))
}
