/**
 * The event-loop stall monitor: a stall made by blocking the loop is recorded (and warned about) while
 * the monitor samples, is not while it does not, and what was recorded stays when sampling stops. The
 * stalls are made by busy-waiting, so each is at least as long as asked for, however loaded the machine.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LoopDelayMonitor } from '../src/server/loop-delay.js'

/** Blocks the event loop for at least `ms`. */
function block(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) {
    // spin: nothing else may run
  }
}

/** Lets the loop turn until the monitor's timer has ticked a few times. */
const turn = (ms = 80) => new Promise((r) => setTimeout(r, ms))

test('a stall is recorded only while the monitor samples, and kept when it stops', async () => {
  const warned: number[] = []
  const m = new LoopDelayMonitor({
    warnMs: 100,
    resolutionMs: 10,
    windowMs: 50,
    logEveryMs: 0,
    sampling: false,
    warn: (stallMs) => warned.push(stallMs),
  })
  try {
    assert.equal(m.sampling, false)
    block(300)
    await turn()
    assert.equal(m.snapshot().maxMs, 0, 'a stall while not sampling is not recorded')
    assert.equal(m.snapshot().sampling, false)

    m.sample(true)
    assert.equal(m.sampling, true)
    await turn()
    block(300)
    await turn()
    const sampled = m.snapshot()
    assert.ok(sampled.maxMs >= 290 - 10, `the 300 ms stall recorded: ${JSON.stringify(sampled)}`)
    assert.ok(sampled.stalls >= 1, 'the stall counted past warnMs')
    assert.ok(warned.length >= 1 && (warned[0] as number) >= 280, `warned: ${warned}`)

    m.sample(false)
    block(600)
    await turn()
    const after = m.snapshot()
    assert.equal(after.sampling, false)
    assert.equal(after.maxMs, sampled.maxMs, 'kept, and the stall while paused added nothing')
    assert.equal(after.stalls, sampled.stalls)
  } finally {
    m.close()
  }
})
