import type { Command } from 'commander'
import { registerClients } from './client.js'
import { registerDemo } from './demo.js'
import { registerExec } from './exec.js'
import { registerMigrate } from './migrate.js'
import { registerRun } from './run.js'
import { registerSim } from './sim.js'

/** Every subcommand's register function; add new commands to this list. */
const registrars: Array<(program: Command) => void> = [
  registerRun,
  registerExec,
  registerClients,
  registerDemo,
  registerSim,
  registerMigrate,
]

export function registerCommands(program: Command): void {
  for (const register of registrars) register(program)
}
