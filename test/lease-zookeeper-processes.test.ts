// Lease candidates in separate processes on one real ZooKeeper (`--store zookeeper://` URLs): one leader
// among five; kill -9 of the leader gives the next one only after the dead one's session has expired at
// the server (never two leaders, judged by each process's own claims); resign hands over at once.
// The scenario and its bounds: ./helpers/lease-scenarios.ts (processScenario), ./helpers/lease-stores.ts.
import { processScenario } from './helpers/lease-scenarios.js'
import { zookeeperStore } from './helpers/lease-stores.js'

processScenario(zookeeperStore)
