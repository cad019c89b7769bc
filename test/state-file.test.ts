// StateFile: durable state written atomically, synced, and its rename made durable by syncing the directory.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { z } from 'zod'
import { PersistenceError } from '../src/errors.js'
import { nodeStateFileSystem, StateFile, type StateFileSystem } from '../src/runtime/state-file.js'

const schema = z.object({ term: z.number(), votedFor: z.string().optional() })
const dirs: string[] = []
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ballot-statefile-'))
  dirs.push(d)
  return d
}

describe('StateFile', () => {
  test('a saved state is complete on disk and loads back', () => {
    const dir = tempDir()
    const file = new StateFile(dir, schema, 'state.json')
    assert.equal(file.load(), undefined)
    file.save({ term: 3, votedFor: 'b' })
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')), { term: 3, votedFor: 'b' })
    assert.deepEqual(new StateFile(dir, schema, 'state.json').load(), { term: 3, votedFor: 'b' })
  })

  test('a save that cannot be written is a PersistenceError', () => {
    const dir = tempDir()
    const file = new StateFile(dir, schema, 'state.json')
    rmSync(dir, { recursive: true, force: true })
    assert.throws(
      () => file.save({ term: 1 }),
      (e) => e instanceof PersistenceError && e.code === 'PERSISTENCE' && e.message.includes(dir),
    )
  })

  test('save syncs the directory after the file is in place, and a failed directory sync is reported', () => {
    const dir = tempDir()
    const calls: string[] = []
    let failDirSync = false
    const fs: StateFileSystem = {
      writeAtomic: (path, data) => {
        nodeStateFileSystem.writeAtomic(path, data)
        calls.push(`write ${path}`)
      },
      syncDir: (d) => {
        calls.push(`syncDir ${d}`)
        if (failDirSync) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' })
        nodeStateFileSystem.syncDir(d)
      },
    }
    const file = new StateFile(dir, schema, 'state.json', { fs })
    file.save({ term: 1 })
    assert.deepEqual(calls, [`write ${join(dir, 'state.json')}`, `syncDir ${dir}`])
    failDirSync = true
    assert.throws(
      () => file.save({ term: 2 }),
      (e) =>
        e instanceof PersistenceError &&
        e.code === 'PERSISTENCE' &&
        /cannot sync its directory/.test(e.message) &&
        (e.cause as NodeJS.ErrnoException).code === 'EIO',
    )
  })

  test('save syncs the directory after the rename (seen with strace)', (t) => {
    const which = spawnSync('strace', ['-V'])
    if (which.error) {
      t.skip('strace is not installed (scripts/install-deps.sh installs it)')
      return
    }
    const dir = tempDir()
    const trace = join(tempDir(), 'trace')
    const fixture = new URL('./fixtures/save-state.ts', import.meta.url).pathname
    const calls = 'trace=openat,open,fsync,fdatasync,rename,renameat,renameat2'
    const node = [process.execPath, '--import', 'tsx', fixture, dir]
    const run = spawnSync('strace', ['-f', '-qq', '-e', calls, '-o', trace, ...node], {
      encoding: 'utf8',
      timeout: 60_000,
    })
    assert.equal(run.status, 0, run.stderr)
    const lines = readFileSync(trace, 'utf8').split('\n')
    const renamed = lines.findIndex((l) => /rename/.test(l) && l.includes(`"${join(dir, 'state.json')}"`))
    assert.ok(renamed >= 0, 'the state file is renamed into place')
    const rest = lines.slice(renamed + 1)
    const opened = rest
      .map((l) => l.match(new RegExp(`open(?:at)?\\(.*"${dir}".*\\)\\s+= (\\d+)`)))
      .find((m) => m !== null)
    assert.ok(opened, `the directory is opened after the rename:\n${rest.slice(0, 20).join('\n')}`)
    const fd = opened[1]
    assert.ok(
      rest.some((l) => new RegExp(`\\bf(?:data)?sync\\(${fd}\\)\\s+= 0`).test(l)),
      'and synced',
    )
  })
})
