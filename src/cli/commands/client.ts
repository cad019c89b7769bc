/**
 * `ballot leader`, `ballot status` and `ballot watch`: small clients of a node's HTTP API.
 *
 * Exit codes: 0 done; 1 no leader (leader); 2 bad flags; 3 the node could not be reached (nothing
 * listens there, or no answer within --timeout), so a script can tell "nobody leads" from "cannot ask".
 */
import type { Command } from 'commander'
import { checkStoreSettings, parseDuration } from '../../daemon/config.js'
import { storeBackend } from '../../daemon/store.js'
import type { LeaderInfo } from '../../election.js'
import { InvalidOptionsError } from '../../errors.js'
import { LeaseFollower } from '../../lease/follower.js'
import { parseStoreUrl } from '../../lease/store-url.js'
import { fetchFailure, get, open, UnreachableError } from '../unreachable.js'

function baseUrl(http: string): string {
  if (!/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/.test(http))
    throw new InvalidOptionsError('--http', `must be host:port, got ${JSON.stringify(http)}`)
  return `http://${http}`
}

const HTTP_FLAG = [
  '--http <host:port>',
  "a node's HTTP API (default: BALLOT_HTTP, or 127.0.0.1:8080, where a lone `ballot run` serves it)",
  process.env.BALLOT_HTTP ?? '127.0.0.1:8080',
] as const

/** --timeout as milliseconds; `field` names the flag in the error. */
function timeoutMs(text: string | undefined, fallback: number | undefined): number | undefined {
  if (text === undefined) return fallback
  const ms = parseDuration(text)
  if (!(ms > 0))
    throw new InvalidOptionsError(
      '--timeout',
      `must be a duration such as 500ms, 5s or 1m, got ${JSON.stringify(text)}`,
    )
  return ms
}

interface StoreFlags {
  store?: string
  election?: string
  storeUser?: string
  storePassword?: string
  storeToken?: string
  schema?: string
  storeCa?: string
  storeCert?: string
  storeKey?: string
}

/** `--store URL --election NAME`: read the store directly, as a follower (flags, then BALLOT_* variables). */
function storeFlags(cmd: Command): Command {
  return cmd
    .option(
      '--store <url>',
      'read the leader from this store directly (etcd://, zookeeper://, consul://, redis:// or postgres://), not a node',
    )
    .option(
      '--election <name>',
      'with --store: the election (etcd prefix, ZooKeeper latch path, Consul prefix)',
    )
    .option('--store-user <name>', 'with --store: user (or in the URL)')
    .option('--store-password <secret>', 'with --store: password (or BALLOT_STORE_PASSWORD)')
    .option('--store-token <token>', 'with --store: Consul ACL token (or BALLOT_STORE_TOKEN)')
    .option('--schema <name>', "with a postgres:// store: the schema of ballot's tables (default ballot)")
    .option('--store-ca <file>', 'with a +https store: CA certificate file to trust (or BALLOT_STORE_CA)')
    .option('--store-cert <file>', 'with a +https store: client certificate file (or BALLOT_STORE_CERT)')
    .option('--store-key <file>', 'with a +https store: its key file (or BALLOT_STORE_KEY)')
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
    schema: flags.schema ?? env.BALLOT_SCHEMA,
    storeCa: flags.storeCa ?? env.BALLOT_STORE_CA,
    storeCert: flags.storeCert ?? env.BALLOT_STORE_CERT,
    storeKey: flags.storeKey ?? env.BALLOT_STORE_KEY,
  }
  const url = parseStoreUrl(store, '--store')
  checkStoreSettings(url.scheme, { ...settings, tls: url.tls })
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
      .option('--json', 'print id, address, token, since and tags as JSON')
      .option(
        '--timeout <duration>',
        'give up (exit 3) when the node does not answer within this (default 5s)',
      ),
  ).action(async (flags: { http: string; json?: boolean; timeout?: string } & StoreFlags) => {
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
    const wait = timeoutMs(flags.timeout, 5000) as number
    const res = await get(
      `${baseUrl(flags.http)}/leader`,
      wait,
      flags.json ? { Accept: 'application/json' } : {},
    )
    const body = await res.text()
    if (res.ok) process.stdout.write(body)
    else {
      process.stderr.write(`ballot: no leader: ${body.trim()}\n`)
      process.exitCode = 1
    }
  })

  program
    .command('status')
    .description('Show the cluster as a node sees it, as a table (exit 3 when the node cannot be reached)')
    .option(...HTTP_FLAG)
    .option('--json', 'print the raw JSON')
    .option('--timeout <duration>', 'give up (exit 3) when the node does not answer within this (default 5s)')
    .action(async (flags: { http: string; json?: boolean; timeout?: string }) => {
      const url = `${baseUrl(flags.http)}/status`
      const res = await get(url, timeoutMs(flags.timeout, 5000) as number)
      const text = await res.text()
      if (!res.ok) throw new UnreachableError(`${url} answered ${res.status}: ${text.trim()}`)
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
      // Only the node asked is exact about itself; what it says of others is what it last heard from
      // them, and a follower hears only from the leader (and candidates): the columns say so.
      const rows = s.members.map((m) => [
        `${m.id}${m.self ? ' (self)' : ''}`,
        m.address ?? '',
        m.kind,
        m.id === s.leader?.id ? 'leader' : m.self ? m.role : m.term === '0' ? 'unknown' : m.role,
        m.self ? String(m.term) : m.term === '0' ? '-' : String(m.term),
        m.self ? '-' : m.lastContactMs === undefined ? 'never' : `${m.lastContactMs} ms ago`,
        m.self ? '-' : m.reachable ? 'yes' : 'no',
      ])
      const head = [
        'NODE',
        'ADDRESS',
        'KIND',
        'ROLE (AS SEEN)',
        'TERM SEEN',
        `HEARD BY ${s.self}`,
        'REACHABLE',
      ]
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)))
      const line = (cells: string[]) =>
        cells
          .map((c, i) => c.padEnd(widths[i] as number))
          .join('  ')
          .trimEnd()
      console.log(`leader: ${s.leader ? `${s.leader.id} (token ${s.leader.token})` : 'none'}`)
      const leaderSelf = s.members.find((m) => m.self)?.id === s.leader?.id
      console.log(
        leaderSelf
          ? `as seen by ${s.self}, the leader: it hears from every member`
          : `as seen by ${s.self} (${s.role}): a follower hears only from the leader and candidates, so the other followers' rows are old; ask the leader's node for fresh ones`,
      )
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
      .option('--json', 'print each event as JSON')
      .option(
        '--timeout <duration>',
        'give up (exit 3) after this long without a connection (default: keep retrying, and say so)',
      ),
  ).action(async (flags: { http: string; json?: boolean; timeout?: string } & StoreFlags) => {
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
    await watchHttp(flags)
    return
  })
}

