// @ts-check
// ballot's dashboard: draws what `/events?cluster=1` says (the `cluster` and `history` events), live.
// Plain browser JavaScript, no framework and nothing from the network. Types: ../types.ts; checked by
// tsconfig.dashboard.json. Elements are created once and updated in place, so a button under the
// pointer stays the same button while the data changes around it.

/** @typedef {import('../types.js').ClusterSnapshot} ClusterSnapshot */
/** @typedef {import('../types.js').MemberCard} MemberCard */
/** @typedef {import('../types.js').LeadershipRecord} LeadershipRecord */
/** @typedef {import('../types.js').ProcessCard} ProcessCard */

const SVG = 'http://www.w3.org/2000/svg'
const TOKEN_KEY = 'ballot.token'
/** Cluster events come every second; this long without one means the node is paused or stuck. */
const SILENT_STREAM_MS = 3500
/** The timeline shows at most this much of the past. */
const TIMELINE_WINDOW_MS = 10 * 60_000

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id))
const mode = document.body.dataset.controls ?? 'none'

/** @type {ClusterSnapshot | undefined} */
let snap
/** @type {LeadershipRecord[]} */
let leaderships = []
/** Server time minus this browser's time, so that ages are right on a machine with another clock. */
let skew = 0
let lastEventAt = 0
/** @type {'connecting' | 'live' | 'lost'} */
let link = 'connecting'
/** @type {EventSource | undefined} */
let source
let retryMs = 1000
/** @type {ReturnType<typeof setTimeout> | undefined} */
let retryTimer
let token = takeToken()

/**
 * The token (the node's HTTP token, or the demo's key) comes in the address's fragment, which browsers
 * never send to a server: keep it for this tab only, and take it out of the address bar and the tab's history.
 * @returns {string | null}
 */
function takeToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash)
  if (m?.[1]) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]))
    forgetFragment()
  }
  return mode === 'none' ? null : sessionStorage.getItem(TOKEN_KEY)
}

/** Takes the fragment out of the address bar and the tab's history. */
function forgetFragment() {
  window.history.replaceState(null, '', location.pathname + location.search)
}

const now = () => Date.now() + skew

