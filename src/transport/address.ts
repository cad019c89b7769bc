import { InvalidOptionsError } from '../errors.js'

export interface HostPort {
  host: string
  port: number
}

/** Parses "host:port" or "[v6]:port"; throws InvalidOptionsError naming `field`. */
export function parseHostPort(value: string, field: string): HostPort {
  const at = value.lastIndexOf(':')
  if (at <= 0 || at === value.length - 1)
    throw new InvalidOptionsError(field, `expected host:port, got "${value}"`)
  let host = value.slice(0, at)
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1)
  const port = Number(value.slice(at + 1))
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidOptionsError(
      field,
      `port must be an integer from 0 to 65535, got "${value.slice(at + 1)}"`,
    )
  }
  return { host, port }
}

export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}
