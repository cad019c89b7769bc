/** Small helpers for benchmark figures. */

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank] as number
}

export function summarize(values: number[]) {
  const round = (v: number) => Math.round(v * 10) / 10
  return {
    runs: values.length,
    p50: round(percentile(values, 50)),
    p99: round(percentile(values, 99)),
    min: round(Math.min(...values)),
    max: round(Math.max(...values)),
  }
}

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
