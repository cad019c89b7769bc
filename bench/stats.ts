/** Small helpers for benchmark figures. */

/** The p-th percentile (nearest rank) of `values`; NaN when there are none. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank] as number
}

const round1 = (v: number) => Math.round(v * 10) / 10

/** Runs, p50/p90/p99, min and max of `values` (ms, rounded to 0.1). */
export function summarize(values: number[]) {
  return {
    runs: values.length,
    p50: round1(percentile(values, 50)),
    p90: round1(percentile(values, 90)),
    p99: round1(percentile(values, 99)),
    min: round1(Math.min(...values)),
    max: round1(Math.max(...values)),
  }
}

/** What `summarize` returns. */
export type Summary = ReturnType<typeof summarize>

/** Prints rows as an aligned table. */
export function table(rows: Array<Record<string, string | number>>): string {
  if (rows.length === 0) return ''
  const cols = Object.keys(rows[0] as object)
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)))
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(width[i] as number)).join('  ')
  return [
    line(cols),
    line(width.map((w) => '-'.repeat(w))),
    ...rows.map((r) => line(cols.map((c) => String(r[c])))),
  ].join('\n')
}

/** Rows as a Markdown table (every row's keys in the first row's order). */
export function markdownTable(rows: Array<Record<string, string | number>>): string {
  if (rows.length === 0) return '_(no rows)_'
  const cols = Object.keys(rows[0] as object)
  const esc = (v: unknown) => String(v ?? '').replaceAll('|', '\\|')
  return [
    `| ${cols.map(esc).join(' | ')} |`,
    `| ${cols.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${cols.map((c) => esc(r[c])).join(' | ')} |`),
  ].join('\n')
}

/** Whether the module at `url` is the script node was started with (so a bench file runs alone). */
export function isMain(url: string): boolean {
  const script = process.argv[1]
  if (!script) return false
  return new URL(url).pathname === script || new URL(url).pathname === `${script}.ts`
}

/** Sleeps `ms` milliseconds (benchmarks pace themselves; tests never do this). */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** High-resolution wall-clock ms, comparable with the fixtures' event times. */
export const now = () => performance.timeOrigin + performance.now()
