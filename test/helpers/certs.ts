/**
 * A throw-away PKI for TLS tests, made with the openssl command in a temporary directory: a CA, node
 * certificates it signs (with the node's IP addresses as subject alternative names), and the bad ones a
 * test needs: a certificate from another CA, and one that has expired (signed with `openssl ca` and
 * explicit start and end dates in the past). `remove()` deletes the directory.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface CertFiles {
  cert: string
  key: string
  ca: string
}

function openssl(cwd: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
}

/** A new P-256 key (unencrypted) written to `<name>.key`, as `openssl req` takes it. */
const newKey = (name: string) => [
  '-newkey',
  'ec',
  '-pkeyopt',
  'ec_paramgen_curve:P-256',
  '-nodes',
  '-keyout',
  `${name}.key`,
]

/** 2020-01-01 to 2020-02-01, as `openssl ca` wants dates (YYYYMMDDHHMMSSZ). */
const EXPIRED = { start: '20200101000000Z', end: '20200201000000Z' }

export class TestPki {
  readonly dir = mkdtempSync(join(tmpdir(), 'ballot-pki-'))
  private serial = 1

  /** Makes a CA named `name` (files name.pem, name.key). */
  ca(name: string): string {
    openssl(
      this.dir,
      'req',
      '-x509',
      ...newKey(name),
      '-out',
      `${name}.pem`,
      '-days',
      '30',
      '-subj',
      `/CN=${name}`,
    )
    return join(this.dir, `${name}.pem`)
  }

  /**
   * A node certificate `name` signed by CA `caName`, valid now (or expired, with `expired`), for the
   * given IP addresses. Returns the files a node needs, with `ca` being the signing CA.
   */
  node(
    name: string,
    caName: string,
    opts: { ips?: string[]; dns?: string[]; expired?: boolean } = {},
  ): CertFiles {
    const ips = opts.ips ?? ['127.0.0.1']
    const names = [...ips.map((ip) => `IP:${ip}`), ...(opts.dns ?? []).map((d) => `DNS:${d}`)]
    openssl(this.dir, 'req', ...newKey(name), '-out', `${name}.csr`, '-subj', `/CN=${name}`)
    const ext = join(this.dir, `${name}.ext`)
    writeFileSync(
      ext,
      [
        'basicConstraints=CA:FALSE',
        'keyUsage=digitalSignature,keyEncipherment',
        'extendedKeyUsage=serverAuth,clientAuth',
        `subjectAltName=${names.join(',')}`,
        '',
      ].join('\n'),
    )
    if (opts.expired) {
      // `openssl x509 -req` (OpenSSL 3.0) cannot backdate; `openssl ca` takes explicit dates.
      const db = join(this.dir, `${name}-db`)
      writeFileSync(`${db}.index`, '')
      writeFileSync(`${db}.serial`, `${(1000 + this.serial++).toString(16).padStart(4, '0')}\n`)
      const conf = join(this.dir, `${name}-ca.cnf`)
      writeFileSync(
        conf,
        [
          '[ca]',
          'default_ca = test',
          '[test]',
          `database = ${db}.index`,
          `serial = ${db}.serial`,
          `new_certs_dir = ${this.dir}`,
          'default_md = sha256',
          'policy = any',
          'copy_extensions = none',
          'unique_subject = no',
          '[any]',
          'commonName = supplied',
          '',
        ].join('\n'),
      )
      openssl(
        this.dir,
        'ca',
        '-batch',
        '-config',
        conf,
        '-cert',
        `${caName}.pem`,
        '-keyfile',
        `${caName}.key`,
        '-in',
        `${name}.csr`,
        '-out',
        `${name}.pem`,
        '-startdate',
        EXPIRED.start,
        '-enddate',
        EXPIRED.end,
        '-extfile',
        ext,
        '-notext',
      )
    } else {
      openssl(
        this.dir,
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        `${caName}.pem`,
        '-CAkey',
        `${caName}.key`,
        '-set_serial',
        String(this.serial++),
        '-out',
        `${name}.pem`,
        '-days',
        '30',
        '-extfile',
        ext,
      )
    }
    return {
      cert: join(this.dir, `${name}.pem`),
      key: join(this.dir, `${name}.key`),
      ca: join(this.dir, `${caName}.pem`),
    }
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true })
  }
}
