/**
 * Checks of options objects that TypeScript cannot make for JavaScript callers or for values built at
 * run time: unknown keys (a misspelt option would otherwise be ignored without a word) and enumerated
 * values. Each failure is one InvalidOptionsError naming the field.
 * @module
 */
import { InvalidOptionsError } from '../errors.js'

/** Every key of `T`, each mapped to true: a list the compiler keeps complete (a missing key fails to build). */
export type KnownKeys<T> = { readonly [K in keyof Required<T>]: true }

/** Edit distance counting a swap of two neighbours as one edit (typos like "pdi"), for hints. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  )
  const at = (i: number, j: number) => d[i]?.[j] ?? 0
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      let best = Math.min(
        at(i - 1, j) + 1,
        at(i, j - 1) + 1,
        at(i - 1, j - 1) + (a[i - 1] === b[j - 1] ? 0 : 1),
      )
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, at(i - 2, j - 2) + 1)
      ;(d[i] as number[])[j] = best
    }
  }
  return at(a.length, b.length)
}

/** The known name closest to `given`, when one is close enough to be a typo. */
export function closest(given: string, known: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const name of known) {
    // Ties go to the name of the same length: "pdi" is pid swapped, not id with a letter more.
    const d = distance(given.toLowerCase(), name.toLowerCase()) + (name.length === given.length ? 0 : 0.5)
    if (d < bestDistance) {
      best = name
      bestDistance = d
    }
  }
  return bestDistance <= Math.max(2, Math.floor(given.length / 3)) + 0.5 ? best : undefined
}

/**
 * Throws an InvalidOptionsError when `value` is not a plain object or has a key not in `known`
 * (`field` names the object in the message: "options", "members[2]", "timing").
 */
export function checkOptions(value: unknown, known: Readonly<Record<string, true>>, field: string): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new InvalidOptionsError(field, `must be an object, got ${describeValue(value)}`)
  const names = Object.keys(known)
  for (const key of Object.keys(value)) {
    if (Object.hasOwn(known, key)) continue
    const hint = closest(key, names)
    throw new InvalidOptionsError(
      field === 'options' ? key : `${field}.${key}`,
      `unknown option${hint ? ` (did you mean ${hint}?)` : ''}; known: ${names.join(', ')}`,
    )
  }
}

/** Throws unless `value` is undefined or one of `allowed`. */
export function checkOneOf(value: unknown, allowed: readonly string[], field: string): void {
  if (value === undefined || allowed.includes(value as string)) return
  throw new InvalidOptionsError(
    field,
    `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${describeValue(value)}`,
  )
}

/** A value as a message shows it: strings quoted, the rest as JSON where it can be. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'undefined'
  if (typeof value === 'bigint') return `${value}n`
  if (typeof value === 'function') return 'a function'
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/**
 * Checks a shared `key` option: undefined (none), a non-empty string, or a non-empty list of non-empty
 * strings (the first signs, every one is accepted). Throws InvalidOptionsError naming `key` (or `key[i]`).
 */
export function checkKey(key: unknown, field = 'key'): void {
  if (key === undefined) return
  if (typeof key === 'string') {
    if (key.length === 0)
      throw new InvalidOptionsError(field, 'must be a non-empty string (or undefined for none)')
    return
  }
  if (!Array.isArray(key) || key.length === 0)
    throw new InvalidOptionsError(
      field,
      `must be a non-empty string or a non-empty list of them (or undefined for none), got ${describeValue(key)}`,
    )
  key.forEach((k, i) => {
    if (typeof k !== 'string' || k.length === 0)
      throw new InvalidOptionsError(`${field}[${i}]`, `must be a non-empty string, got ${describeValue(k)}`)
  })
}
