// Lease candidates in separate processes on one real redis-server (`--store redis://` URLs): one leader
// among five; kill -9 of the leader gives the next one only after the dead one's lock (which expires with
// its session) has expired at the server, woken by the PTTL hint (never two leaders, judged by each
// process's own claims); resign hands over at once, by pub/sub (within 300 ms).
// The scenario and its bounds: ./helpers/lease-scenarios.ts (processScenario), ./helpers/lease-stores.ts.
import { processScenario } from './helpers/lease-scenarios.js'
import { redisStore } from './helpers/lease-stores.js'

processScenario(redisStore)
