// Lease candidates in separate processes on one real PostgreSQL (`--store postgres://` URLs): one leader
// among five; kill -9 of the leader gives the next one only after the dead one's lease has run out by the
// database's clock (a timer at that expiry, not a poll; never two leaders, judged by each process's own
// claims and the time up to which it could have led); resign hands over at once (LISTEN/NOTIFY).
// The scenario and its bounds: ./helpers/lease-scenarios.ts (processScenario), ./helpers/lease-stores.ts.
import { processScenario } from './helpers/lease-scenarios.js'
import { postgresStore } from './helpers/lease-stores.js'

processScenario(postgresStore)
