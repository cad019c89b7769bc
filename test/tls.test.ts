/**
 * Mutual TLS between members, with a CA and certificates made for the test (openssl, temp dir): bad
 * `tls` options and flags are refused in one line naming the field; a cluster of real `ballot run`
 * processes agrees over TLS; and a member with a certificate from another CA, an expired one, none at
 * all (no TLS), or a bare TLS client without a certificate cannot join, while both ends log why in one
 * line (code TLS, a stable reason).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import tls from 'node:tls'
import { FrameDecoder } from '../src/codec/frame.js'
import { decodeNotice } from '../src/codec/notice.js'
import { BullyElection, RaftElection } from '../src/index.js'
import { type CertFiles, TestPki } from './helpers/certs.js'
import { CLI, DaemonCluster, type DaemonProc } from './helpers/daemon.js'
import { freePorts, waitFor } from './helpers/raft-cluster.js'

let pki: TestPki
const files: Record<'n1' | 'n2' | 'n3' | 'other' | 'expired', CertFiles> = {} as never

before(() => {
  pki = new TestPki()
  pki.ca('ca')
  pki.ca('otherca')
  for (const n of ['n1', 'n2', 'n3'] as const) files[n] = pki.node(n, 'ca')
  files.other = pki.node('stranger', 'otherca')
  files.expired = pki.node('old', 'ca', { expired: true })
})
after(() => pki.remove())

const members = [
  { id: 'a', address: '127.0.0.1:1' },
  { id: 'b', address: '127.0.0.1:2' },
]

function refusal(build: () => unknown): { field: string; message: string } {
  try {
    build()
  } catch (err) {
    const e = err as { code?: string; field: string; message: string }
    assert.equal(e.code, 'INVALID_OPTIONS', e.message)
    return e
  }
  assert.fail('not refused')
}

describe('tls options', () => {
  test('each bad value is refused in one line naming the field', () => {
    const good = files.n1
    const raft = (tlsOpt: unknown) => () => new RaftElection({ id: 'a', members, tls: tlsOpt as never })
    let e = refusal(raft({ ...good, cert: join(pki.dir, 'nope.pem') }))
    assert.equal(e.field, 'tls.cert')
    assert.match(e.message, /^tls\.cert: cannot read .*nope\.pem: ENOENT$/)
    e = refusal(raft({ ...good, ca: good.key }))
    assert.equal(e.field, 'tls.ca')
    assert.match(e.message, /holds no PEM certificate/)
    e = refusal(raft({ ...good, key: files.n2.key }))
    assert.equal(e.field, 'tls.key')
    assert.match(e.message, /is not the key of/)
    e = refusal(raft({ cert: good.cert, key: good.key }))
    assert.equal(e.field, 'tls.ca')
    assert.match(e.message, /required .*mutual/)
    e = refusal(raft({ ...good, crt: 'x' }))
    assert.equal(e.field, 'tls')
    assert.match(e.message, /unknown option crt/)
    e = refusal(raft('yes'))
    assert.equal(e.field, 'tls')
    e = refusal(() => new BullyElection({ multicast: {}, tls: good }))
    assert.equal(e.field, 'tls')
    assert.match(e.message, /multicast cannot use TLS/)
    // PEM text works as well as a path.
    new RaftElection({
      id: 'a',
      members,
      tls: { cert: readFileSync(good.cert, 'utf8'), key: good.key, ca: good.ca },
    })
  })

  test('the flags are refused in one line naming the flag', () => {
    const ballot = (args: string[]) =>
      spawnSync(process.execPath, [CLI, 'run', '--nodes', '127.0.0.1:7001', '--port', '7001', ...args], {
        encoding: 'utf8',
        timeout: 20_000,
      })
    const g = files.n1
    let r = ballot(['--tls-cert', join(pki.dir, 'missing.pem'), '--tls-key', g.key, '--tls-ca', g.ca])
    assert.equal(r.status, 2, r.stderr)
    assert.match(r.stderr, /^ballot: --tls-cert: cannot read .*missing\.pem: ENOENT\n$/)
    r = ballot(['--tls-cert', g.cert, '--tls-key', g.key])
    assert.equal(r.status, 2, r.stderr)
    assert.match(r.stderr, /^ballot: --tls-ca: required with --tls-cert, --tls-key and --tls-ca/)
    r = ballot(['--tls-cert', g.cert, '--tls-key', files.n2.key, '--tls-ca', g.ca])
    assert.equal(r.status, 2, r.stderr)
    assert.match(r.stderr, /^ballot: --tls-key: .* is not the key of /)
    r = ballot([
      '--algo',
      'bully',
      '--multicast',
      '239.255.41.17:9999',
      '--tls-cert',
      g.cert,
      '--tls-key',
      g.key,
      '--tls-ca',
      g.ca,
    ])
    assert.equal(r.status, 2, r.stderr)
    assert.match(r.stderr, /^ballot: --tls-cert: multicast cannot use TLS/)
  })
})

describe('a TLS cluster of ballot processes', () => {
  let c: DaemonCluster
  before(async () => {
    c = await DaemonCluster.create(3, { timing: 'default' })
  })
  after(() => c.close())

  const tlsFlags = (f: CertFiles) => ['--tls-cert', f.cert, '--tls-key', f.key, '--tls-ca', f.ca]
  /** The TLS problems a daemon logged ('election error' lines with code TLS). */
  const tlsLines = (p: DaemonProc) => p.logs.filter((l) => l.code === 'TLS')
  const saidBy = (procs: DaemonProc[], reason: RegExp, text: RegExp) =>
    procs.flatMap(tlsLines).find((l) => reason.test(String(l.reason)) && text.test(String(l.err)))

  test('good certificates: the members agree; bad ones cannot join and both ends say why', async () => {
    const n1 = c.start('n1', tlsFlags(files.n1))
    const n2 = c.start('n2', tlsFlags(files.n2))
    const first = await c.waitForAgreement(() => [n1, n2])
    const good = [n1, n2]

    const variants: Array<{
      name: string
      flags: string[]
      /** What n3 logs about the others. */
      n3: Array<[RegExp, RegExp]>
      /** What n1 or n2 logs about n3. */
      members: Array<[RegExp, RegExp]>
    }> = [
      {
        name: 'a certificate from another CA',
        flags: tlsFlags(files.other),
        // Each end refuses the other's certificate, on inbound and outbound connections alike.
        n3: [
          [/UNABLE_TO|SELF_SIGNED/, /^refused member n[12] at .*CN=n[12].*not signed by our CA/],
          [/UNABLE_TO|SELF_SIGNED/, /^refused a TLS connection from .*CN=n[12].*not signed by our CA/],
        ],
        members: [
          [/UNABLE_TO|SELF_SIGNED/, /^refused a TLS connection from .*CN=stranger.*not signed by our CA/],
          [/UNABLE_TO|SELF_SIGNED/, /^refused member n3 at .*CN=stranger.*not signed by our CA/],
        ],
      },
      {
        name: 'an expired certificate',
        flags: tlsFlags(files.expired),
        n3: [
          [/^OWN_CERT_EXPIRED$/, /this node's TLS certificate .* has expired/],
          [/^CERT_HAS_EXPIRED$/, /^member n[12] at .* refused our TLS certificate: CERT_HAS_EXPIRED/],
        ],
        members: [
          [/^CERT_HAS_EXPIRED$/, /^refused a TLS connection from .*CN=old.*has expired/],
          [/^CERT_HAS_EXPIRED$/, /^refused member n3 at .*CN=old.*has expired/],
        ],
      },
      {
        name: 'no certificate (no TLS at all)',
        flags: [],
        n3: [
          [/^TLS_REQUIRED$/, /^member n[12] at .* refused our connection: TLS_REQUIRED/],
          [/^TLS_NOT_CONFIGURED$/, /^refused a TLS connection from .*this node has no TLS set up/],
        ],
        members: [
          [/^NOT_TLS$/, /^refused a connection from 127\.0\.0\.1:\d+: NOT_TLS/],
          [/^TLS_NOT_CONFIGURED$/, /^TLS handshake with member n3 at .* failed/],
        ],
      },
    ]
    for (const v of variants) {
      const n3 = c.start('n3', v.flags)
      for (const [reason, text] of v.n3)
        await waitFor(`n3 (${v.name}) to log ${reason} ${text}`, () => saidBy([n3], reason, text))
      for (const [reason, text] of v.members)
        await waitFor(`n1 or n2 to log ${reason} ${text} about n3 (${v.name})`, () =>
          saidBy(good, reason, text),
        )
      // n3 never heard a leader: alone, it has no majority, and nobody's messages reached it.
      assert.equal((await n3.leader())?.status === 200, false, `n3 (${v.name}) names no leader`)
      assert.ok(
        !n3.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('leader ')),
        `n3 (${v.name}) never named a leader`,
      )
      // Each line is one JSON line with the reason: nothing else to parse.
      for (const l of [...tlsLines(n3), ...good.flatMap(tlsLines)]) assert.equal(typeof l.reason, 'string')
      n3.kill('SIGKILL')
      await n3.waitExit()
      for (const p of good) p.logs.length = 0
    }

    // A bare TLS client without a certificate: refused, told so in a notice, and logged.
    const heard = await new Promise<string | undefined>((resolve) => {
      const sock = tls.connect({
        host: '127.0.0.1',
        port: c.members[0]?.port as number,
        ca: readFileSync(files.n1.ca),
        checkServerIdentity: () => undefined,
      })
      const d = new FrameDecoder(64)
      let said: string | undefined
      sock.on('data', (chunk: Buffer) => {
        d.append(chunk)
        const f = d.next()
        if (f instanceof Buffer) said = decodeNotice(f)
      })
      sock.on('error', () => {})
      sock.on('close', () => resolve(said))
    })
    assert.equal(heard, 'NO_CERTIFICATE')
    await waitFor('n1 to log a client without a certificate', () =>
      saidBy([n1], /^NO_CERTIFICATE$/, /refused a TLS connection from .*no certificate was presented/),
    )

    // The cluster never changed its mind, and a good n3 joins it.
    assert.deepEqual(await c.agreed([n1, n2]), first, c.history())
    const n3 = c.start('n3', tlsFlags(files.n3))
    const all = await c.waitForAgreement(() => [n1, n2, n3])
    assert.equal(all.id, first.id)
    assert.deepEqual(tlsLines(n3), [], 'a good member logs no TLS problem')
  })
})

describe('bully over TLS', () => {
  test('three nodes with certificates from the cluster CA agree on the highest pid', async (t) => {
    const ports = await freePorts(3)
    const members = ports.map((p) => ({ address: `127.0.0.1:${p}` }))
    const certs = [files.n1, files.n2, files.n3]
    const nodes = members.map(
      (m, i) =>
        new BullyElection({
          pid: i + 1,
          listen: m.address,
          members,
          tls: certs[i] as CertFiles,
          timing: 'default',
        }),
    )
    const errors: string[] = []
    for (const n of nodes) n.on('error', (err) => errors.push(err.message))
    t.after(() => Promise.all(nodes.map((n) => n.stop({ handover: false }))))
    await Promise.all(nodes.map((n) => n.start()))
    await waitFor('all three to name the highest pid', () =>
      nodes.every((n) => n.leader()?.id === members[2]?.address),
    )
    assert.deepEqual(errors, [], 'no TLS problem between good members')
  })
})
