/**
 * `--store` URLs: `etcd://[user:password@]host:port[,host:port...]`. Credentials may also come apart
 * (flags, BALLOT_STORE_USER / BALLOT_STORE_PASSWORD); they are never part of what is logged or printed.
 */
import { InvalidOptionsError } from '../errors.js'
import type { LeaseBackend } from './backend.js'
import { EtcdBackend } from './stores/etcd.js'

/** A parsed `--store` URL. */
export interface StoreUrl {
  /** Which store. */
  scheme: 'etcd'
  /** Its endpoints, host:port. */
  hosts: string[]
  /** The user name from the URL, if any. */
  username?: string
  /** The password from the URL, if any (never printed). */
  password?: string
}

const SCHEMES = ['etcd'] as const
const HOST_PORT = /^(\[[0-9a-fA-F:]+\]|[^:\s/@,[\]]+):(\d{1,5})$/

/** Parses a store URL; throws InvalidOptionsError naming `field` (the password never in the message). */
export function parseStoreUrl(url: string, field = '--store'): StoreUrl {
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/.exec(url.trim())
  if (!m)
    throw new InvalidOptionsError(
      field,
      `expected etcd://host:port[,host:port], got "${redactStoreUrl(url)}"`,
    )
  const scheme = m[1] as string
  if (!(SCHEMES as readonly string[]).includes(scheme))
    throw new InvalidOptionsError(field, `unknown store "${scheme}://" (supported: ${SCHEMES.join(', ')})`)
  let rest = (m[2] as string).replace(/\/+$/, '')
  let username: string | undefined
  let password: string | undefined
  const at = rest.lastIndexOf('@')
  if (at >= 0) {
    const creds = rest.slice(0, at)
    rest = rest.slice(at + 1)
    const colon = creds.indexOf(':')
    username = decodeURIComponent(colon >= 0 ? creds.slice(0, colon) : creds)
    password = colon >= 0 ? decodeURIComponent(creds.slice(colon + 1)) : undefined
    if (!username) throw new InvalidOptionsError(field, 'the user name before "@" is empty')
  }
  const hosts = rest.split(',').map((h) => h.trim())
  for (const h of hosts) {
    const hp = HOST_PORT.exec(h)
    if (!hp || Number(hp[2]) < 1 || Number(hp[2]) > 65535)
      throw new InvalidOptionsError(field, `expected host:port in ${scheme}://..., got "${h}"`)
  }
  return { scheme: 'etcd', hosts, username, password }
}

/** The URL with any password replaced by "***", for messages. */
export function redactStoreUrl(url: string): string {
  return url.replace(/([^:/@\s]*):[^@/\s]*@/, '$1:***@')
}

/** What `createBackend()` needs besides the URL. */
export interface BackendFactoryOptions {
  /** The election's name in the store. */
  election: string
  /** User name, winning over the URL's. */
  username?: string | undefined
  /** Password, winning over the URL's. */
  password?: string | undefined
}

/** The backend for a parsed store URL (credentials given apart win over those in the URL). */
export function createBackend(store: StoreUrl, opts: BackendFactoryOptions): LeaseBackend {
  return new EtcdBackend({
    hosts: store.hosts,
    election: opts.election,
    username: opts.username ?? store.username,
    password: opts.password ?? store.password,
  })
}
