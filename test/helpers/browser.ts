/**
 * Debian's Chromium, headless, driven by playwright-core (which cannot download a browser of its own
 * here). A missing browser fails the test with the way to install it: never a skip. Each page records
 * its console errors and uncaught exceptions; screenshots go to artifacts/dashboard/ (gitignored).
 */
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { type Browser, chromium, type Page } from 'playwright-core'

export const CHROMIUM = process.env.BALLOT_CHROMIUM ?? '/usr/bin/chromium'
export const ARTIFACTS = new URL('../../artifacts/dashboard/', import.meta.url).pathname

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** Starts the browser; throws (the test fails) when it is not installed. */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `no browser at ${CHROMIUM}: install Debian's chromium (bash scripts/install-deps.sh, as root)`,
    )
  return chromium.launch({ executablePath: CHROMIUM, args: FLAGS, timeout: 60_000 })
}

/** A page that remembers what went wrong in it. */
export interface WatchedPage {
  page: Page
  /** Console messages of type error, and uncaught exceptions. */
  errors: string[]
  /** Saves a full-page screenshot as artifacts/dashboard/<name>.png and returns its path. */
  shot(name: string): Promise<string>
}

export async function openPage(browser: Browser, url: string): Promise<WatchedPage> {
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } })
  const errors: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`)
  })
  page.on('pageerror', (e) => errors.push(`exception: ${e.message}`))
  page.setDefaultTimeout(30_000)
  await page.goto(url)
  mkdirSync(ARTIFACTS, { recursive: true })
  return {
    page,
    errors,
    async shot(name) {
      const path = join(ARTIFACTS, `${name}.png`)
      await page.screenshot({ path, fullPage: true })
      return path
    },
  }
}

/**
 * Polls `probe` (every 20 ms) until it returns something other than undefined/false. On time-out the
 * error says what `state` (if given) shows then, so a failure tells what the page showed instead.
 */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
  state?: () => Promise<string>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) {
      const shown = state ? `; the page shows ${await state().catch((e) => `(unreadable: ${e})`)}` : ''
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${shown}`)
    }
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** The role of every card, by node id (their data-node-id and data-role attributes, read at one instant). */
export async function roles(page: Page): Promise<Record<string, string>> {
  const pairs = await page.$$eval('[data-node-id]', (cards) =>
    cards.map((c) => [c.getAttribute('data-node-id') ?? '', c.getAttribute('data-role') ?? '']),
  )
  return Object.fromEntries(pairs)
}

/** Waits until the page shows exactly one leader card (other than `not`), and returns its node id. */
export async function waitForLeaderCard(page: Page, opts: { not?: string; timeoutMs?: number } = {}) {
  return until(
    `one leader card${opts.not ? ` other than ${opts.not}` : ''}`,
    async () => {
      const leaders = Object.entries(await roles(page)).filter(([, r]) => r === 'leader')
      const id = leaders.length === 1 ? leaders[0]?.[0] : undefined
      return id !== undefined && id !== opts.not ? id : undefined
    },
    opts.timeoutMs,
    async () =>
      `roles ${JSON.stringify(await roles(page))}, headline ${JSON.stringify(await page.textContent('#headline'))}, notice ${JSON.stringify(await page.textContent('#notice'))}, cards ${JSON.stringify(await page.$$eval('[data-node-id]', (cards) => cards.map((c) => (c.textContent ?? '').replace(/\s+/g, ' ').trim())))}`,
  )
}

/** Waits until node `id`'s card has `data-role` = `role` (and, if given, `data-process` = `process`). */
export async function waitForRole(
  page: Page,
  id: string,
  role: string,
  process?: string,
  timeoutMs = 30_000,
) {
  await page.waitForSelector(
    `[data-node-id="${id}"][data-role="${role}"]${process ? `[data-process="${process}"]` : ''}`,
    { timeout: timeoutMs },
  )
}

/** Waits until the headline starts with `text`. */
export async function waitForHeadline(page: Page, text: string, timeoutMs = 30_000): Promise<string> {
  return until(
    `the headline to start with "${text}"`,
    async () => {
      const h = (await page.textContent('#headline')) ?? ''
      return h.startsWith(text) ? h : undefined
    },
    timeoutMs,
  )
}
