/**
 * The `dataDir` option, checked when an election is built: a path that is a file, or a directory that
 * cannot be created or written, is a mistake in the options (INVALID_OPTIONS naming the field), found
 * at once rather than as a raw EEXIST or EACCES from deep inside the first save.
 * @module
 */
import { accessSync, constants, mkdirSync, statSync } from 'node:fs'
import { InvalidOptionsError } from '../errors.js'

const REASONS: Record<string, string> = {
  EEXIST: 'it exists and is not a directory',
  ENOTDIR: 'a part of the path is a file, not a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
}

/** Creates `dir` if needed and checks it is a writable directory; throws InvalidOptionsError otherwise. */
export function openDataDir(dir: unknown, field = 'dataDir'): string {
  if (typeof dir !== 'string' || dir.length === 0)
    throw new InvalidOptionsError(field, `must be a directory path, got ${JSON.stringify(dir)}`)
  const fail = (err: unknown): never => {
    const code = (err as NodeJS.ErrnoException)?.code ?? ''
    throw new InvalidOptionsError(
      field,
      `cannot use ${JSON.stringify(dir)} as the data directory: ${REASONS[code] ?? (err as Error)?.message ?? err}`,
      { cause: err },
    )
  }
  try {
    mkdirSync(dir, { recursive: true })
    if (!statSync(dir).isDirectory()) fail(Object.assign(new Error('not a directory'), { code: 'EEXIST' }))
    accessSync(dir, constants.W_OK | constants.X_OK)
  } catch (err) {
    if (err instanceof InvalidOptionsError) throw err
    fail(err)
  }
  return dir
}