/** @param {number} ms */
function duration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`
  const m = Math.floor(ms / 60_000)
  if (m < 60) return `${m} min ${Math.floor((ms % 60_000) / 1000)} s`
  return `${Math.floor(m / 60)} h ${m % 60} min`
}

/** @param {number} t */
const clock = (t) => new Date(t).toLocaleTimeString([], { hour12: false })

/**
 * @param {string} tag
 * @param {Record<string, string>} [attrs]
 * @param {string} [text]
 */
function el(tag, attrs = {}, text) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v)
  if (text !== undefined) e.textContent = text
  return e
}

/**
 * @param {string} tag
 * @param {Record<string, string | number>} [attrs]
 * @param {string} [text]
 */
function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v))
  if (text !== undefined) e.textContent = text
  return e
}

// ---- the connection ------------------------------------------------------------------------------

function connect() {
  clearTimeout(retryTimer)
  source?.close()
  const es = new EventSource('/events?cluster=1')
  source = es
  es.addEventListener('open', () => {
    retryMs = 1000
  })
  es.addEventListener('cluster', (e) => {
    snap = JSON.parse(/** @type {MessageEvent} */ (e).data)
    if (!snap) return
    skew = snap.at - Date.now()
    lastEventAt = Date.now()
    link = 'live'
    render()
  })
  es.addEventListener('history', (e) => {
    leaderships = JSON.parse(/** @type {MessageEvent} */ (e).data).leaderships
    renderHistory()
  })
  es.addEventListener('error', () => {
    link = 'lost'
    // The browser retries a dropped stream by itself, but gives up on an HTTP error (a proxy's 502, a
    // restarting server): then try again here, backing off to at most 8 s.
    if (es.readyState === EventSource.CLOSED) {
      retryTimer = setTimeout(connect, retryMs)
      retryMs = Math.min(2 * retryMs, 8000)
    }
    renderStatus()
  })
}

// ---- the page ------------------------------------------------------------------------------------

function render() {
  renderStatus()
  renderMembers()
  renderControlsHint()
}

/** @param {string} id */
const processOf = (id) => snap?.processes?.[id]

/** The link pill, the headline and the banner: the things that change with time as well as data. */
function renderStatus() {
  const stale = link === 'live' && Date.now() - lastEventAt > SILENT_STREAM_MS
  const pill = $('link')
  pill.dataset.state = stale ? 'lost' : link
  document.body.dataset.link = stale ? 'lost' : link
  pill.textContent =
    link === 'connecting' ? 'connecting…' : link === 'lost' || stale ? 'reconnecting…' : 'live'
  if (!snap) {
    if (link === 'lost') banner('Cannot reach the node: its process may be gone. Trying again by itself…')
    return
  }
  $('algo').textContent =
    `${snap.algo} · ${snap.members.length} member${snap.members.length === 1 ? '' : 's'}`
  const demo = mode === 'demo'
  const who = demo ? 'the demo' : snap.view
  if (link === 'lost')
    banner(
      demo
        ? 'Lost the connection to `ballot demo`: is it still running? Reconnecting by itself…'
        : `Lost the connection to ${who}: its process may be gone. Reconnecting by itself…`,
    )
  else if (stale)
    banner(
      `${who} has sent nothing for ${duration(Date.now() - lastEventAt)}: it may be paused or overloaded. What you see may be out of date.`,
    )
  else if (!snap.viewing) banner('No node is answering: every node is down, paused or starting.')
  else if (!demo && cutOff(snap))
    banner(
      `${snap.view} cannot reach any other member: it is cut off or alone, so what it shows about the others is out of date.`,
    )
  else banner('')
  renderHero(stale || link === 'lost')
}

/** @param {ClusterSnapshot} s */
function cutOff(s) {
  const peers = s.members.filter((m) => !m.self)
  if (peers.length === 0) return false
  const bound = Math.max(3 * s.silentAfterMs, 2000)
  return !peers.some(
    (m) => m.reachable && (m.lastContactMs === undefined ? s.algo === 'lease' : m.lastContactMs <= bound),
  )
}

/**
 * @param {string} text
 * @param {'error' | 'warn'} [level]
 */
function banner(text, level = 'error') {
  const b = $('banner')
  b.hidden = text === ''
  b.textContent = text
  b.dataset.level = level
}

/** @param {boolean} outdated */
function renderHero(outdated) {
  if (!snap) return
  const h = $('headline')
  const sub = $('subline')
  const l = snap.leader
  const seen = mode === 'demo' ? `as ${snap.view} sees it` : `seen from ${snap.view} (this node)`
  h.replaceChildren()
  if (outdated) {
    // What the page last heard may be long gone: say that first, and what it was second.
    h.className = 'lost'
    h.textContent = mode === 'demo' ? 'The demo is not answering' : `${snap.view} is not answering`
    sub.textContent = `Last heard at ${clock(lastEventAt)}${l ? `, when ${l.id} led with token ${l.token}` : ', when nobody led'}.`
  } else if (l) {
    const card = snap.members.find((m) => m.id === l.id)
    const proc = processOf(l.id)
    const gone = proc && proc.state !== 'running'
    h.className = gone ? 'lost' : ''
    h.append(el('strong', {}, l.id), gone ? ` led, but it is ${proc.state}` : ' leads')
    h.append(el('span', { class: 'token', title: 'fencing token' }, `token ${l.token}`))
    sub.textContent = gone
      ? 'The others notice within the election timeout and elect a new leader, with a larger token.'
      : `since ${clock(l.since)} (${duration(Math.max(0, now() - l.since))}) · ${l.address ?? ''}${
          card?.note ? ` · ${card.note}` : ''
        } · ${seen}`
  } else {
    h.className = 'none'
    h.textContent = 'No leader right now'
    sub.textContent = `An election is under way (term ${snap.term}) · ${seen}`
  }
}

/** @type {Map<string, HTMLElement>} */
const cards = new Map()

function renderMembers() {
  if (!snap) return
  const list = $('members')
  const members = [...snap.members]
  // The lease driver's order is the line of candidates; the others read best by id.
  if (snap.algo !== 'lease') members.sort((a, b) => a.id.localeCompare(b.id, undefined, { numeric: true }))
  const seen = new Set()
  for (const m of members) {
    seen.add(m.id)
    let card = cards.get(m.id)
    if (!card) {
      card = makeCard(m.id)
      cards.set(m.id, card)
    }
    list.append(card) // appending an attached node moves it: this keeps the order
    fillCard(card, m)
  }
  for (const [id, card] of cards)
    if (!seen.has(id)) {
      card.remove()
      cards.delete(id)
    }
}

/** @param {string} id */
function makeCard(id) {
  const card = el('article', { class: 'card', 'data-node-id': id })
  const top = el('div', { class: 'top' })
  const name = el('h3', {}, id)
  top.append(name, el('span', { class: 'badge' }))
  const dl = el('dl')
  for (const [key, label] of [
    ['address', 'address'],
    ['term', 'term'],
    ['contact', 'last contact'],
    ['reach', 'reachable'],
    ['process', 'process'],
    ['pid', 'pid'],
  ]) {
    const dt = el('dt', { 'data-f': key }, label)
    const dd = el('dd', { 'data-f': key })
    dl.append(dt, dd)
  }
  const actions = el('div', { class: 'actions' })
  for (const [action, label, title] of [
    ['resign', 'resign', 'Ask this leader to step down and hand over'],
    ['kill', 'kill -9', 'SIGKILL the process: a crash'],
    ['pause', 'pause', 'SIGSTOP the process: it freezes, as in a long GC pause'],
    ['resume', 'resume', 'SIGCONT the process'],
    ['restart', 'restart', 'Start the node again (killing it first if it runs)'],
  ])
    actions.append(el('button', { type: 'button', 'data-action': action, 'data-node': id, title }, label))
  card.append(
    top,
    el('p', { class: 'sub' }),
    el('p', { class: 'note' }),
    dl,
    el('div', { class: 'tags' }),
    actions,
  )
  return card
}

/**
 * @param {HTMLElement} card
 * @param {MemberCard} m
 */
function fillCard(card, m) {
  if (!snap) return
  const proc = processOf(m.id)
  card.dataset.role = m.role
  card.dataset.self = String(m.self)
  if (proc) card.dataset.process = proc.state
  const sub = /** @type {HTMLElement} */ (card.querySelector('.sub'))
  sub.textContent = [
    m.self ? (mode === 'demo' ? 'the viewpoint' : 'this node') : '',
    m.place === undefined ? '' : `#${m.place} in line`,
    m.kind === 'observer' ? 'observer: never votes or leads' : '',
  ]
    .filter(Boolean)
    .join(' · ')
  const badge = /** @type {HTMLElement} */ (card.querySelector('.badge'))
  badge.textContent = m.role
  const note = /** @type {HTMLElement} */ (card.querySelector('.note'))
  note.textContent = m.note ?? ''
  /**
   * @param {string} f
   * @param {string | undefined} text
   */
  const field = (f, text) => {
    const pair = /** @type {NodeListOf<HTMLElement>} */ (card.querySelectorAll(`[data-f="${f}"]`))
    for (const e of pair) e.hidden = text === undefined
    const dd = card.querySelector(`dd[data-f="${f}"]`)
    if (dd && text !== undefined) dd.textContent = text
  }
  field('address', m.address ?? '—')
  field('term', m.term)
  field(
    'contact',
    m.self
      ? mode === 'demo'
        ? '— (the viewpoint)'
        : '— (this node)'
      : m.lastContactMs === undefined
        ? snap.algo === 'lease'
          ? '— (the store keeps time)'
          : 'never'
        : `${duration(m.lastContactMs)} ago`,
  )
  field('reach', m.reachable ? 'yes' : 'no')
  field('process', proc?.state)
  field('pid', proc?.pid === undefined ? undefined : String(proc.pid))
  const tags = /** @type {HTMLElement} */ (card.querySelector('.tags'))
  tags.replaceChildren(...Object.entries(m.tags).map(([k, v]) => el('span', {}, `${k}=${v}`)))
  for (const b of card.querySelectorAll('button')) {
    const action = b.dataset.action ?? ''
    b.hidden = !offers(m, action, proc)
  }
}

