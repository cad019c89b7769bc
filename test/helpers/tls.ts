/**
 * A throw-away certificate authority for the store TLS tests: a CA, a server certificate for
 * 127.0.0.1/localhost and a client certificate, each as a file and as PEM text (made by TestPki in
 * ./certs.ts, with openssl). `close()` removes the directory (keys included).
 */
import { readFileSync } from 'node:fs'
import { TestPki } from './certs.js'

export interface Pem {
  /** The file's path. */
  file: string
  /** Its PEM text. */
  pem: string
}

export class TestCa {
  private constructor(
    private readonly pki: TestPki,
    readonly ca: Pem,
    readonly server: { cert: Pem; key: Pem },
    readonly client: { cert: Pem; key: Pem },
  ) {}

  /** The directory the files are in. */
  get dir(): string {
    return this.pki.dir
  }

  /** Makes a CA and, signed by it, a server (SAN 127.0.0.1, localhost) and a client certificate. */
  static make(name = 'ballot-test'): TestCa {
    const pki = new TestPki()
    try {
      const ca = pki.ca(name)
      const server = pki.node('server', name, { ips: ['127.0.0.1'], dns: ['localhost'] })
      const client = pki.node('client', name)
      const pem = (file: string): Pem => ({ file, pem: readFileSync(file, 'utf8') })
      return new TestCa(
        pki,
        pem(ca),
        { cert: pem(server.cert), key: pem(server.key) },
        { cert: pem(client.cert), key: pem(client.key) },
      )
    } catch (err) {
      pki.remove()
      throw err
    }
  }

  close(): void {
    this.pki.remove()
  }
}
