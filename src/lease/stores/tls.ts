/**
 * TLS to a store (etcd's gRPC, Consul's HTTPS API): PEM contents, never file names, so the library
 * reads nothing itself; the CLI reads the files named by --store-ca/--store-cert/--store-key. None of
 * it is ever logged or put in an error message.
 */
import { InvalidOptionsError } from '../../errors.js'

/** PEM text (or bytes) of the certificates and key a store client presents and trusts. */
export interface StoreTls {
  /** CA certificate(s) to trust for the store's certificate. Default: the system's roots. */
  ca?: string | Buffer | undefined
  /** Client certificate (chain), for a store that asks for one (mutual TLS). Needs `key`. */
  cert?: string | Buffer | undefined
  /** The client certificate's private key. Needs `cert`. */
  key?: string | Buffer | undefined
}

/** The same TLS options as Buffers, checked: cert and key come together. */
export function checkStoreTls(tls: StoreTls, field = 'tls'): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  if ((tls.cert === undefined) !== (tls.key === undefined))
    throw new InvalidOptionsError(field, 'a client certificate and its key come together (cert and key)')
  const out: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {}
  for (const name of ['ca', 'cert', 'key'] as const) {
    const v = tls[name]
    if (v === undefined) continue
    const b = Buffer.isBuffer(v) ? v : Buffer.from(v)
    if (!b.includes('-----BEGIN ')) throw new InvalidOptionsError(`${field}.${name}`, 'is not PEM text')
    out[name] = b
  }
  return out
}