/** One server-sent event. */
interface ServerEvent {
  type: string
  data: string
}

/** Reads a text/event-stream body, calling `onEvent` for each event, until the stream ends. */
async function readEvents(body: AsyncIterable<Uint8Array>, onEvent: (event: ServerEvent) => void) {
  const decoder = new TextDecoder()
  let buffer = ''
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, '\n')
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      let type = 'message'
      const data: string[] = []
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue // a comment: the server's keep-alive
        const colon = line.indexOf(':')
        const field = colon < 0 ? line : line.slice(0, colon)
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
        if (field === 'event') type = value
        else if (field === 'data') data.push(value)
      }
      if (data.length > 0) onEvent({ type, data: data.join('\n') })
    }
  }
}

/**
 * `ballot watch --http`: follows /events, printing each change. When the node cannot be reached, or the
 * stream breaks, it says so on stderr and tries again (1 s, doubling to 5 s); with --timeout it gives
 * up (exit 3) once that long has passed without a connection.
 */
async function watchHttp(flags: { http: string; json?: boolean; timeout?: string }): Promise<never> {
  const url = `${baseUrl(flags.http)}/events`
  const limit = timeoutMs(flags.timeout, undefined)
  const print = ({ type, data }: ServerEvent) => {
    if (type !== 'state' && type !== 'change') return
    if (flags.json) return console.log(JSON.stringify({ event: type, ...JSON.parse(data) }))
    const d = JSON.parse(data) as { role: string; leader: { id: string; token: string } | null; at?: string }
    const who = d.leader ? `leader ${d.leader.id} (token ${d.leader.token})` : 'no leader'
    console.log(`${d.at ?? new Date().toISOString()}  ${d.role.padEnd(9)}  ${who}`)
  }
  let disconnectedSince = Date.now()
  let delayMs = 1000
  let failures = 0
  for (;;) {
    let why: string
    try {
      // A timeout on the answer's head only: the stream itself may stay quiet while nothing changes.
      const res = await open(url, 5000, { Accept: 'text/event-stream' }).catch((err: unknown) => {
        throw new UnreachableError(fetchFailure(err, 5000))
      })
      if (!res.ok) {
        res.body.resume()
        throw new UnreachableError(`answered ${res.status}`)
      }
      if (failures > 0) console.error(`ballot: connected to ${url}`)
      failures = 0
      delayMs = 1000
      try {
        await readEvents(res.body, print)
        why = 'the event stream ended'
      } catch (err) {
        why = `the event stream broke: ${fetchFailure(err, 5000)}`
      }
      disconnectedSince = Date.now()
    } catch (err) {
      why = err instanceof UnreachableError ? err.message : String(err)
    }
    failures++
    const left = limit === undefined ? delayMs : limit - (Date.now() - disconnectedSince)
    if (left <= 0)
      throw new UnreachableError(`cannot reach ${url}: ${why}; gave up after --timeout ${flags.timeout}`)
    const wait = Math.min(delayMs, left)
    console.error(`ballot: cannot reach ${url}: ${why}; retrying in ${wait / 1000} s (attempt ${failures})`)
    await new Promise((resolve) => setTimeout(resolve, wait))
    delayMs = Math.min(5000, delayMs * 2)
  }
}
