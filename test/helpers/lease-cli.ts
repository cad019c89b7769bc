/**
 * The built CLI against a store, for the lease daemon tests of every store: `ballot run|exec --store`
 * daemons, one-shot `ballot leader|watch` runs, and two scenarios every store must pass the same way:
 * run/leader/watch with the HTTP API, and exec never running two children across kill -9 and SIGTERM.
 * Everything started is ended by PID in `close()`.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CLI, DaemonProc, waitForAsync } from './daemon.js'
import { Tracked } from './etcd-server.js'
import { assertInTurn, type ChildRun, readRuns } from './exec-runs.js'
import { freePorts, waitFor } from './raft-cluster.js'

const CHILD = new URL('../fixtures/exec-child.mjs', import.meta.url).pathname

export class LeaseCli {
  readonly dir = mkdtempSync(join(tmpdir(), 'ballot-lease-cli-'))
  readonly procs: DaemonProc[] = []
  readonly runs: Tracked[] = []

  /** `ballot <command> --id NAME --http <free port> --log-format json ...args [-- ...tail]`. */
  async daemon(name: string, args: string[], command: 'run' | 'exec' = 'run', tail: string[] = []) {
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
    this.procs.push(p)
    return p
  }

  /** Runs the CLI to completion: exit code, stdout, stderr. */
  async cli(args: string[], env: NodeJS.ProcessEnv = {}) {
    const t = this.spawn(args, env)
    await t.exit
    return { code: t.child.exitCode, stdout: t.stdout, stderr: t.stderr }
  }

  spawn(args: string[], env: NodeJS.ProcessEnv = {}): Tracked {
    const t = new Tracked(
      spawn(process.execPath, [CLI, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ...env },
      }),
    )
    this.runs.push(t)
    return t
  }

  async close(): Promise<void> {
    for (const p of this.procs) p.kill('SIGKILL')
    await Promise.all(this.procs.map((p) => p.waitExit().catch(() => undefined)))
    await Promise.all(this.runs.map((r) => r.stop('SIGKILL')))
    rmSync(this.dir, { recursive: true, force: true })
  }

  /**
   * `ballot run --store`: one leader, named by its --http address on /leader; the line on /status; the
   * metrics; `ballot leader --store` and `ballot watch --store` reading the store directly; POST /resign
   * handing over; SIGTERM leaving; nobody left. `store` holds --store, --election and what else the store
   * needs; `reader` the same for leader/watch (no --ttl, --lock-delay).
   */
  async runScenario(store: string[], reader: string[], timeoutMs = 30_000): Promise<void> {
    const a = await this.daemon('a', [...store, '--http-token', 'secret-token'])
    await waitForAsync('a to lead', async () => (await a.leader())?.status === 200, timeoutMs)
    const b = await this.daemon('b', [...store, '--http-token', 'secret-token'])
    await waitForAsync('b to name a', async () => (await b.leaderJson())?.id === 'a', timeoutMs)
    assert.equal((await b.leader())?.body.trim(), a.http, 'a leader is named by its --http address')
    const status = JSON.parse((await a.get('/status')).body) as { isLeader: boolean }
    assert.equal(status.isLeader, true)
    await waitForAsync(
      'the leader to list both',
      async () => {
        const s = JSON.parse((await a.get('/status')).body) as { members: Array<{ id: string }> }
        return s.members.map((m) => m.id).join() === 'a,b'
      },
      timeoutMs,
    )
    assert.match((await a.get('/metrics')).body, /ballot_is_leader\{node="a"\} 1/)
    assert.match((await b.get('/metrics')).body, /ballot_is_leader\{node="b"\} 0/)

    const leader = await this.cli(['leader', ...reader])
    assert.equal(leader.code, 0, leader.stderr)
    assert.equal(leader.stdout.trim(), a.http)
    const json = await this.cli(['leader', ...reader, '--json'])
    assert.equal(JSON.parse(json.stdout).id, 'a', json.stderr)

    const watch = this.spawn(['watch', ...reader])
    // b's own event stream (server-sent events), as for raft and bully.
    const events = this.spawn(['watch', '--http', b.http])
    await waitFor('watch to print the leader', () => watch.stdout.includes('leader a '), timeoutMs)
    await waitFor("b's events to name a", () => events.stdout.includes('leader a '), timeoutMs)
    const res = await fetch(`http://${a.http}/resign`, {
      method: 'POST',
      headers: { Authorization: 'Bearer secret-token' },
    })
    assert.equal(res.status, 202)
    await waitFor('watch to print b', () => watch.stdout.includes('leader b '), timeoutMs)
    await waitForAsync(
      'b to lead',
      async () => (await b.leaderJson())?.id === 'b' && (await b.leader())?.status === 200,
      timeoutMs,
    )
    await watch.stop('SIGTERM')
    const lines = watch.stdout.trim().split('\n')
    assert.match(lines[0] as string, /leader a \(token \d+\) at 127\.0\.0\.1:\d+/)
    assert.match(lines.at(-1) as string, /leader b \(token \d+\)/)
    await waitFor("b's events to show it leading", () => /leader +leader b /.test(events.stdout), timeoutMs)
    await events.stop('SIGTERM')

    b.kill('SIGTERM')
    await b.waitExit()
    assert.equal(b.child.exitCode, 0)
    await waitForAsync(
      'a to lead again',
      async () => (await a.leaderJson())?.id === 'a' && (await a.leader())?.status === 200,
      timeoutMs,
    )
    a.kill('SIGTERM')
    await a.waitExit()
    const left = await this.cli(['leader', ...reader])
    assert.equal(left.code, 1)
    assert.equal(left.stderr.trim(), 'ballot: no leader: nobody is in the election')
  }

  /**
   * `ballot exec --store`: never two children at once across kill -9 of the leader's daemon and SIGTERM of
   * the next; tokens grow. `failoverMs` bounds the wait after kill -9 (the store's expiry).
   */
  async execScenario(store: string[], failoverMs: number): Promise<void> {
    const file = join(this.dir, `runs-${Date.now()}.log`)
    const args = [...store, '--grace', '2000']
    const tail = [process.execPath, CHILD, file]
    const nodes = [await this.daemon('x1', args, 'exec', tail), await this.daemon('x2', args, 'exec', tail)]
    const byName = (r: ChildRun) => nodes.find((n) => n.name === r.leader) as DaemonProc
    const first = await waitForAsync('a child to run', async () => readRuns(file).at(-1), 60_000)
    byName(first).kill('SIGKILL')
    const second = await waitForAsync(
      'a child on the other node',
      async () => {
        const r = readRuns(file).at(-1)
        return r && r.pid !== first.pid ? r : undefined
      },
      failoverMs + 30_000,
    )
    assert.notEqual(second.leader, first.leader)
    nodes.push(await this.daemon('x3', args, 'exec', tail))
    await new Promise((r) => setTimeout(r, 300))
    byName(second).kill('SIGTERM')
    await byName(second).waitExit(30_000)
    const third = await waitForAsync(
      'a child after the hand-over',
      async () => {
        const r = readRuns(file).at(-1)
        return r && r.pid !== second.pid ? r : undefined
      },
      60_000,
    )
    assert.ok(
      readFileSync(file, 'utf8').includes(`stop ${second.pid}`),
      'the hand-over stopped the child gracefully',
    )
    assert.notEqual(third.leader, second.leader)
    await new Promise((r) => setTimeout(r, 200))
    assertInTurn(readRuns(file))
    for (const n of nodes) n.kill('SIGTERM')
    await Promise.all(nodes.map((n) => n.waitExit(30_000)))
  }

  /** Runs each case and checks: one line on stderr (JSON log lines aside), its text, its exit code. */
  async oneLine(
    cases: Array<[string[], number, RegExp]>,
    secrets: string[] = [],
    env: NodeJS.ProcessEnv = {},
  ) {
    for (const [args, code, line] of cases) {
      const r = await this.cli(
        args[0] === 'run' || args[0] === 'exec' ? [...args, '--log-format', 'json'] : args,
        env,
      )
      const text = r.stderr
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('{'))
      assert.equal(text.length, 1, `one line for ${args.join(' ')}: ${r.stderr}`)
      assert.match(text[0] as string, line)
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`)
      for (const s of secrets) assert.ok(!r.stderr.includes(s) && !r.stdout.includes(s), `${s} was printed`)
    }
  }
}
