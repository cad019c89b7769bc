/**
 * Real bully processes for tests and benchmarks, over TCP on loopback or multicast (on loopback or in
 * network namespaces): start, watch their event lines, wait for agreement, kill by PID. `close()` kills
 * every process started here and removes every data directory, whatever happened in between.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { BullyElectionOptions } from '../../src/index.js'
import { RaftProcess, waitFor } from './raft-cluster.js'

export const BULLY_FIXTURE = new URL('../fixtures/bully-node.ts', import.meta.url).pathname

export class BullyCluster {
  /** Nodes by the name the test gave them (not necessarily their protocol id). */
  readonly nodes = new Map<string, RaftProcess>()
  readonly dataRoot = mkdtempSync(join(tmpdir(), 'ballot-bully-'))

  /** Starts a node; `launch` runs it elsewhere (in a namespace, say). */
  start(
    name: string,
    options: BullyElectionOptions,
    launch?: (command: string, args: string[]) => ChildProcess,
  ): RaftProcess {
    const node = new RaftProcess(
      name,
      { timing: 'fast', dataDir: join(this.dataRoot, name), ...options },
      BULLY_FIXTURE,
      launch,
    )
    this.nodes.set(name, node)
    return node
  }

  live(): RaftProcess[] {
    return [...this.nodes.values()].filter((n) => !n.exited)
  }

  /** The protocol id a node reported when it started. */
  idOf(name: string): string | undefined {
    return this.nodes.get(name)?.events.find((e) => e.ev === 'started')?.id as string | undefined
  }

  /**
   * The leader (protocol id, address, token) every given node names, once they all agree and none of
   * them has ever claimed an epoch as large as the agreed one. Such a claim is one the leader has not
   * answered yet (by claiming again above it, or by following it): the agreement is about to move, and
   * a test that took it for the outcome would compare tokens with one that is already stale. (Epochs
   * are dealt out in per-node slots, so two claims never share one.)
   */
  agreedLeader(among: RaftProcess[] = this.live()) {
    const first = among[0]?.lastChange()
    if (!first?.leader) return undefined
    for (const n of among) {
      const c = n.lastChange()
      if (c?.leader !== first.leader || c?.token !== first.token) return undefined
    }
    const token = first.token as number
    for (const n of among) {
      for (const e of n.events)
        if (
          e.ev === 'change' &&
          e.role === 'leader' &&
          e.leader !== first.leader &&
          (e.token as number) >= token
        )
          return undefined
    }
    return { id: first.leader as string, address: first.address as string, token }
  }

  async waitForLeader(id: string | undefined, among?: () => RaftProcess[], timeoutMs = 60_000) {
    return waitFor(
      `agreement on ${id ?? 'a leader'}`,
      () => {
        const a = this.agreedLeader(among?.())
        return a && (id === undefined || a.id === id) ? a : undefined
      },
      timeoutMs,
    )
  }

  /** Each node's changes (time, role, leader@epoch), oldest first: for failure messages. */
  history(): string {
    const lines: string[] = []
    for (const [name, n] of this.nodes) {
      const changes = n.events
        .filter((e) => e.ev === 'change' || e.ev === 'started')
        .map((e) =>
          e.ev === 'started'
            ? `${e.t.toFixed(0)} started`
            : `${e.t.toFixed(0)} ${e.role} ${e.leader}@${e.token}`,
        )
      lines.push(`${name} (pid ${n.pid}${n.exited ? ', exited' : ''}): ${changes.join(', ')}`)
    }
    return lines.join('\n')
  }

  async close(): Promise<void> {
    for (const n of this.nodes.values()) n.kill('SIGKILL')
    await Promise.all([...this.nodes.values()].map((n) => n.waitExit().catch(() => undefined)))
    rmSync(this.dataRoot, { recursive: true, force: true })
  }
}
