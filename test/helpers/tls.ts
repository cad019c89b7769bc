/**
 * A throw-away certificate authority made with openssl in a temporary directory: a CA, a server
 * certificate for 127.0.0.1/localhost and a client certificate, each as a file and as PEM text.
 * `close()` removes the directory (keys included).
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { removeTempDir, tempDir } from './services.js'

export interface Pem {
  /** The file's path. */
  file: string
  /** Its PEM text. */
  pem: string
}

export class TestCa {
  private constructor(
    readonly dir: string,
    readonly ca: Pem,
    readonly server: { cert: Pem; key: Pem },
    readonly client: { cert: Pem; key: Pem },
  ) {}

  /** Makes a CA and, signed by it, a server (SAN 127.0.0.1, localhost) and a client certificate. */
  static make(name = 'ballot-test'): TestCa {
    const dir = tempDir('tls')
    try {
      const f = (n: string) => join(dir, n)
      const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' })
      ssl(
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '2',
        '-subj',
        `/CN=${name} CA`,
        '-keyout',
        f('ca.key'),
        '-out',
        f('ca.crt'),
      )
      const leaf = (who: string, cn: string, ext: string) => {
        writeFileSync(f(`${who}.ext`), ext)
        ssl(
          'req',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-subj',
          `/CN=${cn}`,
          '-keyout',
          f(`${who}.key`),
          '-out',
          f(`${who}.csr`),
        )
        ssl(
          'x509',
          '-req',
          '-in',
          f(`${who}.csr`),
          '-CA',
          f('ca.crt'),
          '-CAkey',
          f('ca.key'),
          '-CAcreateserial',
          '-days',
          '2',
          '-extfile',
          f(`${who}.ext`),
          '-out',
          f(`${who}.crt`),
        )
      }
      leaf(
        'server',
        'server.ballot.test',
        'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n',
      )
      leaf('client', 'client.ballot.test', 'extendedKeyUsage=clientAuth\n')
      const pem = (n: string): Pem => ({ file: f(n), pem: readFileSync(f(n), 'utf8') })
      return new TestCa(
        dir,
        pem('ca.crt'),
        { cert: pem('server.crt'), key: pem('server.key') },
        {
          cert: pem('client.crt'),
          key: pem('client.key'),
        },
      )
    } catch (err) {
      removeTempDir(dir)
      throw err
    }
  }

  close(): void {
    removeTempDir(this.dir)
  }
}
