// MachineDriver's policy for a failed save, step by step on a scripted machine and transport.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { PersistenceError } from '../src/errors.js'
import type { Input, MachineView, ProtocolMachine, Ready } from '../src/protocol/machine.js'
import { realClock } from '../src/runtime/clock.js'
import { MachineDriver } from '../src/runtime/driver.js'
import { type Transport, type TransportHandlers, TransportStats } from '../src/transport/transport.js'
import { waitFor } from './helpers/raft-cluster.js'

type Msg = { n: number }
type State = { term: number }

/** A machine that raises its term on every 'resign' input (a stand-in for a campaign) and says so. */
class ScriptedMachine implements ProtocolMachine<Msg, State> {
  readonly id = 'a'
  readonly inputs: Array<Input<Msg>['kind']> = []
  private term: number
  private dirty = false
  private out: Array<{ to: string; msg: Msg }> = []
  constructor(readonly persisted: State | undefined) {
    this.term = persisted?.term ?? 0
  }
  step(_now: number, input: Input<Msg>): void {
    this.inputs.push(input.kind)
    if (input.kind === 'resign') {
      this.term++
      this.dirty = true
      this.out.push({ to: 'b', msg: { n: this.term } })
    }
  }
  ready(): Ready<Msg, State> {
    const r = {
      persist: this.dirty ? { term: this.term } : undefined,
      messages: this.out,
      transitions: [],
      deadline: Number.POSITIVE_INFINITY,
    }
    this.dirty = false
    this.out = []
    return r
  }
  view(): MachineView {
    const leading = this.term > 0
    return {
      id: 'a',
      role: leading ? 'leader' : 'follower',
      term: this.term,
      leader: undefined,
      isLeader: leading,
      peers: [],
    }
  }
}

class FakeTransport implements Transport<Msg> {
  readonly stats = new TransportStats()
  readonly address = 'fake'
  readonly sent: Msg[] = []
  handlers: TransportHandlers<Msg> | undefined
  async start(handlers: TransportHandlers<Msg>) {
    this.handlers = handlers
  }
  send(_to: string, msg: Msg) {
    this.sent.push(msg)
  }
  async close() {}
  connectedPeers() {
    return ['b', 'c']
  }
}

describe('MachineDriver', () => {
  test('a failed save sends nothing, reports a PersistenceError and restarts the machine from the last saved state', async () => {
    const machines: ScriptedMachine[] = []
    const transport = new FakeTransport()
    let failing = false
    const saved: State[] = []
    const errors: Error[] = []
    const driver = new MachineDriver<Msg, State>(
      (p) => {
        const m = new ScriptedMachine(p)
        machines.push(m)
        return m
      },
      { term: 4 },
      transport,
      realClock,
      {
        persist: (s) => {
          if (failing) throw new Error('EIO')
          saved.push(s)
        },
        update: () => {},
        error: (e) => errors.push(e),
      },
    )
    await driver.start()
    driver.input({ kind: 'resign' })
    assert.deepEqual(saved, [{ term: 5 }])
    assert.deepEqual(transport.sent, [{ n: 5 }])

    failing = true
    driver.input({ kind: 'resign' })
    assert.deepEqual(transport.sent, [{ n: 5 }], 'the unsaved batch sent nothing')
    assert.equal(errors.length, 1)
    assert.ok(errors[0] instanceof PersistenceError && errors[0].code === 'PERSISTENCE')
    assert.equal(machines.length, 2, 'the machine was rebuilt')
    assert.deepEqual(machines[1]?.persisted, { term: 5 }, 'from the last saved state, not the unsaved one')
    assert.equal(driver.view().term, 5)
    await waitFor('the rebuilt machine to start', () => (machines[1]?.inputs.length ?? 0) >= 3)
    assert.deepEqual(machines[1]?.inputs, ['tick', 'peerConnected', 'peerConnected'])

    failing = false
    driver.input({ kind: 'resign' })
    assert.deepEqual(saved.at(-1), { term: 6 }, 'the next change is saved again')
    assert.deepEqual(transport.sent.at(-1), { n: 6 })
    await driver.stop(false)
  })
})
