/**
 * From the store settings of `ballot run|exec` (a DaemonConfig) or of `ballot leader|watch --store` to
 * a lease backend and the TTL to ask for: one place, so every command reads the URL, the credentials and
 * the per-store defaults the same way.
 */
import type { LeaseBackend } from '../lease/backend.js'
import { createBackend, defaultStoreTtlMs, parseStoreUrl } from '../lease/store-url.js'

export interface StoreSettings {
  store: string
  election: string
  storeUser?: string
  storePassword?: string
  storeToken?: string
  ttl?: number
  lockDelay?: number
  schema?: string
}

/**
 * The backend for `s`; `follower`: it will only watch (no TTL to insist on). A candidate's ZooKeeper
 * backend insists on the TTL asked: a server that would grant another fails start() in one line.
 */
export function storeBackend(s: StoreSettings, follower = false): { backend: LeaseBackend; ttlMs: number } {
  const url = parseStoreUrl(s.store, '--store')
  const ttlMs = s.ttl ?? defaultStoreTtlMs(url.scheme)
  const backend = createBackend(url, {
    election: s.election,
    username: s.storeUser,
    password: s.storePassword,
    token: s.storeToken,
    ttlMs: follower ? undefined : ttlMs,
    exactTtl: !follower,
    lockDelayMs: s.lockDelay,
    schema: s.schema,
  })
  return { backend, ttlMs }
}
