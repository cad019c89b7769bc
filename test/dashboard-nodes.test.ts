/**
 * Each node's own dashboard (GET /), in a real browser (Debian's Chromium), for raft, bully and lease
 * nodes: one leader card, read-only without an HTTP token, the resign control only for a client that
 * holds the token; the page says so plainly when its node loses its peers or its process is gone, and
 * reconnects by itself when the node is back. The page and its assets are small, come only from the
 * node, and never carry the token.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Browser } from 'playwright-core'
import { launchBrowser, openPage, roles, until, waitForLeaderCard, waitForRole } from './helpers/browser.js'
import { DaemonCluster, DaemonProc, waitForAsync } from './helpers/daemon.js'
import { EtcdServer } from './helpers/etcd-server.js'
import { freePorts } from './helpers/raft-cluster.js'

let browser: Browser
const clusters: DaemonCluster[] = []
before(async () => {
  browser = await launchBrowser()
})
after(async () => {
  await browser?.close()
  for (const c of clusters) await c.close()
})

async function cluster(size: number): Promise<DaemonCluster> {
  const c = await DaemonCluster.create(size)
  clusters.push(c)
  return c
}

const proc = (c: DaemonCluster, id: string) => c.procs.get(id) as DaemonProc
/**
 * Raft's default timings (the helper's are the fast profile's): a leader on a loaded machine keeps its
 * lease through a page's few clicks instead of losing it to a late heartbeat.
 */
const STEADY = ['--timing', 'default']
/** A failed connection to a node that is down is the browser's own console error; nothing else is. */
const onlyNetworkErrors = (errors: string[]) =>
  errors.filter(
    (e) =>
      !/Failed to load resource: net::ERR_(CONNECTION_REFUSED|INCOMPLETE_CHUNKED_ENCODING|EMPTY_RESPONSE)/.test(
        e,
      ),
  )

/**
 * The page of the node that leads, once that page shows its own node leading. A loaded machine may
 * move leadership meanwhile: then the new leader's page is opened instead.
 */
async function leaderPage(c: DaemonCluster, fragment = '') {
  return waitForAsync(
    "the leader's own page showing it leading",
    async () => {
      const lead = await c.waitForAgreement()
      const w = await openPage(browser, `http://${proc(c, lead.id).http}/${fragment}`)
      try {
        await waitForRole(w.page, lead.id, 'leader', undefined, 10_000)
        return { w, id: lead.id }
      } catch {
        await w.page.close()
        return undefined
      }
    },
    60_000,
  )
}