/**
 * Whether the card of `m` offers `action`. Without a token there is never a control.
 * @param {MemberCard} m
 * @param {string} action
 * @param {ProcessCard | undefined} proc
 */
function offers(m, action, proc) {
  if (!token) return false
  if (mode === 'token') return action === 'resign' && m.self && m.role === 'leader'
  if (mode !== 'demo' || !proc) return false
  const state = proc.state
  switch (action) {
    case 'resign':
      return state === 'running' && m.role === 'leader'
    case 'kill':
      return state === 'running' || state === 'paused' || state === 'starting'
    case 'pause':
      return state === 'running'
    case 'resume':
      return state === 'paused'
    case 'restart':
      return true
    default:
      return false
  }
}

function renderControlsHint() {
  const intro = $('intro')
  const form = $('unlock')
  if (mode === 'demo') {
    intro.hidden = false
    intro.textContent = token
      ? `A demo cluster of ${snap?.members.length ?? ''} ${snap?.algo ?? ''} nodes on this machine. Break it with the buttons on each card: kill -9, pause (SIGSTOP) or restart a node, or make the leader resign. Then watch the others heal: a new leader, with a larger token, within about a second.`
      : 'A demo cluster on this machine. The controls need the key that `ballot demo` printed: open the address it printed (it ends in #token=…).'
  }
  form.hidden = !(mode === 'token' && !token)
}

