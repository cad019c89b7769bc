/**
 * The command line: bad flags, environment and config are refused with one line naming the setting
 * (exit 2), and `ballot demo` starts a local cluster, names a leader and stops every node it started.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { CLI } from './helpers/daemon.js'
import { waitFor } from './helpers/raft-cluster.js'

const dir = mkdtempSync(join(tmpdir(), 'ballot-cli-'))
after(() => rmSync(dir, { recursive: true, force: true }))

function ballot(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 20_000,
  })
  return { status: r.status, stderr: r.stderr, stdout: r.stdout }
}

describe('ballot command line', () => {
  const cases: Array<[string, string[], Record<string, string>, RegExp]> = [
    [
      'a port that is not a number',
      ['run', '--port', 'abc', '--nodes', '127.0.0.1:1'],
      {},
      /^ballot: --port: must be a port/,
    ],
    ['an unknown algorithm', ['run', '--algo', 'paxos', '--nodes', '127.0.0.1:1'], {}, /^ballot: --algo: /],
    ['an unknown flag', ['run', '--bogus'], {}, /^ballot: unknown option '--bogus'/],
    ['no members', ['run'], {}, /^ballot: --nodes: /],
    ['a member that is not host:port', ['run', '--nodes', 'a=nowhere'], {}, /^ballot: --nodes: /],
    [
      'an id not in the list',
      ['run', '--id', 'zz', '--nodes', 'a=127.0.0.1:1'],
      {},
      /^ballot: --id: "zz" is not in --nodes/,
    ],
    [
      'a bad environment variable',
      ['run', '--nodes', '127.0.0.1:1'],
      { BALLOT_TIMING: 'slow' },
      /^ballot: BALLOT_TIMING: /,
    ],
    [
      'a short key',
      ['run', '--nodes', '127.0.0.1:1', '--key', 'abc'],
      {},
      /^ballot: --key: must be at least 8/,
    ],
    [
      'multicast with raft',
      ['run', '--multicast', '239.255.41.17:9999'],
      {},
      /^ballot: --multicast: applies to --algo bully/,
    ],
    [
      'a bad --http for the leader client',
      ['leader', '--http', 'nope'],
      {},
      /^ballot: --http: expected host:port/,
    ],
    ['a bad simulator flag', ['sim', '--nodes', 'x'], {}, /^ballot: --nodes: /],
  ]
  for (const [what, args, env, pattern] of cases) {
    test(`refuses ${what} in one line, exit 2`, () => {
      const r = ballot(args, env)
      assert.equal(r.status, 2, r.stderr)
      assert.match(r.stderr, pattern)
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`)
    })
  }

  test('a config file: a bad field is named with the file, an unknown one refused, flags override it', () => {
    const bad = join(dir, 'bad.json')
    writeFileSync(bad, JSON.stringify({ nodes: ['127.0.0.1:1'], port: 99999999 }))
    const r1 = ballot(['run', '--config', bad])
    assert.equal(r1.status, 2)
    assert.match(r1.stderr, /^ballot: .*bad\.json: port: must be a port/)
    const unknown = join(dir, 'unknown.json')
    writeFileSync(unknown, JSON.stringify({ nodez: [] }))
    assert.match(ballot(['run', '--config', unknown]).stderr, /unknown\.json: nodez: unknown setting/)
    // The flag wins over the file's bad value, so the error moves on to the next problem.
    const r3 = ballot(['run', '--config', bad, '--port', '1', '--id', 'nobody'])
    assert.match(r3.stderr, /^ballot: --id: "nobody" is not in --nodes/)
    const notJson = join(dir, 'broken.json')
    writeFileSync(notJson, '{nope')
    assert.match(ballot(['run', '--config', notJson]).stderr, /^ballot: --config: .*not valid JSON/)
  })

  test('ballot demo: five nodes, a leader named, and every node stopped on SIGTERM', async () => {
    const demo = spawn(process.execPath, [CLI, 'demo', '--timing', 'fast'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    demo.stdout.on('data', (d: Buffer) => {
      out += d.toString()
    })
    let exited = false
    demo.once('exit', () => {
      exited = true
    })
    try {
      await waitFor('the demo to name a leader', () => /leader n\d \(token \d+\)/.test(out), 60_000)
      const pids = (/pids ([\d ]+)\)/.exec(out)?.[1] ?? '').split(' ').map(Number)
      assert.equal(pids.length, 5)
      demo.kill('SIGTERM')
      await waitFor('the demo to exit', () => exited, 30_000)
      assert.equal(demo.exitCode, 0)
      for (const pid of pids) {
        assert.throws(() => process.kill(pid, 0), 'every node is gone')
      }
    } finally {
      if (!exited) demo.kill('SIGKILL')
      // Whatever happened, no node the demo started may outlive the test.
      for (const pid of (/pids ([\d ]+)\)/.exec(out)?.[1] ?? '').split(' ').map(Number)) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // already gone
        }
      }
    }
  })
})