describe("a node's dashboard, in Chromium", () => {
  test('raft without a token: read-only; says when the node is cut off, then gone; reconnects by itself', async () => {
    const c = await cluster(3)
    for (const m of c.members) c.start(m.id, [...STEADY, '--tags', `zone=z${m.id.slice(1)}`])
    await c.waitForAgreement()
    const n1 = proc(c, 'n1')
    // The page and its assets: from the node itself, small, locked down by CSP, no controls.
    const page = await n1.get('/')
    assert.equal(page.status, 200)
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'.*connect-src 'self'/)
    assert.match(page.body, /data-controls="none"/)
    let bytes = page.body.length
    for (const a of ['/dashboard.js', '/dashboard.css', '/favicon.svg']) {
      const r = await n1.get(a)
      assert.equal(r.status, 200, a)
      bytes += r.body.length
    }
    assert.ok(bytes < 100_000, `the whole page is ${bytes} bytes`)
    assert.doesNotMatch(page.body, /https?:\/\/(?!www\.w3\.org)/, 'nothing is fetched from elsewhere')

    const w = await openPage(browser, `http://${n1.http}/`)
    await waitForLeaderCard(w.page)
    assert.deepEqual(Object.keys(await roles(w.page)).sort(), ['n1', 'n2', 'n3'])
    await w.page.waitForSelector('[data-node-id="n2"] .tags span:text("zone=z2")')
    assert.equal(await w.page.locator('button[data-action]:visible').count(), 0, 'no control without a token')
    assert.equal(await w.page.locator('#unlock:visible').count(), 0, 'no token to unlock with')
    await w.shot('node-1-raft')

    proc(c, 'n2').kill()
    proc(c, 'n3').kill()
    await w.page.waitForSelector('#banner:visible:text("cannot reach any other member")')
    await waitForRole(w.page, 'n2', 'down')
    await w.shot('node-2-cut-off')

    n1.kill()
    await w.page.waitForSelector('#banner:visible:text("Lost the connection to n1")')
    await w.page.waitForSelector('#headline:text("n1 is not answering")')
    await w.shot('node-3-gone')

    for (const m of c.members) c.start(m.id, STEADY)
    await w.page.waitForSelector('#link[data-state="live"]', { timeout: 60_000 })
    await waitForLeaderCard(w.page, { timeoutMs: 60_000 })
    await w.page.waitForSelector('#banner', { state: 'hidden' })
    await w.shot('node-4-back')
    assert.deepEqual(onlyNetworkErrors(w.errors), [])
  })

  test('raft with a token: controls only for a client that holds it, and resign hands over', async () => {
    const token = 'dashboard-token-0123'
    const c = await cluster(3)
    for (const m of c.members) c.start(m.id, [...STEADY, '--http-token', token])
    const lead = await c.waitForAgreement()
    const leader = proc(c, lead.id)
    const html = await leader.get('/')
    assert.match(html.body, /data-controls="token"/)
    assert.ok(!html.body.includes(token), 'the page never carries the token')

    // Without the token: the way to give it, and no control.
    const { w: bare } = await leaderPage(c)
    await bare.page.waitForSelector('#unlock', { state: 'visible' })
    assert.equal(await bare.page.locator('button[data-action]:visible').count(), 0)
    await bare.page.close()

    // A wrong token: the node refuses, and the page forgets it.
    const { w: wrong } = await leaderPage(c, '#token=not-the-token')
    await wrong.page.click('[data-self="true"] button[data-action="resign"]')
    await wrong.page.waitForSelector('#notice:text("refused")')
    assert.equal(await wrong.page.locator('button[data-action]:visible').count(), 0)
    await wrong.page.close()

    const { w, id } = await leaderPage(c, `#token=${encodeURIComponent(token)}`)
    assert.equal(new URL(w.page.url()).hash, '', 'the token leaves the address bar')
    await w.page.waitForSelector(`[data-node-id="${id}"] button[data-action="resign"]`, { state: 'visible' })
    assert.ok(!(await w.page.content()).includes(token))
    await w.shot('node-5-token')
    await w.page.click(`[data-node-id="${id}"] button[data-action="resign"]`)
    const next = await waitForLeaderCard(w.page, { not: id })
    assert.notEqual(next, id)
    await w.page.waitForSelector('#chart g[data-after="hand-over"]')
    await w.shot('node-6-resigned')
    assert.deepEqual(w.errors, [])
  })

  test('bully: the highest pid leads on the page, and the next one when it dies', async () => {
    const c = await cluster(3)
    c.members.forEach((m, i) => {
      c.start(m.id, ['--algo', 'bully', '--pid', String(i + 1)])
    })
    await c.waitForAgreement()
    const w = await openPage(browser, `http://${proc(c, 'n1').http}/`)
    // Bully promises that the highest live node ends up leading; a lower one may claim first.
    await waitForRole(w.page, 'n3', 'leader', undefined, 60_000)
    assert.equal(await waitForLeaderCard(w.page), 'n3')
    await w.page.waitForSelector('#algo:text("bully")')
    await w.shot('node-7-bully')
    proc(c, 'n3').kill()
    await waitForRole(w.page, 'n2', 'leader', undefined, 60_000) // the next highest, in the end
    assert.equal(await waitForLeaderCard(w.page, { not: 'n3' }), 'n2')
    await waitForRole(w.page, 'n3', 'down')
    assert.deepEqual(w.errors, [])
  })

  test('lease on etcd: the candidates in line, the head leads', async () => {
    const etcd = await EtcdServer.start()
    const c = await cluster(0)
    try {
      const ports = await freePorts(2)
      const store = ['--store', etcd.url, '--election', 'dashboard', '--ttl', '2s']
      const candidate = (id: string, port: number | undefined) => {
        const http = `127.0.0.1:${port}`
        const p = new DaemonProc(id, http, [
          'run',
          '--id',
          id,
          '--http',
          http,
          '--log-format',
          'json',
          ...store,
        ])
        c.procs.set(id, p)
        return p
      }
      const a = candidate('a', ports[0])
      await waitForAsync('a to lead', async () => (await a.leader())?.status === 200)
      const b = candidate('b', ports[1])
      await waitForAsync('b to answer', async () => (await b.leader()) !== undefined)
      const w = await openPage(browser, `http://${b.http}/`)
      assert.equal(await waitForLeaderCard(w.page), 'a')
      await until('b in line', async () => (await roles(w.page)).b === 'follower')
      await w.page.waitForSelector('[data-node-id="b"] .sub:text("#2 in line")')
      await w.page.waitForSelector('#algo:text("lease")')
      await w.shot('node-8-lease')
      assert.deepEqual(w.errors, [])
    } finally {
      for (const p of c.procs.values()) p.kill('SIGKILL')
      await Promise.all([...c.procs.values()].map((p) => p.waitExit().catch(() => undefined)))
      c.procs.clear()
      await etcd.close()
    }
  })
})
