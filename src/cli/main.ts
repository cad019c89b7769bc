#!/usr/bin/env node
/**
 * The `ballot` command. Each subcommand lives in ./commands/<name>.ts and registers itself here.
 *
 * Every mistake is one line on stderr in one style, `ballot: <flag or setting>: <what is allowed>, got
 * <what was given>`, never help text. Exit codes: 0 done; 1 a negative answer (no leader, a broken
 * invariant) or a failure at run time; 2 bad flags, config or environment; 3 a node that cannot be
 * reached (leader, status, watch).
 * @module
 */
import './quiet-warnings.js'
import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { InvalidOptionsError } from '../errors.js'
import { registerCommands } from './commands/index.js'

/** The package's version, read from the package.json beside dist/ (the same from the bundle or tsc's output). */
function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
    return String(pkg.version)
  } catch {
    return 'unknown'
  }
}

const program = new Command()
  .name('ballot')
  .description('Leader election for Node.js: raft and bully, as a library, a daemon and an HTTP service')
  .version(version(), '-V, --version', 'print the version and exit')
  // Commander's own messages would come with help text over several lines: we print one line instead.
  .exitOverride()
  .configureOutput({ writeErr: () => {}, outputError: () => {} })

registerCommands(program)

/** Commander's messages, in the CLI's own style. */
function commanderMessage(err: CommanderError): string {
  const text = err.message.replace(/^error: /, '')
  const hint = /\(Did you mean (.+)\?\)/.exec(text)?.[1]
  const quoted = /'([^']+)'/.exec(text)?.[1] ?? ''
  switch (err.code) {
    case 'commander.unknownOption':
      return `${quoted}: unknown option${hint ? ` (did you mean ${hint}?)` : ''}; see --help`
    case 'commander.unknownCommand':
      return `${quoted}: unknown command${hint ? ` (did you mean ${hint}?)` : ''}; known: ${program.commands.map((c) => c.name()).join(', ')}`
    case 'commander.optionMissingArgument':
      return `${quoted.split(/[ ,]/)[0]}: needs a value (${quoted})`
    case 'commander.missingArgument':
      return `${quoted}: missing; see --help`
    case 'commander.excessArguments':
      return `${text.replace(/\.$/, '')}; see --help`
    default:
      return text.split('\n')[0] ?? text
  }
}

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) {
    if (
      err.code === 'commander.helpDisplayed' ||
      err.code === 'commander.version' ||
      err.code === 'commander.help'
    )
      process.exit(0)
    console.error(`ballot: ${commanderMessage(err)}`)
    process.exit(2)
  }
  console.error(`ballot: ${err instanceof Error ? err.message : String(err)}`)
  const code = (err as { exitCode?: unknown })?.exitCode
  process.exit(typeof code === 'number' ? code : err instanceof InvalidOptionsError ? 2 : 1)
})
