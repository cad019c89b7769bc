import type { Command } from 'commander'
import { registerSim } from './sim.js'

/** Every subcommand's register function; add new commands to this list. */
const registrars: Array<(program: Command) => void> = [registerSim]

export function registerCommands(program: Command): void {
  for (const register of registrars) register(program)
}
