/**
 * TLS between members: the certificate, key and CA a node presents and trusts, read and checked once,
 * and the words both ends use to say why a TLS connection was refused.
 *
 * TLS between members is always mutual: each end presents a certificate and accepts only certificates
 * signed by the CA given (`ca`), on inbound and outbound connections alike. Host names and addresses in
 * certificates are not checked: the CA is the cluster's boundary of trust, so give the cluster a CA of
 * its own (any certificate that CA signs may join).
 * @module
 */

import { createPrivateKey, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import tls from 'node:tls'
import { z } from 'zod'
import { InvalidOptionsError } from '../errors.js'

/**
 * TLS settings of a node (`tls` in RaftElection and BullyElection options; `--tls-cert`, `--tls-key`,
 * `--tls-ca` for `ballot run`). Each value is the path of a PEM file, or the PEM text itself (a string
 * starting with `-----BEGIN`).
 */
export interface TlsOptions {
  /** This node's certificate (PEM), signed by `ca`; may be followed by intermediate certificates. */
  cert: string
  /** The certificate's private key (PEM, unencrypted). */
  key: string
  /** The CA certificate(s) (PEM) that every member's certificate must be signed by. */
  ca: string
}

/** TLS material read and checked: what the transport uses. */
export interface TlsMaterial {
  cert: Buffer
  key: Buffer
  ca: Buffer
  /** This node's own certificate, for checks of its dates. */
  certificate: X509Certificate
}

const pemOrPath = z.string({ error: 'must be a file path or PEM text' }).min(1, 'must not be empty')
const tlsSchema = z.strictObject({ cert: pemOrPath, key: pemOrPath, ca: pemOrPath })

function readPem(value: string, field: string): Buffer {
  if (value.trimStart().startsWith('-----BEGIN')) return Buffer.from(value)
  try {
    return readFileSync(value)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    throw new InvalidOptionsError(field, `cannot read ${value}: ${e.code ?? e.message}`)
  }
}

/**
 * Reads and checks the `tls` option: three fields, each a readable PEM file (or PEM text), a
 * certificate and a CA that parse, and a key that belongs to the certificate. Throws one
 * InvalidOptionsError naming the field (`tls.cert`, `tls.key`, `tls.ca`).
 */
export function loadTls(value: unknown, field = 'tls'): TlsMaterial {
  const parsed = tlsSchema.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0] as z.core.$ZodIssue
    const at = issue.path.length > 0 ? `${field}.${issue.path.join('.')}` : field
    const message =
      issue.code === 'unrecognized_keys'
        ? `unknown option ${issue.keys.join(', ')}; known: cert, key, ca`
        : issue.path.length === 0
          ? 'must be an object { cert, key, ca } (file paths or PEM text)'
          : issue.code === 'invalid_type' && issue.input === undefined
            ? 'required (TLS between members is mutual: give cert, key and ca together)'
            : issue.message
    throw new InvalidOptionsError(at, message)
  }
  const { cert: certOpt, key: keyOpt, ca: caOpt } = parsed.data
  const cert = readPem(certOpt, `${field}.cert`)
  const key = readPem(keyOpt, `${field}.key`)
  const ca = readPem(caOpt, `${field}.ca`)
  let certificate: X509Certificate
  try {
    certificate = new X509Certificate(cert)
  } catch {
    throw new InvalidOptionsError(`${field}.cert`, `${describe(certOpt)} holds no PEM certificate`)
  }
  try {
    new X509Certificate(ca)
  } catch {
    throw new InvalidOptionsError(`${field}.ca`, `${describe(caOpt)} holds no PEM certificate`)
  }
  let privateKey: ReturnType<typeof createPrivateKey>
  try {
    privateKey = createPrivateKey(key)
  } catch {
    throw new InvalidOptionsError(
      `${field}.key`,
      `${describe(keyOpt)} holds no PEM private key (an encrypted key is not supported)`,
    )
  }
  if (!certificate.checkPrivateKey(privateKey))
    throw new InvalidOptionsError(
      `${field}.key`,
      `${describe(keyOpt)} is not the key of ${describe(certOpt)}`,
    )
  try {
    tls.createSecureContext({ cert, key, ca })
  } catch (err) {
    throw new InvalidOptionsError(field, `OpenSSL refused the material: ${(err as Error).message}`)
  }
  return { cert, key, ca, certificate }
}

function describe(value: string): string {
  return value.trimStart().startsWith('-----BEGIN') ? 'the PEM text' : value
}

/** Why this node's own certificate cannot be accepted now, if it cannot (checked at start). */
export function ownCertificateProblem(m: TlsMaterial, nowMs: number): string | undefined {
  if (Date.parse(m.certificate.validTo) < nowMs) return 'OWN_CERT_EXPIRED'
  if (Date.parse(m.certificate.validFrom) > nowMs) return 'OWN_CERT_NOT_YET_VALID'
  return undefined
}

/** Plain words for the verification codes a refused certificate most often gets. */
const REASONS: Record<string, string> = {
  CERT_HAS_EXPIRED: 'the certificate has expired',
  CERT_NOT_YET_VALID: 'the certificate is not yet valid',
  NO_CERTIFICATE: 'no certificate was presented',
  SELF_SIGNED_CERT_IN_CHAIN: 'the certificate is not signed by our CA',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the certificate is self-signed, not signed by our CA',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the certificate is not signed by our CA',
  UNABLE_TO_GET_ISSUER_CERT: 'the certificate is not signed by our CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the certificate is not signed by our CA',
  CERT_SIGNATURE_FAILURE: 'the certificate signature does not verify',
  CERT_REVOKED: 'the certificate is revoked',
  NOT_TLS: 'the peer spoke plain TCP to a TLS port (is TLS set up on it?)',
  TLS_REQUIRED: 'the port requires TLS (set --tls-cert, --tls-key and --tls-ca, or `tls`)',
  TLS_NOT_CONFIGURED: 'the peer has no TLS set up, and this node dialled it with TLS',
  HANDSHAKE: 'the TLS handshake broke off',
  OWN_CERT_EXPIRED: "this node's certificate has expired: peers will refuse it",
  OWN_CERT_NOT_YET_VALID: "this node's certificate is not yet valid: peers will refuse it",
}

/** "CERT_HAS_EXPIRED (the certificate has expired)". */
export function explainTlsReason(reason: string): string {
  const words = REASONS[reason]
  return words ? `${reason} (${words})` : reason
}
