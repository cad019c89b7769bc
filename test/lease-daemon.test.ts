// The built CLI on a real etcd: `ballot run --store` with its HTTP API, `ballot leader|watch --store`
// reading the store directly, `ballot exec --store` never running two children at once, credentials
// that work and never appear in any output, and bad settings refused in one line.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { CLI, DaemonProc, waitForAsync } from './helpers/daemon.js'
import { EtcdServer, Tracked } from './helpers/etcd-server.js'
import { assertInTurn, type ChildRun, readRuns } from './helpers/exec-runs.js'
import { freePorts, waitFor } from './helpers/raft-cluster.js'

const CHILD = new URL('./fixtures/exec-child.mjs', import.meta.url).pathname
let etcd: EtcdServer
const dir = mkdtempSync(join(tmpdir(), 'ballot-lease-daemon-'))
const procs: DaemonProc[] = []
const runs: Tracked[] = []

before(async () => {
  etcd = await EtcdServer.start()
})
after(async () => {
  for (const p of procs) p.kill('SIGKILL')
  await Promise.all(procs.map((p) => p.waitExit().catch(() => undefined)))
  await Promise.all(runs.map((r) => r.stop('SIGKILL')))
  await etcd?.close()
  rmSync(dir, { recursive: true, force: true })
})

async function daemon(name: string, args: string[], command: 'run' | 'exec' = 'run', tail: string[] = []) {
  const [port] = await freePorts(1)
  const http = `127.0.0.1:${port}`
  const p = new DaemonProc(name, http, [
    command,
    '--id',
    name,
    '--http',
    http,
    '--log-format',
    'json',
    ...args,
    ...(tail.length ? ['--', ...tail] : []),
  ])
  procs.push(p)
  return p
}

/** Runs the CLI to completion: exit code, stdout, stderr. */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const t = new Tracked(
    spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    }),
  )
  runs.push(t)
  await t.exit
  return { code: t.child.exitCode, stdout: t.stdout, stderr: t.stderr }
}

