/**
 * Store clients are optional peer dependencies: a backend loads its client with `import()` the first time
 * it is used, so an application that never talks to ZooKeeper never needs node-zookeeper-client. When the
 * package is missing the error names it and says how to install it.
 */
import { InvalidOptionsError } from '../../errors.js'

/** `import()` of an optional package; a missing package becomes an INVALID_OPTIONS error naming it. */
export async function loadOptional<T>(pkg: string, store: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load()
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND')
      throw new InvalidOptionsError(
        'store',
        `the ${store} backend needs the package "${pkg}": npm install ${pkg}`,
        { cause: err },
      )
    throw err
  }
}

/** Races `promise` against a timer; the timer never keeps the process alive. */
export function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms)
    timer.unref?.()
    promise.then(
      (v) => {
        clearTimeout(timer)
        resolve(v)
      },
      (e) => {
        clearTimeout(timer)
        reject(e)
      },
    )
  })
}
