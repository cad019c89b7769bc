/**
 * Does a burst of HTTP connections move the leadership? A 3-node `ballot run` cluster (the built CLI,
 * default timing), then rounds of `--connections` TCP connections to the leader's HTTP port, opened at
 * once and reset at once. Counts elections and leader changes, and reads the leader's worst event-loop
 * stall from /status.
 *
 *   npm run build && node --import tsx bench/http-burst.ts [--connections 9000] [--rounds 3] [--all]
 *     --all: the burst goes to every node at once (count / nodes each)
 */
import { parseArgs } from 'node:util'
import { DaemonCluster, type DaemonProc } from '../test/helpers/daemon.js'
import { httpBurst } from '../test/helpers/http-burst.js'
import { table } from './stats.js'

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '9000' },
    rounds: { type: 'string', default: '3' },
    nodes: { type: 'string', default: '3' },
    all: { type: 'boolean', default: false },
    'node-args': { type: 'string', default: '' },
  },
})

async function status(p: DaemonProc) {
  return JSON.parse((await p.get('/status')).body) as {
    counters: { electionsStarted: number; leaderChanges: number }
    transport: { messagesSent: number }
    eventLoop?: { maxMs: number; recentMaxMs: number }
  }
}

const c = await DaemonCluster.create(Number(args.nodes), { timing: 'default' })
const rows: Array<Record<string, string | number>> = []
try {
  const nodeArgs = (args['node-args'] as string).split(' ').filter(Boolean)
  for (const m of c.members) c.start(m.id, [], 'run', [], nodeArgs)
  for (let round = 1; round <= Number(args.rounds); round++) {
    const lead = await c.waitForAgreement(undefined, 60_000)
    const leader = c.procs.get(lead.id) as DaemonProc
    const before = await Promise.all(c.live().map(status))
    const targets = args.all ? c.live() : [leader]
    const each = Math.floor(Number(args.connections) / targets.length)
    const results = await Promise.all(
      targets.map((p) => {
        const [host, port] = p.http.split(':') as [string, string]
        return httpBurst(host, Number(port), each)
      }),
    )
    const rightAfter = await status(leader)
    // Wait until the leader has sent two election timeouts' worth of heartbeats after the burst:
    // a stall it caused would have ended in an election by then.
    const sentAfterBurst = (await status(leader)).transport.messagesSent
    const peers = c.live().length - 1
    for (;;) {
      const s = await status(leader)
      if (s.transport.messagesSent >= sentAfterBurst + 2 * 10 * peers) break
      await new Promise((r) => setTimeout(r, 100))
    }
    const after = await Promise.all(c.live().map(status))
    const now = await c.waitForAgreement(undefined, 60_000)
    const sum = (xs: typeof before, k: 'electionsStarted' | 'leaderChanges') =>
      xs.reduce((a, x) => a + x.counters[k], 0)
    rows.push({
      round,
      connections: each * targets.length,
      established: results.reduce((a, r) => a + r.established, 0),
      failed: results.reduce((a, r) => a + r.failed, 0),
      closedByServer: results.reduce((a, r) => a + r.closedByServer, 0),
      openMs: Math.round(Math.max(...results.map((r) => r.openMs))),
      elections: sum(after, 'electionsStarted') - sum(before, 'electionsStarted'),
      leaderChanged: now.id !== lead.id || now.token !== lead.token ? 'yes' : 'no',
      leaderStallMs: rightAfter.eventLoop?.recentMaxMs ?? 'n/a',
    })
    console.error(JSON.stringify(rows.at(-1)))
  }
} finally {
  await c.close()
}
console.log(table(rows))
console.log(JSON.stringify(rows))
