/**
 * One latch shared by ballot and Curator's own LeaderLatch, as a user mixing the two would run it: the
 * same scenario over ZooKeeper's plain port and over TLS (`tls`: Curator with ZooKeeper's Netty client).
 */
import assert from 'node:assert/strict'
import { CuratorParticipant, type CuratorTls } from './curator.js'
import type { ScenarioContext } from './lease-scenarios.js'
import type { ZooKeeperUnderTest } from './lease-stores.js'
import { waitUntil } from './services.js'

/**
 * Curator leads and ballot names it (candidate and follower); ballot leads once Curator closes its latch; a
 * second Curator waits behind ballot, takes over on resign, and ballot leads again once it closes.
 */
export async function latchSharedWithCurator(
  s: ScenarioContext<ZooKeeperUnderTest>,
  o: { path: string; connect: string; tls?: CuratorTls },
): Promise<void> {
  const curator = async (id: string) => {
    const c = await CuratorParticipant.start(o.connect, o.path, id, 4000, o.tls)
    s.own({ close: () => c.stop('SIGKILL') })
    return c
  }
  const inLine = (c: CuratorParticipant, ids: string) =>
    waitUntil(`Curator to list ${ids}`, async () => (await c.participants()).join() === ids)

  const first = await curator('curator-1')
  await first.waitLine(/^leader$/)
  const a = s.candidate(o.path, 'ballot-a')
  const f = s.follower(o.path)
  await a.e.start()
  await f.e.start()
  await waitUntil('ballot to name Curator', () => a.e.leader()?.id === 'curator-1')
  assert.equal(a.e.isLeader(), false)
  await waitUntil('the follower to name Curator', () => f.e.leader()?.id === 'curator-1')
  await inLine(first, 'curator-1,ballot-a')
  assert.equal(await first.closeStdin(), 0)
  await waitUntil('ballot to lead', () => a.e.isLeader(), 10_000)
  await waitUntil('the follower to name ballot', () => f.e.leader()?.id === 'ballot-a')

  const second = await curator('curator-2')
  await inLine(second, 'ballot-a,curator-2')
  assert.equal(second.isLeader, false)
  await a.e.resign()
  await second.waitLine(/^leader$/)
  await waitUntil('ballot to name Curator again', () => a.e.leader()?.id === 'curator-2')
  assert.equal(a.e.isLeader(), false)
  assert.equal(await second.closeStdin(), 0)
  await waitUntil('ballot to lead again', () => a.e.isLeader(), 10_000)
  await a.e.stop()
  await f.e.stop()
}
