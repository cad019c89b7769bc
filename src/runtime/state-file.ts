/**
 * Durable state in one small JSON file, replaced atomically (write to a temporary file, fsync, rename,
 * as write-file-atomic does) so a crash leaves either the old or the new state, never a torn one. The
 * directory is synced after the rename: until then the rename lives only in the page cache, and a power
 * loss could bring back the old file, undoing a vote that was already sent.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import writeFileAtomic from 'write-file-atomic'
import type { z } from 'zod'
import { PersistenceError } from '../errors.js'
import type { HardStateStore } from './hard-state-store.js'

/** The file-system calls a save makes; replaceable so tests can watch them or make them fail. */
export interface StateFileSystem {
  /** Writes `data` to a temporary file beside `path`, syncs it and renames it over `path`. */
  writeAtomic(path: string, data: string): void
  /** Makes the directory's entries (the rename) durable: open it, fsync, close. */
  syncDir(dir: string): void
}

export const nodeStateFileSystem: StateFileSystem = {
  writeAtomic: (path, data) => writeFileAtomic.sync(path, data, { fsync: true }),
  syncDir: (dir) => {
    // Windows cannot open a directory for syncing (and NTFS journals the rename itself).
    if (process.platform === 'win32') return
    const fd = openSync(dir, 'r')
    try {
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
  },
}

export interface StateFileOptions {
  /** Default: the real file system. */
  fs?: StateFileSystem
}

export class StateFile<T> implements HardStateStore<T> {
  readonly path: string
  private readonly fs: StateFileSystem

  constructor(
    dataDir: string,
    private readonly schema: z.ZodType<T>,
    name = 'state.json',
    opts: StateFileOptions = {},
  ) {
    mkdirSync(dataDir, { recursive: true })
    this.path = join(dataDir, name)
    this.fs = opts.fs ?? nodeStateFileSystem
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

  /**
   * Writes the state, syncs the file, renames it into place and syncs the directory, all before
   * returning: callers send votes only after this. Throws a PersistenceError when any step fails.
   */
  save(state: T): void {
    try {
      this.fs.writeAtomic(this.path, `${JSON.stringify(state)}\n`)
    } catch (err) {
      throw new PersistenceError(`cannot write ${this.path}: ${(err as Error).message}`, { cause: err })
    }
    const dir = dirname(this.path)
    try {
      this.fs.syncDir(dir)
    } catch (err) {
      throw new PersistenceError(
        `wrote ${this.path} but cannot sync its directory ${dir}: ${(err as Error).message}`,
        { cause: err },
      )
    }
  }
}
