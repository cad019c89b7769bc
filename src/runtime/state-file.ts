/**
 * Durable state in one small JSON file, replaced atomically (write to a temporary file, fsync, rename,
 * as write-file-atomic does) so a crash leaves either the old or the new state, never a torn one.
 */
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import writeFileAtomic from 'write-file-atomic'
import type { z } from 'zod'
import { PersistenceError } from '../errors.js'

export class StateFile<T> {
  readonly path: string

  constructor(
    dataDir: string,
    private readonly schema: z.ZodType<T>,
    name = 'state.json',
  ) {
    mkdirSync(dataDir, { recursive: true })
    this.path = join(dataDir, name)
  }

  /** The saved state, or undefined when none was saved yet. A corrupt file is an error, not a reset. */
  load(): T | undefined {
    let text: string
    try {
      text = readFileSync(this.path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw new PersistenceError(`cannot read ${this.path}: ${(err as Error).message}`, { cause: err })
    }
    let raw: unknown
    try {
      raw = JSON.parse(text)
    } catch (err) {
      throw new PersistenceError(`${this.path} is not valid JSON; refusing to start with unknown state`, {
        cause: err,
      })
    }
    const parsed = this.schema.safeParse(raw)
    if (!parsed.success)
      throw new PersistenceError(`${this.path} does not hold valid state: ${parsed.error.message}`)
    return parsed.data
  }

  /** Writes and syncs the state before returning: callers send votes only after this. */
  save(state: T): void {
    writeFileAtomic.sync(this.path, `${JSON.stringify(state)}\n`, { fsync: true })
  }
}
