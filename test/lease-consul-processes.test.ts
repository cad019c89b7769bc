// Lease candidates in separate processes on one real Consul (`--store consul://` URLs): one leader among
// five; kill -9 of the leader gives the next one only after the dead one's session was invalidated and
// its lock-delay ran out (never two leaders, judged by each process's own claims); resign at once. The
// lock-delay is 1 s here (the default is 15 s, as `consul lock`).
// The scenario and its bounds: ./helpers/lease-scenarios.ts (processScenario), ./helpers/lease-stores.ts.
import { processScenario } from './helpers/lease-scenarios.js'
import { consulStore } from './helpers/lease-stores.js'

processScenario(consulStore)
