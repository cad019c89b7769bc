/** Every protocol the simulator can run, by `--algo` name. Add a line here when a driver lands. */
import type { AdapterOptions, AnyAdapter } from '../adapter.js'
import { bullyAdapter } from './bully.js'
import { leaseAdapter } from './lease.js'
import { raftAdapter } from './raft.js'

export const ADAPTERS: Record<string, (opts: AdapterOptions) => AnyAdapter> = {
  bully: bullyAdapter,
  lease: leaseAdapter,
  raft: raftAdapter,
}