test('ballot run --store: one leader, its address on /leader, the line on /status; leader and watch read the store', async () => {
  const election = 'daemon-run'
  const store = ['--store', etcd.url, '--election', election, '--ttl', '2s', '--http-token', 'secret-token']
  const a = await daemon('a', store)
  await waitForAsync('a to lead', async () => (await a.leader())?.status === 200)
  const b = await daemon('b', store)
  await waitForAsync('b to name a', async () => (await b.leaderJson())?.id === 'a')
  assert.equal((await b.leader())?.body.trim(), a.http, 'a leader is named by its --http address')
  const status = JSON.parse((await a.get('/status')).body) as {
    role: string
    isLeader: boolean
    members: Array<{ id: string; role: string }>
  }
  assert.equal(status.isLeader, true)
  await waitForAsync('the leader to list both', async () => {
    const s = JSON.parse((await a.get('/status')).body) as typeof status
    return s.members.map((m) => m.id).join() === 'a,b'
  })
  assert.match((await a.get('/metrics')).body, /ballot_is_leader\{node="a"\} 1/)

  const leader = await cli(['leader', '--store', etcd.url, '--election', election])
  assert.equal(leader.code, 0, leader.stderr)
  assert.equal(leader.stdout.trim(), a.http)
  const json = await cli(['leader', '--json'], { BALLOT_STORE: etcd.url, BALLOT_ELECTION: election })
  assert.equal(JSON.parse(json.stdout).id, 'a')

  // watch: the current leader, then the hand-over that POST /resign starts.
  const watch = new Tracked(
    spawn(process.execPath, [CLI, 'watch', '--store', etcd.url, '--election', election], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
  runs.push(watch)
  await waitFor('watch to print the leader', () => watch.stdout.includes('leader a '))
  const res = await fetch(`http://${a.http}/resign`, {
    method: 'POST',
    headers: { Authorization: 'Bearer secret-token' },
  })
  assert.equal(res.status, 202)
  await waitFor('watch to print b', () => watch.stdout.includes('leader b '))
  await waitForAsync(
    'b to lead',
    async () => (await b.leaderJson())?.id === 'b' && (await b.leader())?.status === 200,
  )
  await watch.stop('SIGTERM')
  const lines = watch.stdout.trim().split('\n')
  assert.match(lines[0] as string, /leader a \(token \d+\) at 127\.0\.0\.1:\d+/)
  assert.match(lines.at(-1) as string, /leader b \(token \d+\)/)

  // SIGTERM: b leaves and a leads again.
  b.kill('SIGTERM')
  await b.waitExit()
  assert.equal(b.child.exitCode, 0)
  await waitForAsync(
    'a to lead again',
    async () => (await a.leaderJson())?.id === 'a' && (await a.leader())?.status === 200,
  )
  a.kill('SIGTERM')
  await a.waitExit()
  const left = await cli(['leader', '--store', etcd.url, '--election', election])
  assert.equal(left.code, 1)
  assert.equal(left.stderr.trim(), 'ballot: no leader: nobody is in the election')
})

test('ballot exec --store: never two children at once, across kill -9 and SIGTERM; tokens grow', async () => {
  const election = 'daemon-exec'
  const file = join(dir, 'runs.log')
  const args = ['--store', etcd.url, '--election', election, '--ttl', '2s', '--grace', '2000']
  const tail = [process.execPath, CHILD, file]
  const nodes = [await daemon('x1', args, 'exec', tail), await daemon('x2', args, 'exec', tail)]
  const byName = (r: ChildRun) => nodes.find((n) => n.name === r.leader) as DaemonProc
  const first = await waitForAsync('a child to run', async () => readRuns(file).at(-1))
  byName(first).kill('SIGKILL')
  const second = await waitForAsync('a child on the other node', async () => {
    const r = readRuns(file).at(-1)
    return r && r.pid !== first.pid ? r : undefined
  })
  assert.notEqual(second.leader, first.leader)
  nodes.push(await daemon('x3', args, 'exec', tail))
  await new Promise((r) => setTimeout(r, 300))
  byName(second).kill('SIGTERM')
  await byName(second).waitExit()
  const third = await waitForAsync('a child after the hand-over', async () => {
    const r = readRuns(file).at(-1)
    return r && r.pid !== second.pid ? r : undefined
  })
  assert.ok(
    readFileSync(file, 'utf8').includes(`stop ${second.pid}`),
    'the hand-over stopped the child gracefully',
  )
  assert.notEqual(third.leader, second.leader)
  await new Promise((r) => setTimeout(r, 200))
  assertInTurn(readRuns(file))
  for (const n of nodes) n.kill('SIGTERM')
  await Promise.all(nodes.map((n) => n.waitExit()))
})

test('credentials: with etcd auth on, the right password works, a wrong one is refused in one line; neither is ever printed', async () => {
  const own = await EtcdServer.start()
  try {
    for (const args of [
      ['user', 'add', 'root:r00t-pw'],
      ['auth', 'enable'],
    ]) {
      const r = await own.etcdctl(...args)
      assert.equal(r.code, 0, r.stderr)
    }
    const good = await daemon('auth-ok', [
      '--store',
      `etcd://root:r00t-pw@${own.endpoint}`,
      '--election',
      'auth',
    ])
    await waitForAsync(
      'the daemon to lead with credentials',
      async () => (await good.leader())?.status === 200,
    )
    const viaEnv = await cli(['leader', '--store', own.url, '--election', 'auth', '--store-user', 'root'], {
      BALLOT_STORE_PASSWORD: 'r00t-pw',
    })
    assert.equal(viaEnv.stdout.trim(), good.http, viaEnv.stderr)
    const bad = await cli([
      'run',
      '--store',
      `etcd://root:wr0ng-pw@${own.endpoint}`,
      '--election',
      'auth',
      '--id',
      'b',
      '--log-format',
      'json',
    ])
    assert.equal(bad.code, 1)
    const lines = bad.stderr.trim().split('\n')
    assert.match(lines.at(-1) as string, /^ballot: etcd 127\.0\.0\.1:\d+ refused: .*authentication failed/)
    good.kill('SIGTERM')
    await good.waitExit()
    const everything = [bad.stderr, bad.stdout, viaEnv.stderr, JSON.stringify(good.logs)].join('\n')
    assert.ok(!everything.includes('r00t-pw') && !everything.includes('wr0ng-pw'), 'a password was printed')
  } finally {
    await own.close()
  }
})

test('bad settings: one line naming the setting or the store, never a password', async () => {
  const [closed] = await freePorts(1)
  const cases: Array<[string[], number, RegExp]> = [
    [
      ['run', '--store', etcd.url, '--election', 'x', '--id', 'a', '--ttl', '5x'],
      2,
      /^ballot: --ttl: expected a duration/,
    ],
    [
      ['run', '--store', 'zk://h:1', '--election', 'x', '--id', 'a'],
      2,
      /^ballot: --store: unknown store "zk:\/\/"/,
    ],
    [['run', '--store', etcd.url, '--id', 'a'], 2, /^ballot: --election: required with --store/],
    [['run', '--store', etcd.url, '--election', 'x'], 2, /^ballot: --id: required with --store/],
    [
      ['run', '--store', `etcd://u:s3cret@127.0.0.1:${closed}`, '--election', 'x', '--id', 'a'],
      1,
      new RegExp(`^ballot: etcd 127\\.0\\.0\\.1:${closed} unavailable: .*ECONNREFUSED`),
    ],
  ]
  await etcd.etcdctl('put', 'foreign/x', 'not-a-candidate')
  cases.push([
    ['leader', '--store', etcd.url, '--election', 'foreign'],
    1,
    /^ballot: etcd: the election prefix "foreign\/" holds "foreign\/x", which has no lease/,
  ])
  for (const [args, code, line] of cases) {
    const r = await cli(args[0] === 'run' ? [...args, '--log-format', 'json'] : args)
    const text = r.stderr
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('{'))
    assert.equal(text.length, 1, `one line for ${args.join(' ')}: ${r.stderr}`)
    assert.match(text[0] as string, line)
    assert.equal(r.code, code, args.join(' '))
    assert.ok(!r.stderr.includes('s3cret'))
  }
})

test('without the optional etcd3 package, --store fails with one line naming it', async () => {
  // A copy of the built package whose node_modules has every dependency but etcd3.
  const root = mkdtempSync(join(tmpdir(), 'ballot-no-etcd3-'))
  try {
    const repo = new URL('..', import.meta.url).pathname
    cpSync(join(repo, 'dist'), join(root, 'dist'), { recursive: true })
    cpSync(join(repo, 'package.json'), join(root, 'package.json'))
    mkdirSync(join(root, 'node_modules'))
    for (const name of readdirSync(join(repo, 'node_modules')))
      if (name !== 'etcd3' && !name.startsWith('.'))
        symlinkSync(join(repo, 'node_modules', name), join(root, 'node_modules', name))
    const t = new Tracked(
      spawn(
        process.execPath,
        [join(root, 'dist/cli/main.js'), 'leader', '--store', etcd.url, '--election', 'x'],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    )
    runs.push(t)
    await t.exit
    const lines = t.stderr.trim().split('\n')
    assert.equal(lines.length, 1, t.stderr)
    assert.match(
      lines[0] as string,
      /^ballot: store: the etcd store needs the optional package "etcd3": run `npm install etcd3`/,
    )
    assert.equal(t.child.exitCode, 2)
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
})
