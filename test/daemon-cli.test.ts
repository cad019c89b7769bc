/**
 * The command line: bad flags, environment and config are refused with one line naming the setting
 * (exit 2), and `ballot demo` starts a local cluster, names a leader and stops every node it started.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { CLI } from './helpers/daemon.js'
import { freePorts, waitFor } from './helpers/raft-cluster.js'

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
    [
      'an unknown algorithm',
      ['run', '--algo', 'paxos', '--nodes', '127.0.0.1:1'],
      {},
      /^ballot: --algo: must be one of "raft", "bully", "lease", got "paxos"$/m,
    ],
    [
      'an unknown timing profile',
      ['run', '--timing', 'slow', '--nodes', '127.0.0.1:1'],
      {},
      /^ballot: --timing: must be one of "default", "fast", got "slow"$/m,
    ],
    [
      'an unknown algorithm in sim, in the same style',
      ['sim', '--algo', 'paxos'],
      {},
      /^ballot: --algo: must be one of "bully", "lease", "raft", got "paxos"$/m,
    ],
    ['an unknown flag', ['run', '--bogus'], {}, /^ballot: --bogus: unknown option; see --help$/m],
    [
      'a misspelt flag',
      ['run', '--nodez', 'x'],
      {},
      /^ballot: --nodez: unknown option \(did you mean --nodes\?\)/,
    ],
    ['an unknown command', ['frobnicate'], {}, /^ballot: frobnicate: unknown command; known: run, exec/],
    ['a flag without its value', ['leader', '--http'], {}, /^ballot: --http: needs a value/],
    ['no members for exec', ['exec', '--', 'true'], {}, /^ballot: --nodes: /],
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
      /^ballot: --http: must be host:port, got "nope"$/m,
    ],
    ['a bad simulator flag', ['sim', '--voters', 'x'], {}, /^ballot: --voters: must be an integer/],
  ]
  for (const [what, args, env, pattern] of cases) {
    test(`refuses ${what} in one line, exit 2`, () => {
      const r = ballot(args, env)
      assert.equal(r.status, 2, r.stderr)
      assert.match(r.stderr, pattern)
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`)
    })
  }

  test('a library option refused is named by its flag: --data-dir that is a file, --nodes sharing an address', () => {
    const file = join(dir, 'not-a-dir')
    writeFileSync(file, 'x')
    const r = ballot(['run', '--data-dir', file])
    assert.equal(r.status, 2, r.stderr)
    assert.match(
      r.stderr,
      /^ballot: --data-dir: cannot use ".*not-a-dir" as the data directory: it exists and is not a directory\n$/,
    )
    const twice = ballot(['run', '--nodes', 'a=127.0.0.1:7401,b=127.0.0.1:7401', '--id', 'a'])
    assert.equal(twice.status, 2, twice.stderr)
    assert.match(twice.stderr, /^ballot: --nodes: .*127\.0\.0\.1:7401 is also the address of/)
  })

  test('--version prints the package version', () => {
    const r = ballot(['--version'])
    assert.equal(r.status, 0)
    assert.equal(
      r.stdout.trim(),
      JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version,
    )
  })

  test('a node that cannot be reached: one line naming the address and the cause, exit 3 (not 1, "no leader")', async () => {
    const [free] = await freePorts(1)
    // Port 1 as in the issue (fetch refuses it as a "bad port"; the clients use node:http, which says
    // what really happened), and a free port nothing listens on.
    for (const [port, command] of [
      [1, 'leader'],
      [free, 'leader'],
      [free, 'status'],
    ] as const) {
      const r = ballot([command, '--http', `127.0.0.1:${port}`])
      assert.equal(r.status, 3, r.stderr)
      assert.match(
        r.stderr,
        new RegExp(
          `^ballot: cannot reach http://127.0.0.1:${port}/${command}: connection refused.*\\(ECONNREFUSED\\)\n$`,
        ),
      )
    }
  })

  test('watch says it cannot connect, keeps trying visibly, and gives up after --timeout (exit 3)', async () => {
    const [port] = await freePorts(1)
    const r = ballot(['watch', '--http', `127.0.0.1:${port}`, '--timeout', '2500ms'])
    assert.equal(r.status, 3, r.stderr)
    const lines = r.stderr.trim().split('\n')
    assert.ok(lines.length >= 2, `tried more than once: ${r.stderr}`)
    assert.match(
      lines[0] ?? '',
      /^ballot: cannot reach http:\/\/127\.0\.0\.1:\d+\/events: .*ECONNREFUSED.*; retrying in 1 s \(attempt 1\)$/,
    )
    assert.match(lines.at(-1) ?? '', /gave up after --timeout 2500ms$/)
  })

  test('sim and demo count nodes with --voters; --nodes still works there, said to be deprecated', () => {
    const r = ballot(['sim', '--voters', '3', '--runs', '2', '--seed', '1', '--json'])
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stderr, '')
    const old = ballot(['sim', '--nodes', '3', '--runs', '2', '--seed', '1', '--json'])
    assert.equal(old.status, 0, old.stderr)
    const runs = (text: string) => {
      const { runsPerSecond: _r, seconds: _s, ...rest } = JSON.parse(text)
      return rest
    }
    assert.deepEqual(runs(old.stdout), runs(r.stdout), 'the same runs')
    assert.match(old.stderr, /--nodes is deprecated here .*use --voters/)
  })

  test('ballot run with no flags: a one-node group at once, and where its HTTP API is', async () => {
    const [port, http] = await freePorts(2)
    // Ports from the environment only (no flags), so the test does not depend on 8117 and 8080 being free.
    const node = spawn(process.execPath, [CLI, 'run'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        BALLOT_PORT: String(port),
        BALLOT_HTTP: `127.0.0.1:${http}`,
        BALLOT_LOG_LEVEL: 'warn',
      },
    })
    let err = ''
    node.stderr.on('data', (d: Buffer) => {
      err += d.toString()
    })
    let exited = false
    node.once('exit', () => {
      exited = true
    })
    try {
      await waitFor('the start-up line', () => /HTTP API at/.test(err), 30_000)
      assert.match(
        err,
        new RegExp(
          `^ballot: a one-node raft group on 127.0.0.1:${port} \\(no --nodes given\\); HTTP API at http://127.0.0.1:${http}/ \\(try: ballot leader --http 127.0.0.1:${http}\\)`,
          'm',
        ),
      )
      let leader = ballot(['leader', '--http', `127.0.0.1:${http}`])
      for (let i = 0; i < 100 && leader.status !== 0; i++) {
        await new Promise((r) => setTimeout(r, 100))
        leader = ballot(['leader', '--http', `127.0.0.1:${http}`])
      }
      assert.equal(leader.status, 0, leader.stderr)
      assert.equal(leader.stdout, `127.0.0.1:${port}\n`)
      const status = ballot(['status', '--http', `127.0.0.1:${http}`])
      assert.equal(status.status, 0, status.stderr)
      assert.match(status.stdout, /^as seen by 127.0.0.1:\d+, the leader/m)
      assert.match(status.stdout, /ROLE \(AS SEEN\)\s+TERM SEEN\s+HEARD BY/)
      node.kill('SIGTERM')
      await waitFor('the node to exit', () => exited, 30_000)
      assert.equal(node.exitCode, 0)
    } finally {
      if (!exited) node.kill('SIGKILL')
    }
  })

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
    const demo = spawn(process.execPath, [CLI, 'demo', '--voters', '5', '--timing', 'fast'], {
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
