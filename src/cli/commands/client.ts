/**
 * `ballot leader`, `ballot status` and `ballot watch`: small clients of a node's HTTP API.
 */
import type { Command } from 'commander'
import { EventSource } from 'eventsource'
import { checkStoreSettings } from '../../daemon/config.js'
import { storeBackend } from '../../daemon/store.js'
import type { LeaderInfo } from '../../election.js'
import { InvalidOptionsError } from '../../errors.js'
import { LeaseFollower } from '../../lease/follower.js'
import { parseStoreUrl } from '../../lease/store-url.js'

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

interface StoreFlags {
  store?: string
  election?: string
  storeUser?: string
  storePassword?: string
  storeToken?: string
}

/** `--store URL --election NAME`: read the store directly, as a follower (flags, then BALLOT_* variables). */
function storeFlags(cmd: Command): Command {
  return cmd
    .option(
      '--store <url>',
      'read the leader from this store directly (etcd://, zookeeper:// or consul://host:port), not a node',
    )
    .option(
      '--election <name>',
      'with --store: the election (etcd prefix, ZooKeeper latch path, Consul prefix)',
    )
    .option('--store-user <name>', 'with --store: user (or in the URL)')
    .option('--store-password <secret>', 'with --store: password (or BALLOT_STORE_PASSWORD)')
    .option('--store-token <token>', 'with --store: Consul ACL token (or BALLOT_STORE_TOKEN)')
}

function storeFollower(flags: StoreFlags): LeaseFollower | undefined {
  const env = process.env
  const store = flags.store ?? env.BALLOT_STORE
  if (!store) return undefined
  const election = flags.election ?? env.BALLOT_ELECTION
  if (!election) throw new InvalidOptionsError('--election', 'required with --store')
  const settings = {
    store,
    election,
    storeUser: flags.storeUser ?? env.BALLOT_STORE_USER,
    storePassword: flags.storePassword ?? env.BALLOT_STORE_PASSWORD,
    storeToken: flags.storeToken ?? env.BALLOT_STORE_TOKEN,
  }
  checkStoreSettings(parseStoreUrl(store, '--store').scheme, settings)
  return new LeaseFollower({ backend: storeBackend(settings, true).backend })
}

const leaderJson = (l: LeaderInfo) =>
  JSON.stringify({
    id: l.id,
    address: l.address,
    token: l.token.toString(),
    since: new Date(l.since).toISOString(),
    tags: l.tags ?? {},
  })

export function registerClients(program: Command): void {
  storeFlags(
    program
      .command('leader')
      .description(
        'Print who leads, as a node (or, with --store, the store) sees it; exit 1 while nobody leads',
      )
      .option(...HTTP_FLAG)
      .option('--json', 'print id, address, token, since and tags as JSON'),
  ).action(async (flags: { http: string; json?: boolean } & StoreFlags) => {
    const follower = storeFollower(flags)
    if (follower) {
      await follower.start()
      const l = follower.leader()
      await follower.stop()
      if (!l) {
        process.stderr.write('ballot: no leader: nobody is in the election\n')
        process.exitCode = 1
      } else process.stdout.write(`${flags.json ? leaderJson(l) : (l.address ?? l.id)}\n`)
      return
    }
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

  storeFlags(
    program
      .command('watch')
      .description(
        'Stream every leader change a node (server-sent events) or, with --store, the store sees, one line each',
      )
      .option(...HTTP_FLAG)
      .option('--json', 'print each event as JSON'),
  ).action(async (flags: { http: string; json?: boolean } & StoreFlags) => {
    const follower = storeFollower(flags)
    if (follower) {
      const print = (leader: LeaderInfo | undefined, at: number) => {
        if (flags.json) console.log(leader ? leaderJson(leader) : JSON.stringify({ leader: null }))
        else
          console.log(
            `${new Date(at).toISOString()}  ${leader ? `leader ${leader.id} (token ${leader.token})${leader.address ? ` at ${leader.address}` : ''}` : 'no leader'}`,
          )
      }
      follower.on('change', (c) => c.role !== 'stopped' && print(c.leader, c.at))
      follower.on('error', (err) => console.error(`ballot: ${err.message}`))
      await follower.start()
      const stop = () => void follower.stop().then(() => process.exit(0))
      process.on('SIGINT', stop)
      process.on('SIGTERM', stop)
      await new Promise(() => {})
      return
    }
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
