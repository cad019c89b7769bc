/**
 * `ballot leader`, `ballot status` and `ballot watch`: small clients of a node's HTTP API.
 */
import type { Command } from 'commander'
import { EventSource } from 'eventsource'
import { InvalidOptionsError } from '../../errors.js'

function baseUrl(http: string): string {
  if (!/^[^:\s]+:\d+$/.test(http))
    throw new InvalidOptionsError('--http', `expected host:port, got "${http}"`)
  return `http://${http}`
}

const HTTP_FLAG = [
  '--http <host:port>',
  "a node's HTTP API",
  process.env.BALLOT_HTTP ?? '127.0.0.1:8080',
] as const

export function registerClients(program: Command): void {
  program
    .command('leader')
    .description('Print who leads, as a node sees it (exit 1 while there is no leader)')
    .option(...HTTP_FLAG)
    .option('--json', 'print id, address, token, since and tags as JSON')
    .action(async (flags: { http: string; json?: boolean }) => {
      const res = await fetch(`${baseUrl(flags.http)}/leader`, {
        headers: flags.json ? { Accept: 'application/json' } : {},
      })
      const body = await res.text()
      if (res.ok) process.stdout.write(body)
      else {
        process.stderr.write(`ballot: no leader: ${body.trim()}\n`)
        process.exitCode = 1
      }
    })

  program
    .command('status')
    .description('Show the cluster as a node sees it, as a table')
    .option(...HTTP_FLAG)
    .option('--json', 'print the raw JSON')
    .action(async (flags: { http: string; json?: boolean }) => {
      const res = await fetch(`${baseUrl(flags.http)}/status`)
      const text = await res.text()
      if (flags.json) {
        process.stdout.write(text)
        return
      }
      const s = JSON.parse(text) as {
        self: string
        role: string
        term: string
        leader?: { id: string; token: string }
        members: Array<{
          id: string
          address?: string
          kind: string
          role: string
          term: string
          lastContactMs?: number
          reachable: boolean
          self: boolean
        }>
      }
      const rows = s.members.map((m) => [
        `${m.id}${m.self ? ' (self)' : ''}`,
        m.address ?? '',
        m.kind,
        m.id === s.leader?.id ? 'leader' : m.role,
        String(m.term),
        m.lastContactMs === undefined ? '-' : `${m.lastContactMs} ms`,
        m.reachable ? 'yes' : 'no',
      ])
      const head = ['NODE', 'ADDRESS', 'KIND', 'ROLE', 'TERM', 'LAST CONTACT', 'REACHABLE']
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)))
      const line = (cells: string[]) =>
        cells
          .map((c, i) => c.padEnd(widths[i] as number))
          .join('  ')
          .trimEnd()
      console.log(`leader: ${s.leader ? `${s.leader.id} (token ${s.leader.token})` : 'none'}`)
      console.log(line(head))
      for (const r of rows) console.log(line(r))
    })

  program
    .command('watch')
    .description('Stream every state and leader change a node sees (server-sent events), one line each')
    .option(...HTTP_FLAG)
    .option('--json', 'print each event as JSON')
    .action(async (flags: { http: string; json?: boolean }) => {
      const es = new EventSource(`${baseUrl(flags.http)}/events`)
      const print = (type: string) => (ev: MessageEvent) => {
        if (flags.json) return console.log(JSON.stringify({ event: type, ...JSON.parse(ev.data) }))
        const d = JSON.parse(ev.data) as {
          role: string
          leader: { id: string; token: string } | null
          at?: string
        }
        const who = d.leader ? `leader ${d.leader.id} (token ${d.leader.token})` : 'no leader'
        console.log(`${d.at ?? new Date().toISOString()}  ${d.role.padEnd(9)}  ${who}`)
      }
      es.addEventListener('state', print('state'))
      es.addEventListener('change', print('change'))
      es.addEventListener('error', () => {
        if (es.readyState === EventSource.CLOSED) {
          console.error(`ballot: lost the event stream from ${flags.http}`)
          process.exit(1)
        }
      })
      await new Promise(() => {}) // until interrupted
    })
}
