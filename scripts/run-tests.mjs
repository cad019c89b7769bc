#!/usr/bin/env node
// Runs every test file under test/ with node's built-in runner (Node 20 has no glob support in
// `node --test`, so the files are listed here). TypeScript is loaded through tsx; tests that start
// real processes run the built CLI from dist/, so `npm test` builds first. One file at a time: many files
// start clusters of real processes and store servers, and two such files at once on a 2-core machine
// starve each other's timers (the whole run stays well under 20 minutes this way).
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

function findTests(dir) {
  const out = []
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) out.push(...findTests(path))
    else if (name.endsWith('.test.ts')) out.push(path)
  }
  return out
}

const filter = process.argv.slice(2)
const files = findTests('test').filter((f) => filter.length === 0 || filter.some((part) => f.includes(part)))
if (files.length === 0) {
  console.error('no test files matched')
  process.exit(1)
}
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=300000', ...files],
  { stdio: 'inherit' },
)
process.exit(result.status ?? 1)
