/**
 * Several "hosts" on one machine: network namespaces joined by a bridge, made for one test and always
 * removed, even when the test fails or the process is interrupted.
 *
 * Each lab gets names unique to it (a random tag), so test files running side by side never collide;
 * addresses (10.200.0.N/24) live inside the lab's own namespaces, so they cannot clash either. Nothing
 * outside what the lab made is ever touched. Needs root (CI runs as root).
 */
import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'

export interface NetnsHost {
  /** Namespace name. */
  ns: string
  /** The host's address inside its namespace. */
  ip: string
  /** Interface name inside the namespace. */
  iface: string
  /** The veth end left in the root namespace, on the bridge: set it down to cut the host off. */
  rootVeth: string
}

const live = new Set<NetnsLab>()
let exitHookInstalled = false

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

/** Runs `ip`, ignoring failure: for cleanup of things that may already be gone. */
function ipQuiet(...args: string[]): void {
  try {
    ip(...args)
  } catch {
    // already removed
  }
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0)
    throw new Error('network-namespace tests need root (run the test command as root, as CI does)')
}

export class NetnsLab {
  readonly hosts: NetnsHost[] = []
  readonly bridge: string
  private readonly tag: string
  private readonly children = new Set<ChildProcess>()
  private removed = false

  private constructor() {
    this.tag = randomBytes(3).toString('hex')
    this.bridge = `bbr${this.tag}` // interface names are limited to 15 characters
  }

  /** Makes a bridge and `count` namespaces on it, 10.200.0.1, 10.200.0.2, ... */
  static create(count: number): NetnsLab {
    requireRoot()
    const lab = new NetnsLab()
    live.add(lab)
    if (!exitHookInstalled) {
      exitHookInstalled = true
      // Last resort if a test forgets or the process is torn down: remove whatever is left.
      process.on('exit', () => {
        for (const l of live) l.removeSync()
      })
    }
    try {
      ip('link', 'add', lab.bridge, 'type', 'bridge')
      ip('link', 'set', lab.bridge, 'up')
      for (let i = 1; i <= count; i++) lab.addHost(i)
    } catch (err) {
      lab.removeSync()
      throw err
    }
    return lab
  }

  private addHost(i: number): void {
    const ns = `ballot-${this.tag}-${i}`
    const rootVeth = `vb${this.tag}${i}`
    const inner = `vn${this.tag}${i}`
    const host: NetnsHost = { ns, ip: `10.200.0.${i}`, iface: 'eth0', rootVeth }
    ip('netns', 'add', ns)
    this.hosts.push(host)
    ip('link', 'add', rootVeth, 'type', 'veth', 'peer', 'name', inner)
    ip('link', 'set', inner, 'netns', ns)
    ip('link', 'set', rootVeth, 'master', this.bridge)
    ip('link', 'set', rootVeth, 'up')
    ip('-n', ns, 'link', 'set', inner, 'name', host.iface)
    ip('-n', ns, 'addr', 'add', `${host.ip}/24`, 'dev', host.iface)
    ip('-n', ns, 'link', 'set', host.iface, 'up')
    ip('-n', ns, 'link', 'set', 'lo', 'up')
  }

  /** Starts a command inside a host's namespace. `ip netns exec` execs the command, so the PID is its own. */
  spawn(host: NetnsHost, command: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', host.ns, command, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      ...opts,
    })
    this.children.add(child)
    child.once('exit', () => this.children.delete(child))
    return child
  }

  /** Cuts a host off the bridge (its link goes down from the root side), as a pulled cable would. */
  cut(host: NetnsHost): void {
    ip('link', 'set', host.rootVeth, 'down')
  }

  restore(host: NetnsHost): void {
    ip('link', 'set', host.rootVeth, 'up')
  }

  /** Kills every process started in the lab (by PID), then removes namespaces, veths and the bridge. */
  async remove(): Promise<void> {
    const waits: Promise<unknown>[] = []
    for (const child of this.children) {
      if (child.exitCode !== null || child.signalCode !== null) continue
      waits.push(new Promise((r) => child.once('exit', r)))
      child.kill('SIGKILL')
    }
    await Promise.all(waits)
    this.removeSync()
  }

  private removeSync(): void {
    if (this.removed) return
    this.removed = true
    for (const child of this.children) {
      if (child.pid !== undefined && child.exitCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL')
        } catch {
          // gone already
        }
      }
    }
    // Deleting a namespace deletes the veth end inside it, and with it the pair's root end.
    for (const h of this.hosts) ipQuiet('netns', 'del', h.ns)
    for (const h of this.hosts) ipQuiet('link', 'del', h.rootVeth)
    ipQuiet('link', 'del', this.bridge)
    live.delete(this)
  }

  /** What of this lab is still on the machine (for tests of the clean-up itself). */
  leftovers(): string[] {
    const out: string[] = []
    const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    for (const h of this.hosts) if (netns.includes(h.ns)) out.push(h.ns)
    const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
    if (links.includes(`${this.bridge}:`)) out.push(this.bridge)
    for (const h of this.hosts) if (links.includes(`${h.rootVeth}@`)) out.push(h.rootVeth)
    return out
  }
}
