/**
 * From the store settings of `ballot run|exec` (a DaemonConfig) or of `ballot leader|watch --store` to
 * a lease backend and the TTL to ask for: one place, so every command reads the URL, the credentials and
 * the per-store defaults the same way.
 */
import { readFileSync } from 'node:fs'
import { InvalidOptionsError } from '../errors.js'
import type { LeaseBackend } from '../lease/backend.js'
import { createBackend, defaultStoreTtlMs, parseStoreUrl } from '../lease/store-url.js'
import type { StoreTls } from '../lease/stores/tls.js'

export interface StoreSettings {
  store: string
  election: string
  storeUser?: string
  storePassword?: string
  storeToken?: string
  ttl?: number
  lockDelay?: number
  schema?: string
  storeCa?: string
  storeCert?: string
  storeKey?: string
}

/** Reads the TLS files named by --store-ca/--store-cert/--store-key (their contents never in a message). */
function readTls(s: StoreSettings): StoreTls | undefined {
  if (s.storeCa === undefined && s.storeCert === undefined && s.storeKey === undefined) return undefined
  const read = (flag: string, file: string | undefined) => {
    if (file === undefined) return undefined
    try {
      return readFileSync(file)
    } catch (err) {
      throw new InvalidOptionsError(
        flag,
        `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      )
    }
  }
  return {
    ca: read('--store-ca', s.storeCa),
    cert: read('--store-cert', s.storeCert),
    key: read('--store-key', s.storeKey),
  }
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
    tls: readTls(s),
  })
  return { backend, ttlMs }
}
