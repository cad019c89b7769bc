/**
 * Structured logs: one JSON object per line on stderr (stdout stays for command output), or a pretty,
 * coloured form for a terminal.
 */
import { pino } from 'pino'
import pretty from 'pino-pretty'

export type Logger = pino.Logger

export function createLogger(opts: { format?: 'json' | 'pretty'; level?: string; name?: string }): Logger {
  const format = opts.format ?? (process.stderr.isTTY ? 'pretty' : 'json')
  const base = { level: opts.level ?? 'info', name: opts.name ?? 'ballot' }
  if (format === 'pretty')
    return pino(base, pretty({ destination: 2, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' }))
  return pino(base, pino.destination({ dest: 2, sync: true }))
}
