/** The deterministic simulator: see ./simulation.ts for the model and ./adapter.ts to plug in a protocol. */
export type {
  AdapterOptions,
  AnyAdapter,
  CommonInvariant,
  ProtocolAdapter,
  SimMember,
  SimTiming,
} from './adapter.js'
export type { Violation } from './invariants.js'
export { bullyAdapter, bullyLivenessBoundMs, simPid } from './protocols/bully.js'
export { ADAPTERS } from './protocols/index.js'
export {
  LEASE_SCENARIOS,
  type LeaseAdapterOptions,
  leaseAdapter,
  leaseLivenessBoundMs,
  STORE_ID,
} from './protocols/lease.js'
export { type RaftAdapterOptions, raftAdapter, raftLivenessBoundMs } from './protocols/raft.js'
export { type BatchOptions, type FailedRun, formatSummary, runBatch, type Summary } from './runner.js'
export {
  DEFAULT_SCENARIOS,
  drawScenario,
  type Fault,
  healTime,
  SCENARIO_NAMES,
  type Scenario,
  type ScenarioSet,
  scenarioNames,
  validateScenarioName,
} from './scenario.js'
export { type RunOptions, type RunResult, runSimulation } from './simulation.js'
