/**
 * Bully over UDP multicast, as MultiBully runs on a LAN: three hosts (network namespaces on a bridge
 * that the test makes and always removes), one node per host, real multicast on each host's eth0.
 */
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { BullyCluster } from './helpers/bully-cluster.js'
import { NetnsLab } from './helpers/netns.js'

test('multicast across three hosts: highest pid leads, kill -9 elects the next, return and cut-off rejoin', async () => {
  const lab = NetnsLab.create(3)
  const c = new BullyCluster()
  after(async () => {
    await c.close()
    await lab.remove()
  })
  const host = (i: number) => lab.hosts[i - 1] as (typeof lab.hosts)[number]
  // The default (LAN) timing: the test is about who leads, not about speed. With 'fast' (a leader
  // silent for 100 ms is replaced) a loaded machine makes followers claim between heartbeats.
  const start = (i: number) =>
    c.start(
      `h${i}`,
      { pid: 100 + i, multicast: { iface: 'eth0' }, key: 'lan-key', timing: 'default' },
      (command, args) => lab.spawn(host(i), command, args, { stdio: ['pipe', 'pipe', 'inherit'] }),
    )
  try {
    for (const i of [1, 2, 3]) start(i)

    const first = await c.waitForLeader('103@10.200.0.3')
    assert.equal(first.address, '10.200.0.3', "the announced address is the leader's namespace address")

    c.nodes.get('h3')?.kill('SIGKILL')
    await c.nodes.get('h3')?.waitExit()
    const second = await c.waitForLeader('102@10.200.0.2')
    assert.equal(second.address, '10.200.0.2')
    assert.ok(second.token > first.token)

    // The highest comes back: it takes over with a newer epoch, through one claim, not a storm. One
    // claim when it hears the leader within its start-up listening; two when it does not (a loaded
    // machine can run its timer before it reads the leader's answer): a claim above the epoch it kept
    // on disk, then one above the leader's.
    const back = start(3)
    const third = await c.waitForLeader('103@10.200.0.3')
    assert.ok(third.token > second.token, `a newer epoch: ${second.token} → ${third.token}`)
    const claims = new Set(
      back.events.filter((e) => e.ev === 'change' && e.role === 'leader').map((e) => e.token),
    )
    assert.ok(claims.size <= 2, `no storm: the returning node claimed epochs ${[...claims].join(', ')}`)

    // Cut h1 off: alone, it elects itself (bully cannot do better under a partition) ...
    lab.cut(host(1))
    const h1 = c.nodes.get('h1') as NonNullable<ReturnType<typeof c.nodes.get>>
    await c.waitForLeader('101@10.200.0.1', () => [h1])
    // ... and when its link is back it rejoins, and everyone names the highest again.
    lab.restore(host(1))
    const healed = await c.waitForLeader('103@10.200.0.3')
    assert.ok(healed.token > third.token, 'the leader claimed an epoch newer than the cut-off side used')
  } catch (err) {
    process.stderr.write(`${c.history()}\n`)
    throw err
  }
})
