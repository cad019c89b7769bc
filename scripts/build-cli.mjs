#!/usr/bin/env node
// Bundles the `ballot` command (dist/cli/main.js) with everything only the command needs (commander,
// pino, pino-pretty, prom-client, ms, pure-rand, ...), so that those are devDependencies and a library
// user installs only the library's own dependencies (package.json "dependencies", left outside the
// bundle and loaded from node_modules, but for zod: see BUNDLED_DEPENDENCIES), plus the optional store
// clients they choose.
//
// Bundled packages keep their licences: dist/cli/THIRD-PARTY-LICENSES.txt holds each one's name,
// version, licence and licence text, as their licences ask.
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { build } from 'esbuild'

const pkg = JSON.parse(readFileSync('package.json', 'utf8'))
// zod is bundled too, although the library depends on it: loaded from node_modules it is some forty
// modules, each with its own record and file, and a daemon was ~3 MB larger for it (bench/idle.ts).
const BUNDLED_DEPENDENCIES = new Set(['zod'])
const external = [
  ...Object.keys(pkg.dependencies ?? {}).filter((d) => !BUNDLED_DEPENDENCIES.has(d)),
  ...Object.keys(pkg.peerDependencies ?? {}),
  ...Object.keys(pkg.optionalDependencies ?? {}),
]
const result = await build({
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/cli/main.js',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  external,
  sourcemap: true,
  sourcesContent: true,
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
  // The bundled CommonJS packages call require(); an ES module has none of its own.
  banner: {
    js: "import { createRequire as __ballotCreateRequire } from 'node:module'; const require = __ballotCreateRequire(import.meta.url);",
  },
})

// V8 keeps a script's source in memory for as long as it runs, in one byte per character only if every
// character fits in Latin-1; a single arrow in a comment esbuild kept (it keeps those on class fields)
// doubles it to two bytes a character, a megabyte more in every daemon. Escape what does not fit: in a
// comment this changes nothing, in a string, template or regular expression \uXXXX means the same.
const outfile = 'dist/cli/main.js'
const code = readFileSync(outfile, 'utf8')
const latin1 = code.replace(/[\u0100-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
if (latin1 !== code) writeFileSync(outfile, latin1)

// Which packages went into the bundle: every input under node_modules, by package directory.
const packages = new Map()
for (const input of Object.keys(result.metafile.inputs)) {
  const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input)
  if (!m || packages.has(m[1])) continue
  const meta = JSON.parse(readFileSync(join(m[1], 'package.json'), 'utf8'))
  const licenceFile = ['LICENSE', 'LICENSE.md', 'LICENSE.txt', 'license', 'License', 'LICENCE', 'LICENSE-MIT']
    .map((f) => join(m[1], f))
    .find((f) => {
      try {
        readFileSync(f)
        return true
      } catch {
        return false
      }
    })
  const notice = ['NOTICE', 'NOTICE.md', 'NOTICE.txt']
    .map((f) => join(m[1], f))
    .map((f) => {
      try {
        return `\n\n${readFileSync(f, 'utf8').trim()}`
      } catch {
        return ''
      }
    })
    .join('')
  const text =
    (licenceFile
      ? readFileSync(licenceFile, 'utf8').trim()
      : `License: ${meta.license} (no licence file shipped)`) + notice
  packages.set(m[1], { name: meta.name, version: meta.version, license: meta.license, text })
}
const sorted = [...packages.values()].sort((a, b) => a.name.localeCompare(b.name))
writeFileSync(
  join(dirname('dist/cli/main.js'), 'THIRD-PARTY-LICENSES.txt'),
  `The ballot command (dist/cli/main.js) bundles these packages:\n\n${sorted
    .map((p) => `${'='.repeat(78)}\n${p.name}@${p.version} (${p.license})\n\n${p.text}\n`)
    .join('\n')}`,
)
