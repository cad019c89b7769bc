/**
 * The dashboard in a real browser (Debian's Chromium), against `ballot demo` as a new user runs it: the
 * page shows one leader; kill -9 on the leader's card shows a new leader (how soon is printed, not judged:
 * timing figures belong in benchmarks); pause shows
 * the paused leader losing its claim and another taking over, and resume brings it back as a follower;
 * restart brings a killed node back as a follower; resign hands over. No console error on the way, and a
 * screenshot of each step in artifacts/dashboard/. The controls' guards are checked too: no key, no
 * control; a foreign Host, no answer; the key is never in the page.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { after, before, describe, test } from 'node:test'
import type { Browser } from 'playwright-core'
import {
  launchBrowser,
  openPage,
  roles,
  until,
  type WatchedPage,
  waitForHeadline,
  waitForLeaderCard,
  waitForRole,
} from './helpers/browser.js'
import { CLI } from './helpers/daemon.js'
import { waitFor } from './helpers/raft-cluster.js'

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('the dashboard of ballot demo, in Chromium', () => {
  let demo: ChildProcess
  let out = ''
  let url = ''
  let base = ''
  let key = ''
  let exited = false
  let browser: Browser | undefined
  let w: WatchedPage
  const pids = new Set<number>()

  before(async () => {
    // The demo as users run it: default timings, which a loaded machine does not mistake for failures.
    demo = spawn(process.execPath, [CLI, 'demo'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    demo.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      for (const m of out.matchAll(/pids ([\d ]+)\)/g))
        for (const p of (m[1] ?? '').split(' ')) pids.add(Number(p))
    })
    demo.once('exit', () => {
      exited = true
    })
    await waitFor('the demo to print its dashboard', () => /\n/.test(out), 60_000)
    const first = out.split('\n')[0] ?? ''
    const m = /^ballot demo: dashboard at (http:\/\/127\.0\.0\.1:\d+)\/#token=(\S+)$/.exec(first)
    assert.ok(m, `the first line names the dashboard: ${first}`)
    base = m[1] as string
    key = m[2] as string
    url = `${base}/#token=${key}`
    browser = await launchBrowser()
  })

  after(async () => {
    // The page knows every pid, restarted nodes' too.
    const shown = await w?.page
      .$$eval('dd[data-f="pid"]', (dds) => dds.map((d) => Number(d.textContent)))
      .catch(() => [] as number[])
    for (const p of shown ?? []) if (p > 0) pids.add(p)
    await browser?.close()
    if (!exited) demo.kill('SIGTERM')
    await waitFor('the demo to exit', () => exited, 30_000).catch(() => demo.kill('SIGKILL'))
    // Every node the demo started (restarts included) is gone with it.
    await waitFor('every demo node to exit', () => [...pids].every((p) => !alive(p)), 15_000)
  })

  test('a new user sees one leader and its token, live', async () => {
    w = await openPage(browser as Browser, url)
    const { page } = w
    await until('five cards', async () => (await page.locator('[data-node-id]').count()) === 5)
    // One look at every card at once: exactly one leader, and every role one the page may show.
    const all = await until('one leader card', async () => {
      const r = await roles(page)
      return Object.values(r).filter((x) => x === 'leader').length === 1 ? r : undefined
    })
    const leader = Object.keys(all).find((id) => all[id] === 'leader') as string
    for (const r of Object.values(all)) assert.match(r, /^(leader|follower|candidate|observer|down)$/)
    await waitForHeadline(page, `${leader} leads`)
    assert.match((await page.textContent('#headline')) ?? '', /token \d+/)
    // The key came in the fragment and is gone from the address bar; the page itself never has it.
    assert.equal(new URL(page.url()).hash, '')
    assert.ok(!(await page.content()).includes(key))
    await w.shot('demo-1-leader')
  })

  test('kill -9 on the leader: another leader is shown', async (t) => {
    const { page } = w
    const old = await waitForLeaderCard(page)
    const t0 = Date.now()
    await page.click(`[data-node-id="${old}"] button[data-action="kill"]`)
    // The fact the rest rests on: the demo killed it (the page says what the control answered).
    await until('the kill to be done', async () =>
      ((await page.textContent('#notice')) ?? '').startsWith(`${old}: killed with SIGKILL`),
    ).catch(async (err) => {
      throw new Error(`${err.message}; the notice says ${JSON.stringify(await page.textContent('#notice'))}`)
    })
    const next = await waitForLeaderCard(page, { not: old })
    const took = Date.now() - t0
    t.diagnostic(`the page showed a new leader ${took} ms after the click`)
    await waitForRole(page, old, 'down', 'killed')
    assert.notEqual(next, old)
    // The timeline has both leaderships, and the chart one election.
    await page.waitForSelector(`#timeline g[data-leader="${next}"]`)
    await page.waitForSelector('#chart g[data-after="election"]')
    await w.shot('demo-2-killed')
    // Restart: the killed node comes back as a follower.
    await page.click(`[data-node-id="${old}"] button[data-action="restart"]`)
    await waitForRole(page, old, 'follower', 'running')
    await w.shot('demo-3-restarted')
  })

  test('pause the leader: it loses its claim, another takes over; resumed, it follows', async () => {
    const { page } = w
    const paused = await waitForLeaderCard(page)
    await page.click(`[data-node-id="${paused}"] button[data-action="pause"]`)
    await waitForRole(page, paused, 'down', 'paused')
    const next = await waitForLeaderCard(page, { not: paused })
    assert.notEqual(next, paused)
    await w.shot('demo-4-paused')
    await page.click(`[data-node-id="${paused}"] button[data-action="resume"]`)
    await waitForRole(page, paused, 'follower', 'running')
    assert.equal(await waitForLeaderCard(page), next, 'the resumed node does not take leadership back')
    await w.shot('demo-5-resumed')
  })

  test('resign: the leader hands over', async () => {
    const { page } = w
    const old = await waitForLeaderCard(page)
    const tokenOf = async () => Number(/token (\d+)/.exec((await page.textContent('#headline')) ?? '')?.[1])
    const before = await tokenOf()
    await page.click(`[data-node-id="${old}"] button[data-action="resign"]`)
    const next = await waitForLeaderCard(page, { not: old })
    await waitForRole(page, old, 'follower')
    await waitForHeadline(page, `${next} leads`)
    assert.ok((await tokenOf()) > before, 'the new leadership has a larger token')
    await page.waitForSelector('#chart g[data-after="hand-over"]')
    await w.shot('demo-6-resigned')
  })

  test('no console error on the way', () => {
    assert.deepEqual(w.errors, [])
  })

  test('without the key the page is read-only, and the controls refuse', async () => {
    const r = await openPage(browser as Browser, `${base}/`)
    await waitForLeaderCard(r.page)
    assert.equal(await r.page.locator('button[data-action]:visible').count(), 0)
    await r.page.close()
    const post = (path: string, headers: Record<string, string> = {}) =>
      fetch(`${base}${path}`, { method: 'POST', headers })
    assert.equal((await post('/demo/nodes/n1/kill')).status, 401)
    assert.equal((await post('/demo/nodes/n1/kill', { Authorization: 'Bearer wrong' })).status, 401)
    assert.equal((await post('/demo/nodes/n9/kill', { Authorization: `Bearer ${key}` })).status, 404)
    assert.equal((await post('/demo/nodes/n1/explode', { Authorization: `Bearer ${key}` })).status, 404)
    // A page on another origin that rebinds its name to 127.0.0.1 is refused by its Host header.
    const rebound = await new Promise<number>((resolve, reject) => {
      const u = new URL(base)
      import('node:http').then(({ default: http }) => {
        const req = http.request(
          { host: u.hostname, port: u.port, path: '/', method: 'GET', headers: { Host: 'evil.example:80' } },
          (res) => {
            res.resume()
            resolve(res.statusCode ?? 0)
          },
        )
        req.on('error', reject)
        req.end()
      }, reject)
    })
    assert.equal(rebound, 403)
    assert.deepEqual(r.errors, [])
  })
})
