/**
 * The package as a new user gets it (issue 10): `npm pack`, install the tarball into a fresh project,
 * then type-check (strict, exactOptionalPropertyTypes) and run every example of README.md as written,
 * extracted from README.md itself so the README cannot drift from the code. Also: the install prints no
 * npm warning, pulls only the library's dependencies, ships what its source maps point at, a licence,
 * and a `ballot` command that works without the daemon's packages installed.
 *
 * Needs `npm run build` first (npm test builds): the tarball is packed with --ignore-scripts, so this
 * test never rebuilds dist/ under other tests that run the CLI from it.
 */
import assert from 'node:assert/strict'
import { type SpawnSyncReturns, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { EtcdServer } from './helpers/etcd-server.js'

const ROOT = new URL('..', import.meta.url).pathname
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc')
const work = mkdtempSync(join(tmpdir(), 'ballot-pack-'))
const project = join(work, 'consumer')
let etcd: EtcdServer | undefined

function run(
  command: string,
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
  timeout = 180_000,
) {
  const r: SpawnSyncReturns<string> = spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    timeout,
    // Examples write their data under the temporary directory: keep that inside this test's own.
    env: { ...process.env, TMPDIR: join(work, 'tmp'), npm_config_update_notifier: 'false', ...env },
  })
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error }
}

/** Every fenced block of README.md whose info string is `ts` or `js`, in order. */
export function readmeExamples(markdown: string): Array<{ lang: 'ts' | 'js'; code: string; line: number }> {
  const out: Array<{ lang: 'ts' | 'js'; code: string; line: number }> = []
  const lines = markdown.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(ts|js)\s*$/.exec(lines[i] as string)
    if (!open) continue
    const start = i + 1
    let end = start
    while (end < lines.length && lines[end] !== '```') end++
    out.push({ lang: open[1] as 'ts' | 'js', code: lines.slice(start, end).join('\n'), line: start + 1 })
    i = end
  }
  return out
}

const examples = readmeExamples(readFileSync(join(ROOT, 'README.md'), 'utf8'))
let tarball = ''

before(async () => {
  mkdirSync(join(work, 'tmp'))
  mkdirSync(project)
  assert.ok(
    existsSync(join(ROOT, 'dist/index.js')) && existsSync(join(ROOT, 'dist/cli/main.js')),
    'run npm run build first',
  )
  const packed = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT)
  assert.equal(packed.status, 0, packed.stderr)
  tarball = join(work, (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0]?.filename ?? '')
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }),
  )
  etcd = await EtcdServer.start()
})

after(async () => {
  await etcd?.close()
  rmSync(work, { recursive: true, force: true })
})

