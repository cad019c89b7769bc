/**
 * A tiny SVG chart writer for the benchmark report: line/step charts (linear or log axes), CDFs, and a
 * timeline of lanes. Plain SVG 1.1 text, no fonts or scripts to load, so GitHub renders it as an image.
 */

/** One line of a chart: its name in the legend and its points (x, y). */
export interface Series {
  name: string
  points: Array<[number, number]>
  /** Draw as a step function (a CDF). Default: straight segments with a dot at each point. */
  step?: boolean
}

/** What a line chart shows. */
export interface LineChartOptions {
  title: string
  xLabel: string
  yLabel: string
  series: Series[]
  logX?: boolean
  logY?: boolean
  width?: number
  height?: number
  /** Vertical reference lines (an anchor such as "MultiBully 2.34 s"). */
  refs?: Array<{ x: number; label: string }>
}

const PALETTE = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#7f7f7f',
  '#bcbd22',
]

/** The colour of series i (the same index gets the same colour in every chart). */
export const colour = (i: number) => PALETTE[i % PALETTE.length] as string

const esc = (s: string) => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')

/** Short number text for an axis tick. */
function fmt(v: number): string {
  if (v === 0) return '0'
  const a = Math.abs(v)
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`
  return String(+v.toPrecision(3))
}

/** Tick values for [lo, hi]: 1-2-5 steps on a linear axis, 1-2-5 per decade on a log one. */
function ticks(lo: number, hi: number, log: boolean): number[] {
  if (log) {
    const out: number[] = []
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++)
      for (const m of [1, 2, 5]) {
        const v = m * 10 ** e
        if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v)
      }
    return out
  }
  const span = hi - lo || 1
  const raw = span / 6
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = ([1, 2, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag
  const out: number[] = []
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12))
  return out
}

/** A scale from data to pixels over [lo, hi], padded to round ends. */
function scale(values: number[], log: boolean, from: number, to: number, zero: boolean) {
  let lo = Math.min(...values)
  let hi = Math.max(...values)
  if (log) {
    lo = 10 ** Math.floor(Math.log10(Math.max(lo, 1e-9)))
    hi = 10 ** Math.ceil(Math.log10(Math.max(hi, lo * 10)))
  } else {
    if (zero) lo = Math.min(0, lo)
    if (hi === lo) hi = lo + 1
    const t = ticks(lo, hi, false)
    const step = t.length > 1 ? (t[1] as number) - (t[0] as number) : 1
    hi = Math.ceil(hi / step) * step
    lo = Math.floor(lo / step) * step
  }
  const f = log ? Math.log10 : (v: number) => v
  const map = (v: number) =>
    from + ((f(Math.max(v, log ? lo : -Infinity)) - f(lo)) / (f(hi) - f(lo))) * (to - from)
  return { lo, hi, map, ticks: ticks(lo, hi, log) }
}

/** A line (or step) chart with axes, grid, legend and optional reference lines. */
export function lineChart(o: LineChartOptions): string {
  const W = o.width ?? 720
  const H = o.height ?? 400
  const left = 64
  const right = 190
  const top = 36
  const bottom = 48
  const pts = o.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
  const xs = [...pts.map((p) => p[0]), ...(o.refs ?? []).map((r) => r.x)]
  const ys = pts.map((p) => p[1])
  if (xs.length === 0) xs.push(0, 1)
  if (ys.length === 0) ys.push(0, 1)
  const sx = scale(xs, o.logX ?? false, left, W - right, true)
  const sy = scale(ys, o.logY ?? false, H - bottom, top, true)
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<title>${esc(o.title)}</title>`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - right / 2 + left / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(o.title)}</text>`,
  ]
  for (const t of sx.ticks) {
    const x = sx.map(t).toFixed(1)
    out.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${H - bottom}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${x}" y="${H - bottom + 16}" text-anchor="middle">${fmt(t)}</text>`)
  }
  for (const t of sy.ticks) {
    const y = sy.map(t).toFixed(1)
    out.push(`<line x1="${left}" y1="${y}" x2="${W - right}" y2="${y}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${left - 6}" y="${Number(y) + 4}" text-anchor="end">${fmt(t)}</text>`)
  }
  out.push(
    `<rect x="${left}" y="${top}" width="${W - left - right}" height="${H - top - bottom}" fill="none" stroke="#444"/>`,
    `<text x="${(left + W - right) / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`,
    `<text transform="translate(16 ${(top + H - bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`,
  )
  for (const r of o.refs ?? []) {
    const x = sx.map(r.x).toFixed(1)
    out.push(
      `<line x1="${x}" y1="${top}" x2="${x}" y2="${H - bottom}" stroke="#555" stroke-dasharray="4 3"/>`,
      `<text x="${Number(x) + 3}" y="${top + 12}" font-size="10" fill="#555">${esc(r.label)}</text>`,
    )
  }
  o.series.forEach((s, i) => {
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
    if (p.length === 0) return
    const c = colour(i)
    let d = ''
    p.forEach(([x, y], j) => {
      const X = sx.map(x).toFixed(1)
      const Y = sy.map(y).toFixed(1)
      if (j === 0) d += `M${X} ${Y}`
      else if (s.step) d += ` H${X} V${Y}`
      else d += ` L${X} ${Y}`
    })
    out.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="2"/>`)
    if (!s.step)
      for (const [x, y] of p)
        out.push(`<circle cx="${sx.map(x).toFixed(1)}" cy="${sy.map(y).toFixed(1)}" r="3" fill="${c}"/>`)
    const ly = top + 10 + i * 18
    out.push(
      `<line x1="${W - right + 12}" y1="${ly}" x2="${W - right + 32}" y2="${ly}" stroke="${c}" stroke-width="3"/>`,
      `<text x="${W - right + 38}" y="${ly + 4}">${esc(s.name)}</text>`,
    )
  })
  out.push('</svg>')
  return `${out.join('\n')}\n`
}

/** The empirical CDF of `samples` as step points (x = value, y = fraction ≤ value), from 0 at the least. */
export function cdfPoints(samples: number[]): Array<[number, number]> {
  const sorted = [...samples].filter(Number.isFinite).sort((a, b) => a - b)
  if (sorted.length === 0) return []
  return [[sorted[0] as number, 0], ...sorted.map((v, i): [number, number] => [v, (i + 1) / sorted.length])]
}

/** One lane of a timeline: a node, what it believed over time, and point events. */
export interface Lane {
  name: string
  /** Intervals with a label (e.g. who this node named as leader); same label, same colour. */
  segments: Array<{ from: number; to: number; label: string }>
  /** Point events on the lane (e.g. "lease"). */
  marks?: Array<{ t: number; label: string }>
}

/** A timeline: lanes of labelled intervals over a shared time axis (ms), with vertical markers. */
export function timelineChart(o: {
  title: string
  xLabel: string
  lanes: Lane[]
  markers?: Array<{ t: number; label: string }>
  width?: number
}): string {
  const W = o.width ?? 760
  const laneH = 28
  const left = 70
  const right = 170
  const top = 40
  const H = top + o.lanes.length * laneH + 56
  const times = o.lanes.flatMap((l) => [
    ...l.segments.flatMap((s) => [s.from, s.to]),
    ...(l.marks ?? []).map((m) => m.t),
  ])
  for (const m of o.markers ?? []) times.push(m.t)
  const sx = scale(times.length ? times : [0, 1], false, left, W - right, false)
  const labels = [...new Set(o.lanes.flatMap((l) => l.segments.map((s) => s.label)))]
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<title>${esc(o.title)}</title>`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${(left + W - right) / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(o.title)}</text>`,
  ]
  const bottomY = top + o.lanes.length * laneH
  for (const t of sx.ticks) {
    const x = sx.map(t).toFixed(1)
    out.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${bottomY}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${x}" y="${bottomY + 16}" text-anchor="middle">${fmt(t)}</text>`)
  }
  out.push(
    `<text x="${(left + W - right) / 2}" y="${bottomY + 36}" text-anchor="middle">${esc(o.xLabel)}</text>`,
  )
  o.lanes.forEach((l, i) => {
    const y = top + i * laneH
    out.push(`<text x="${left - 8}" y="${y + laneH / 2 + 4}" text-anchor="end">${esc(l.name)}</text>`)
    for (const s of l.segments) {
      const x1 = sx.map(s.from)
      const x2 = Math.max(x1 + 1, sx.map(s.to))
      const c = colour(labels.indexOf(s.label))
      out.push(
        `<rect x="${x1.toFixed(1)}" y="${y + 5}" width="${(x2 - x1).toFixed(1)}" height="${laneH - 10}" fill="${c}" fill-opacity="0.75"/>`,
      )
    }
    for (const m of l.marks ?? []) {
      const x = sx.map(m.t).toFixed(1)
      out.push(
        `<path d="M${x} ${y + 3} l5 -6 h-10 z" fill="black"/>`,
        `<text x="${Number(x) + 6}" y="${y + 4}" font-size="9">${esc(m.label)}</text>`,
      )
    }
  })
  for (const m of o.markers ?? []) {
    const x = sx.map(m.t).toFixed(1)
    out.push(
      `<line x1="${x}" y1="${top - 6}" x2="${x}" y2="${bottomY}" stroke="black" stroke-dasharray="4 3"/>`,
      `<text x="${Number(x) + 3}" y="${top - 8}" font-size="10">${esc(m.label)}</text>`,
    )
  }
  labels.forEach((label, i) => {
    const y = top + 10 + i * 18
    out.push(
      `<rect x="${W - right + 12}" y="${y - 7}" width="20" height="12" fill="${colour(i)}" fill-opacity="0.75"/>`,
      `<text x="${W - right + 38}" y="${y + 4}">${esc(label)}</text>`,
    )
  })
  out.push('</svg>')
  return `${out.join('\n')}\n`
}
