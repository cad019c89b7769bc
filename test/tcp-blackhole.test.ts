/**
 * Blackholes made with nftables inside network namespaces (removed with them).
 *
 * A dial begun while the peer is blackholed (its SYNs silently dropped, as by a firewall or a dead
 * route) comes up within seconds of the heal, not at the kernel's next SYN retransmission (which backs
 * off to a minute). Two hosts in network namespaces; the blackhole is an nftables rule in the listening
 * host's namespace, removed with it.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { after, test } from 'node:test'
import { NetnsLab } from './helpers/netns.js'
import { RaftProcess, waitFor } from './helpers/raft-cluster.js'

const FIXTURE = new URL('./fixtures/tcp-node.ts', import.meta.url).pathname
const RAFT_FIXTURE = new URL('./fixtures/raft-node.ts', import.meta.url).pathname
const PORT = 7411

function nft(ns: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', ns, 'nft', ...args], { encoding: 'utf8' })
}

test('a dial begun during a blackhole connects within a few seconds of the heal', async () => {
  const lab = NetnsLab.create(2)
  const nodes: RaftProcess[] = []
  after(async () => {
    for (const n of nodes) n.kill('SIGKILL')
    await Promise.all(nodes.map((n) => n.waitExit().catch(() => undefined)))
    await lab.remove()
  })
  const [h1, h2] = lab.hosts as [NetnsLab['hosts'][number], NetnsLab['hosts'][number]]
  const start = (host: typeof h1, options: object) => {
    const node = new RaftProcess(host.ns, options, FIXTURE, (command, args) =>
      lab.spawn(host, command, args, { stdio: ['pipe', 'pipe', 'inherit'] }),
    )
    nodes.push(node)
    return node
  }

  // The classic SYN backoff (1, 2, 4, 8, 16 s) on every kernel: Linux 6.5+ retries the first four
  // times at 1 s (tcp_syn_linear_timeouts), a per-namespace setting that older kernels lack.
  try {
    execFileSync('ip', ['netns', 'exec', h1.ns, 'sysctl', '-qw', 'net.ipv4.tcp_syn_linear_timeouts=0'])
  } catch {
    // an older kernel: the backoff is exponential already
  }
  const listener = start(h2, { id: 'b', listen: `${h2.ip}:${PORT}` })
  await waitFor('the listener', () => listener.events.some((e) => e.ev === 'ready'))
  nft(h2.ns, 'add', 'table', 'inet', 'blackhole')
  nft(h2.ns, 'add', 'chain', 'inet', 'blackhole', 'input', '{ type filter hook input priority 0 ; }')
  nft(h2.ns, 'add', 'rule', 'inet', 'blackhole', 'input', 'tcp', 'dport', String(PORT), 'counter', 'drop')
  const dropped = () =>
    Number(nft(h2.ns, 'list', 'table', 'inet', 'blackhole').match(/packets (\d+)/)?.[1] ?? 0)

  // 500 ms: what a raft node with the default timings gives its transport (five heartbeat intervals).
  const dialer = start(h1, {
    id: 'a',
    listen: `${h1.ip}:${PORT}`,
    peers: { b: `${h2.ip}:${PORT}` },
    connectTimeoutMs: 500,
  })
  // Five SYNs dropped: a dial without a timeout is 15 s in, and the kernel's next retransmission is
  // 16 s away (then 32 s: "about a minute").
  await waitFor('the blackhole to drop five SYNs', () => dropped() >= 5, 90_000)
  assert.equal(
    dialer.events.find((e) => e.ev === 'connected'),
    undefined,
  )
  nft(h2.ns, 'delete', 'table', 'inet', 'blackhole')
  const healedAt = Date.now()
  const connected = await waitFor(
    'the connection after the heal',
    () => dialer.events.find((e) => e.ev === 'connected'),
    60_000,
  )
  const took = connected.t - healedAt
  assert.ok(took < 5000, `connected ${took} ms after the heal`)
})

test('after a cut of the leader heals, every node names the leader soon (silent links are redialled)', async () => {
  // A connection that stopped moving data during the cut is neither timed out nor redialled by TCP:
  // the kernel's retransmission backoff (seconds, after a cut of a few seconds) would decide when the
  // returning node hears the leader. Raft redials a peer it sent to and heard nothing back from for an
  // election timeout, so after the heal a fresh connection carries the next heartbeat.
  const lab = NetnsLab.create(5)
  const nodes: RaftProcess[] = []
  after(async () => {
    for (const n of nodes) n.kill('SIGKILL')
    await Promise.all(nodes.map((n) => n.waitExit().catch(() => undefined)))
    await lab.remove()
  })
  const members = lab.hosts.map((h, i) => ({ id: `n${i + 1}`, address: `${h.ip}:${PORT}` }))
  lab.hosts.forEach((host, i) => {
    const id = `n${i + 1}`
    nodes.push(
      new RaftProcess(id, { id, members, timing: 'default' }, RAFT_FIXTURE, (command, args) =>
        lab.spawn(host, command, args, { stdio: ['pipe', 'pipe', 'inherit'] }),
      ),
    )
  })
  const agreed = (among: RaftProcess[]) => {
    const first = among[0]?.lastChange()
    if (!first?.leader) return undefined
    for (const n of among) {
      const c = n.lastChange()
      if (c?.leader !== first.leader || c?.token !== first.token) return undefined
    }
    return { id: first.leader as string, token: first.token as number }
  }
  const before = await waitFor('a leader named by all five', () => agreed(nodes))
  const oldIndex = nodes.findIndex((n) => n.id === before.id)
  const old = nodes[oldIndex] as RaftProcess
  const host = lab.hosts[oldIndex] as NetnsLab['hosts'][number]
  const others = nodes.filter((n) => n !== old)

  const cutAt = Date.now()
  nft(host.ns, 'add', 'table', 'inet', 'cut')
  nft(host.ns, 'add', 'chain', 'inet', 'cut', 'in', '{ type filter hook input priority 0 ; }')
  nft(host.ns, 'add', 'chain', 'inet', 'cut', 'out', '{ type filter hook output priority 0 ; }')
  nft(host.ns, 'add', 'rule', 'inet', 'cut', 'in', 'iifname', host.iface, 'drop')
  nft(host.ns, 'add', 'rule', 'inet', 'cut', 'out', 'oifname', host.iface, 'drop')
  const next = await waitFor('the other four to agree on a new leader', () => {
    const a = agreed(others)
    return a && a.id !== before.id ? a : undefined
  })
  await waitFor('the old leader to stop claiming', () => old.lastChange()?.role !== 'leader')
  // Hold the cut long enough for TCP's retransmission timers to back off by seconds.
  await new Promise((r) => setTimeout(r, Math.max(0, cutAt + 8000 - Date.now())))
  nft(host.ns, 'delete', 'table', 'inet', 'cut')
  const healedAt = Date.now()
  const after5 = await waitFor('all five to name one leader after the heal', () => agreed(nodes), 30_000)
  const namedAt = old.lastChange()?.t as number
  const took = Math.round(namedAt - healedAt)
  // A figure, not an assertion on time: this machine is shared and loaded.
  console.log(`heal to agreement: ${took} ms (the returning node named ${after5.id}@${after5.token})`)
  assert.deepEqual(after5, next, 'the returning node did not depose the leader (pre-vote)')
})