async function act(/** @type {HTMLButtonElement} */ button) {
  const action = button.dataset.action ?? ''
  const node = button.dataset.node ?? ''
  const url = mode === 'demo' ? `/demo/nodes/${encodeURIComponent(node)}/${action}` : '/resign'
  button.disabled = true
  try {
    const res = await fetch(url, { method: 'POST', headers: { Authorization: `Bearer ${token}` } })
    const text = (await res.text()).trim()
    if (res.status === 401 || res.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY)
      token = null
      notice('The token was refused: controls are off until a valid one is given.', 'error')
      render()
    } else
      notice(res.ok ? `${node}: ${text}` : `${node}: ${action} failed: ${text}`, res.ok ? 'info' : 'error')
  } catch (err) {
    notice(`${node}: ${action} failed: ${err instanceof Error ? err.message : String(err)}`, 'error')
  } finally {
    button.disabled = false
  }
}

/**
 * @param {string} text
 * @param {'info' | 'error'} level
 */
function notice(text, level) {
  const n = $('notice')
  n.textContent = text
  n.dataset.level = level
}

// ---- the timeline and the chart ------------------------------------------------------------------

const PALETTE = ['#2f855a', '#2b6cb0', '#805ad5', '#b7791f', '#c05621', '#2c7a7b', '#b83280', '#4a5568']
/** @param {string} id */
function colorOf(id) {
  let h = 0
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0
  return PALETTE[h % PALETTE.length] ?? '#4a5568'
}

function renderHistory() {
  renderTimeline()
  renderChart()
}

function renderTimeline() {
  const box = $('timeline')
  if (leaderships.length === 0) {
    box.replaceChildren(el('p', { class: 'empty' }, 'No leader seen yet.'))
    return
  }
  const W = 1000
  const H = 74
  const end = now()
  const first = leaderships[0]?.from ?? end
  // At least a second, so that a leadership just begun is not drawn across the whole width.
  const span = Math.min(TIMELINE_WINDOW_MS, Math.max(1000, end - first))
  const start = end - span
  /** @param {number} t */
  const x = (t) => ((Math.max(start, Math.min(end, t)) - start) / span) * W
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Leaderships over time' })
  s.append(svg('rect', { x: 0, y: 8, width: W, height: 34, fill: '#fbe9e9' }))
  for (const r of leaderships) {
    const to = r.to ?? end
    if (to < start) continue
    const x0 = x(r.from)
    const w = Math.max(2, x(to) - x0)
    const g = svg('g', { 'data-leader': r.leader, 'data-token': r.token })
    g.append(
      svg(
        'title',
        {},
        `${r.leader} led with token ${r.token}: ${clock(r.from)} → ${r.to ? clock(r.to) : 'now'} (${duration(to - r.from)})`,
      ),
      svg('rect', { x: x0, y: 8, width: w, height: 34, rx: 3, fill: colorOf(r.leader) }),
    )
    const label = `${r.leader} · ${r.token}`
    if (w > label.length * 7.5 + 6) g.append(svg('text', { x: x0 + 5, y: 30, class: 'seg-label' }, label))
    s.append(g)
  }
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    const t = start + f * span
    const anchor = f === 0 ? 'start' : f === 1 ? 'end' : 'middle'
    s.append(svg('line', { x1: f * W, x2: f * W, y1: 42, y2: 48, class: 'grid', stroke: '#cbd5e0' }))
    // Over a short span every tick would read the same clock time: say how long ago instead.
    const label = f === 1 ? 'now' : span < 60_000 ? `${duration(end - t)} ago` : clock(t)
    s.append(svg('text', { x: f * W, y: 62, 'text-anchor': anchor, class: 'axis' }, label))
  }
  const recent = leaderships
    .slice(-4)
    .reverse()
    .map((r) => `${r.leader} (token ${r.token}) ${clock(r.from)}–${r.to ? clock(r.to) : 'now'}`)
    .join(' · ')
  box.replaceChildren(s, el('p', { class: 'legend' }, `Latest first: ${recent}. Red: no leader.`))
}

