/**
 * For bench/lease.ts: one candidate of the etcd3 package's own Election (`client.election(name, ttl)`)
 * in its own process, for comparison with ballot's lease driver. Prints {ev:'lead', t} when elected;
 * on "resign" from stdin it resigns and campaigns again at once (at the back of the line).
 */
import { createInterface } from 'node:readline'
import { Etcd3 } from 'etcd3'

const opts = JSON.parse(process.argv[2] ?? '{}') as {
  id: string
  hosts: string[]
  election: string
  ttlS: number
}
const now = () => performance.timeOrigin + performance.now()
const print = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`)
const client = new Etcd3({ hosts: opts.hosts.map((h) => `http://${h}`) })
const election = client.election(opts.election, opts.ttlS)
let campaign = election.campaign(opts.id)
const watch = () => {
  campaign.on('elected', () => print({ ev: 'lead', t: now(), leading: true, leader: opts.id }))
  campaign.on('error', (err: Error) => print({ ev: 'error', t: now(), message: err.message }))
}
watch()
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'resign') return
  const old = campaign
  print({ ev: 'lead', t: now(), leading: false })
  void old.resign().then(() => {
    campaign = election.campaign(opts.id)
    watch()
  })
})
print({ ev: 'ready', t: now() })
