/**
 * One Node warning the CLI does not print: DEP0123 ("Setting the TLS ServerName to an IP address"),
 * which gRPC (etcd over TLS) triggers on every connection to an etcd named by IP address. Node ignores
 * the name there and verifies the certificate against the IP as it should; the warning is nothing a
 * user can act on, and it would break the CLI's one-line answers. Every other warning is printed.
 */
const emit = process.emitWarning.bind(process)
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const opt = rest[0]
  const code = typeof opt === 'object' && opt !== null ? (opt as { code?: string }).code : rest[1]
  if (code === 'DEP0123') return
  ;(emit as (...args: unknown[]) => void)(warning, ...rest)
}) as typeof process.emitWarning