describe('the packed package', () => {
  test('the tarball holds a licence, the sources its maps point at, the command bundle; not the daemon modules', () => {
    const list = run('tar', ['-tzf', tarball], work).stdout.split('\n')
    for (const file of [
      'package/LICENSE',
      'package/README.md',
      'package/dist/index.js',
      'package/dist/index.d.ts',
      'package/dist/index.d.ts.map',
      'package/src/index.ts',
      'package/dist/cli/main.js',
      'package/dist/cli/THIRD-PARTY-LICENSES.txt',
    ])
      assert.ok(list.includes(file), `${file} is in the tarball`)
    assert.ok(!list.some((f) => f.startsWith('package/dist/daemon/') || f.startsWith('package/test/')))
  })

  test('installs with no npm warning, and without the command-only packages', () => {
    const r = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], project)
    assert.equal(r.status, 0, r.stderr)
    assert.doesNotMatch(r.stderr, /npm warn/i, `no warning on install:\n${r.stderr}`)
    const installed = readdirSync(join(project, 'node_modules')).filter((d) => !d.startsWith('.'))
    for (const name of ['pino', 'pino-pretty', 'prom-client', 'commander', 'eventsource', 'ms', 'pure-rand'])
      assert.ok(!installed.includes(name), `${name} is not installed for the library`)
    assert.ok(installed.length <= 8, `a small install: ${installed.join(', ')}`)
    // The README's etcd example needs the optional etcd client, as the README says.
    const etcd3 = JSON.parse(readFileSync(join(ROOT, 'node_modules/etcd3/package.json'), 'utf8')).version
    const e = run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', `etcd3@${etcd3}`],
      project,
    )
    assert.equal(e.status, 0, e.stderr)
  })

  test('every source map points at files the package ships', () => {
    const pkg = join(project, 'node_modules/ballot')
    const maps: string[] = []
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name)
        if (entry.isDirectory()) walk(path)
        else if (entry.name.endsWith('.map')) maps.push(path)
      }
    }
    walk(join(pkg, 'dist'))
    assert.ok(maps.length > 20)
    for (const map of maps) {
      const m = JSON.parse(readFileSync(map, 'utf8')) as { sources: string[]; sourcesContent?: string[] }
      m.sources.forEach((source, i) => {
        if (m.sourcesContent?.[i]) return
        assert.ok(existsSync(join(dirname(map), source)), `${map}: ${source} is shipped`)
      })
    }
  })

  test('the README examples type-check as written (strict, exactOptionalPropertyTypes)', () => {
    assert.ok(examples.filter((e) => e.lang === 'ts').length >= 4, 'the README has its examples')
    mkdirSync(join(project, 'examples'), { recursive: true })
    for (const [i, e] of examples.entries())
      writeFileSync(
        join(project, 'examples', `readme-${i + 1}.${e.lang === 'ts' ? 'ts' : 'cjs'}`),
        `${e.code}\n`,
      )
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2022'],
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules/@types')],
          strict: true,
          exactOptionalPropertyTypes: true,
          noUncheckedIndexedAccess: true,
          skipLibCheck: false,
          outDir: 'out',
        },
        include: ['examples/*.ts'],
      }),
    )
    const r = run(process.execPath, [TSC, '-p', 'tsconfig.json'], project)
    assert.equal(r.status, 0, `tsc:\n${r.stdout}${r.stderr}`)
  })

  test('CommonJS TypeScript can require() it too (module NodeNext, TypeScript 5.8 or newer)', () => {
    writeFileSync(
      join(project, 'require.cts'),
      [
        "import ballot = require('ballot')",
        'const options: ballot.RaftElectionOptions = { id: "a", members: [{ id: "a", address: "127.0.0.1:7301" }] }',
        'console.log(new ballot.RaftElection(options).id)',
        '',
      ].join('\n'),
    )
    writeFileSync(
      join(project, 'tsconfig.cjs.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules/@types')],
          strict: true,
          outDir: 'out-cjs',
        },
        files: ['require.cts'],
      }),
    )
    const r = run(process.execPath, [TSC, '-p', 'tsconfig.cjs.json'], project)
    assert.equal(r.status, 0, `tsc:\n${r.stdout}${r.stderr}`)
    const out = run(process.execPath, [join('out-cjs', 'require.cjs')], project)
    assert.equal(out.status, 0, out.stderr)
    assert.equal(out.stdout, 'a\n')
    assert.equal(out.stderr, '')
  })

  for (const [i, e] of examples.entries()) {
    test(`README example ${i + 1} (${e.lang}, README.md line ${e.line}) runs and exits 0`, () => {
      const file =
        e.lang === 'ts' ? join('out', `readme-${i + 1}.js`) : join('examples', `readme-${i + 1}.cjs`)
      const r = run(process.execPath, [file], project, { ETCD_HOSTS: etcd?.endpoint ?? '' }, 60_000)
      assert.equal(r.status, 0, `exit ${r.status} ${r.error ?? ''}\n${r.stdout}${r.stderr}`)
      assert.equal(r.stderr, '', 'nothing on stderr (no warning, such as an experimental require(esm))')
    })
  }

  test('the installed `ballot` command works without the daemon packages (they are bundled)', () => {
    const bin = join(project, 'node_modules/.bin/ballot')
    const v = run(bin, ['--version'], project)
    assert.equal(v.status, 0, v.stderr)
    assert.equal(v.stdout.trim(), JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version)
    const sim = run(bin, ['sim', '--voters', '3', '--runs', '3', '--seed', '1'], project)
    assert.equal(sim.status, 0, sim.stderr)
    assert.match(sim.stdout, /runs\/s/)
  })
})