function renderChart() {
  const box = $('chart')
  const changes = leaderships.filter((r) => r.gapMs !== undefined).slice(-24)
  if (changes.length === 0) {
    box.replaceChildren(
      el(
        'p',
        { class: 'empty' },
        'No change of leader yet. Kill, pause or resign the leader to see how long the cluster goes without one.',
      ),
    )
    return
  }
  const W = 1000
  const H = 170
  const top = 22
  const base = 130
  const max = Math.max(50, ...changes.map((r) => r.gapMs ?? 0))
  const slot = W / Math.max(changes.length, 8)
  const bar = Math.min(56, slot * 0.7)
  const s = svg('svg', {
    viewBox: `0 0 ${W} ${H}`,
    role: 'img',
    'aria-label': 'Time without a leader at each change',
  })
  s.append(svg('line', { x1: 0, x2: W, y1: base, y2: base, class: 'grid', stroke: '#cbd5e0' }))
  changes.forEach((r, i) => {
    const gap = r.gapMs ?? 0
    const h = Math.max(2, (gap / max) * (base - top))
    const cx = i * slot + slot / 2
    const g = svg('g', { 'data-after': r.after })
    g.append(
      svg(
        'title',
        {},
        `${r.after === 'hand-over' ? 'Hand-over' : 'Election'} to ${r.leader} (token ${r.token}): ${duration(gap)} without a leader`,
      ),
      svg('rect', { x: cx - bar / 2, y: base - h, width: bar, height: h, rx: 3, class: `bar-${r.after}` }),
      svg('text', { x: cx, y: base - h - 6, 'text-anchor': 'middle' }, duration(gap)),
      svg('text', { x: cx, y: base + 17, 'text-anchor': 'middle', class: 'axis' }, `→ ${r.leader}`),
      svg('text', { x: cx, y: base + 32, 'text-anchor': 'middle', class: 'axis' }, `token ${r.token}`),
    )
    s.append(g)
  })
  const election = el('span')
  election.append(el('i', { class: 'election' }), 'election: the old leader fell silent or died')
  const handOver = el('span')
  handOver.append(el('i', { class: 'hand-over' }), 'hand-over: a live leader gave way')
  const legend = el('p', { class: 'legend' })
  legend.append(election, handOver)
  box.replaceChildren(s, legend)
}

// ---- wiring --------------------------------------------------------------------------------------

$('members').addEventListener('click', (e) => {
  const b = /** @type {HTMLElement} */ (e.target).closest('button[data-action]')
  if (b) void act(/** @type {HTMLButtonElement} */ (b))
})

$('unlock').addEventListener('submit', (e) => {
  e.preventDefault()
  const input = /** @type {HTMLInputElement} */ ($('token-input'))
  if (!input.value) return
  sessionStorage.setItem(TOKEN_KEY, input.value)
  token = input.value
  input.value = ''
  notice('Controls unlocked for this tab.', 'info')
  render()
})

// Ages ("2.1 s ago", "for 3 min") and a silent stream are news even when no event comes.
setInterval(() => {
  renderStatus()
  if (leaderships.length > 0) renderTimeline()
}, 1000)

renderControlsHint()
connect()
