/**
 * `ballot migrate --store postgres://... [--schema NAME]`: creates ballot's schema, sequences and tables
 * (see src/lease/stores/postgres-sql.ts) ahead of time, as a role that may CREATE, so that candidates can
 * run as a role that may not. Idempotent; touches nothing outside that schema. Candidates also create
 * them on first use when they may.
 */
import type { Command } from 'commander'
import { InvalidOptionsError } from '../../errors.js'
import { parseStoreUrl, redactStoreUrl } from '../../lease/store-url.js'
import { DEFAULT_POSTGRES_SCHEMA, migratePostgres } from '../../lease/stores/postgres.js'

interface MigrateFlags {
  store?: string
  schema?: string
  storeUser?: string
  storePassword?: string
}

export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description("Create ballot's tables in a PostgreSQL store (a schema of their own) ahead of time")
    .option('--store <url>', 'postgres://[user:pass@]host:port/db (or BALLOT_STORE)')
    .option('--schema <name>', `the schema to create them in (default ${DEFAULT_POSTGRES_SCHEMA})`)
    .option('--store-user <name>', 'user (or in the URL)')
    .option('--store-password <secret>', 'password (or BALLOT_STORE_PASSWORD; never printed)')
    .action(async (flags: MigrateFlags) => {
      const env = process.env
      const store = flags.store ?? env.BALLOT_STORE
      if (!store) throw new InvalidOptionsError('--store', 'required (postgres://user@host:port/db)')
      const url = parseStoreUrl(store, '--store')
      if (url.scheme !== 'postgres')
        throw new InvalidOptionsError(
          '--store',
          `migrate applies to postgres:// stores only, got ${url.scheme}://`,
        )
      const schema = flags.schema ?? env.BALLOT_SCHEMA ?? DEFAULT_POSTGRES_SCHEMA
      if (!/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/.test(schema))
        throw new InvalidOptionsError(
          '--schema',
          `expected a plain SQL identifier such as ballot, got "${schema}"`,
        )
      const hp = url.hosts[0] as string
      const at = hp.lastIndexOf(':')
      await migratePostgres({
        connection: {
          host: hp.slice(0, at).replace(/^\[|\]$/g, ''),
          port: Number(hp.slice(at + 1)),
          user: flags.storeUser ?? env.BALLOT_STORE_USER ?? url.username,
          password: flags.storePassword ?? env.BALLOT_STORE_PASSWORD ?? url.password,
          database: url.database,
        },
        schema,
      })
      process.stdout.write(`ballot: schema "${schema}" is ready in ${redactStoreUrl(store)}\n`)
    })
}
