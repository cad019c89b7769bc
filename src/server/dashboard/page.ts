/**
 * The dashboard page and its assets, as the daemon (and `ballot demo`) serve them: one small HTML page,
 * one script, one stylesheet and an icon, all from this folder, nothing from the network. A strict
 * Content-Security-Policy says so to the browser too: the page may load and connect only to its own
 * origin, run no inline script, and may not be framed (the controls must not be clickjacked).
 *
 * The page never carries a credential. It is told only which controls may exist (`ControlsMode`); a
 * client that holds the HTTP token (or the demo's key) gives it in the address's fragment (`#token=...`,
 * never sent to a server) or in the page's form, and the script sends it as a bearer token.
 */
import { readFileSync } from 'node:fs'
import type http from 'node:http'
import type { ControlsMode } from './types.js'

const ASSETS: Record<string, { file: string; type: string }> = {
  '/dashboard.js': { file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard.css': { file: 'dashboard.css', type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
}

/** Every path the dashboard answers (GET and HEAD). */
export const DASHBOARD_PATHS: readonly string[] = ['/', ...Object.keys(ASSETS)]

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')

const cache = new Map<string, Buffer>()

/** An asset's bytes (read once: they ship next to this module, copied there by the build). */
function asset(file: string): Buffer {
  let bytes = cache.get(file)
  if (!bytes) {
    bytes = readFileSync(new URL(`./assets/${file}`, import.meta.url))
    cache.set(file, bytes)
  }
  return bytes
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/** The page's HTML: a skeleton the script fills in from `/events`. */
export function dashboardHtml(opts: { controls: ControlsMode; title: string }): string {
  const title = escapeHtml(opts.title)
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/dashboard.css">
<script type="module" src="/dashboard.js"></script>
</head>
<body data-controls="${opts.controls}">
<header>
  <div class="brand"><img src="/favicon.svg" alt="" width="28" height="28"><span>ballot</span> <span id="algo"></span></div>
  <div id="link" class="link" data-state="connecting">connecting…</div>
</header>
<main>
  <section id="hero" aria-live="polite">
    <p id="headline">Connecting to the node…</p>
    <p id="subline"></p>
  </section>
  <div id="banner" role="alert" hidden></div>
  <p id="intro" hidden></p>
  <form id="unlock" hidden>
    <label>This node has an HTTP token: enter it to make the node resign from here
    <input id="token-input" type="password" autocomplete="off" spellcheck="false" required></label>
    <button type="submit">Unlock controls</button>
  </form>
  <p id="notice" role="status"></p>
  <section id="members" aria-label="Members"></section>
  <section class="panel">
    <h2>Leaderships <small>who led, with which token, from when to when</small></h2>
    <div id="timeline"></div>
  </section>
  <section class="panel">
    <h2>Time without a leader <small>at each change, as seen here</small></h2>
    <div id="chart"></div>
  </section>
</main>
<noscript><p>The dashboard needs JavaScript. Without it: <a href="/status">/status</a>, <a href="/leader">/leader</a>.</p></noscript>
<footer>Raw data: <a href="/status">/status</a> · <a href="/leader">/leader</a> · <a href="/metrics">/metrics</a> · <a href="/events">/events</a></footer>
</body>
</html>
`
}

/**
 * Answers a dashboard path (GET or HEAD); returns false for any other path. `controls` decides which
 * controls the page may show; `title` names the page (the node's id, or "ballot demo").
 */
export function serveDashboard(
  pathname: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  opts: { controls: ControlsMode; title: string },
): boolean {
  let body: Buffer
  let type: string
  if (pathname === '/') {
    body = Buffer.from(dashboardHtml(opts))
    type = 'text/html; charset=utf-8'
  } else {
    const a = ASSETS[pathname]
    if (!a) return false
    body = asset(a.file)
    type = a.type
  }
  res.writeHead(200, {
    'Content-Type': type,
    'Content-Length': body.length,
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    // The page and script change with the daemon's version; always ask again (they are small).
    'Cache-Control': 'no-cache',
  })
  res.end(req.method === 'HEAD' ? undefined : body)
  return true
}
