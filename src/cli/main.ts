#!/usr/bin/env node
/**
 * The `ballot` command. Each subcommand lives in ./commands/<name>.ts and registers itself here.
 * Bad flags, config and environment give one line naming the setting, and exit code 2; other failures
 * exit 1.
 */
import { Command, CommanderError } from 'commander'
import { InvalidOptionsError } from '../errors.js'
import { registerCommands } from './commands/index.js'

const program = new Command()
  .name('ballot')
  .description('Leader election for Node.js: raft and bully, as a library, a daemon and an HTTP service')
  // Commander's own messages would come with help text over several lines: we print one line instead.
  .exitOverride()
  .configureOutput({ writeErr: () => {}, outputError: () => {} })

registerCommands(program)

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) {
    if (
      err.code === 'commander.helpDisplayed' ||
      err.code === 'commander.version' ||
      err.code === 'commander.help'
    )
      process.exit(0)
    console.error(`ballot: ${err.message.replace(/^error: /, '')}`)
    process.exit(2)
  }
  console.error(`ballot: ${err instanceof Error ? err.message : String(err)}`)
  process.exit(err instanceof InvalidOptionsError ? 2 : 1)
})
