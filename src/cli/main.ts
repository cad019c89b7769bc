#!/usr/bin/env node
/**
 * The `ballot` command. Each subcommand lives in ./commands/<name>.ts and registers itself here.
 */
import { Command } from 'commander'
import { registerCommands } from './commands/index.js'

const program = new Command()
  .name('ballot')
  .description('Leader election for Node.js: raft and bully, as a library, a daemon and an HTTP service')
  .showHelpAfterError()

registerCommands(program)

program.parseAsync(process.argv).catch((err: unknown) => {
  // One clear line, no stack: bad flags and config are the usual cause.
  console.error(`ballot: ${err instanceof Error ? err.message : String(err)}`)
  process.exit(2)
})
