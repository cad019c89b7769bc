// Lease candidates in separate processes on one real etcd: one leader among five; kill -9 of the leader
// gives the next one only after the dead one's lease has run out at the store (never two leaders, judged
// by each process's own claims and the time up to which it could have led); resign hands over at once.
// The scenario and its bounds: ./helpers/lease-scenarios.ts (processScenario), ./helpers/lease-stores.ts.
import { processScenario } from './helpers/lease-scenarios.js'
import { etcdStore } from './helpers/lease-stores.js'

processScenario(etcdStore)
