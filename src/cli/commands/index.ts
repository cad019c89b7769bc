import type { Command } from 'commander'

/** Every subcommand's register function; add new commands to this list. */
const registrars: Array<(program: Command) => void> = []

export function registerCommands(program: Command): void {
  for (const register of registrars) register(program)
}
