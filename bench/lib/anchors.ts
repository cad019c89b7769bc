/**
 * The published figures each measured one sits beside in the report, with where they come from.
 * Checked against the sources named; none of them is measured here.
 */

/** A published figure to compare with. */
export interface Anchor {
  /** Short text beside a figure. */
  short: string
  /** The figure in ms, where one number stands for it (for a reference line on a plot). */
  ms?: number
  /** Where it comes from. */
  source: string
}

/** Anchors by driver family. */
export const ANCHORS: Record<'raft' | 'bully' | 'lease' | 'etcd3', Anchor> = {
  raft: {
    short: 'Raft paper: 150–300 ms election timeouts',
    ms: 300,
    source:
      'Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm" (USENIX ATC 2014), §9.3: recommends a conservative election timeout such as 150–300 ms (a crashed leader is replaced within about that time plus one election round)',
  },
  bully: {
    short: 'MultiBully: 2.34 s measured failover',
    ms: 2340,
    source:
      "MultiBully's measured failover after the leader dies (the figure the README's bully section cites)",
  },
  lease: {
    short: 'Kubernetes: lease 15 s, renew 10 s, retry 2 s',
    ms: 15000,
    source:
      'client-go leaderelection / kube-controller-manager defaults: --leader-elect-lease-duration 15s, --leader-elect-renew-deadline 10s, --leader-elect-retry-period 2s (a crashed leader is replaced 15–17 s later)',
  },
  etcd3: {
    short: 'etcd election recipe: session TTL 60 s by default',
    ms: 60000,
    source:
      "etcd client/v3/concurrency: defaultSessionTTL = 60 (used by `etcdctl elect`); the etcd3 package's client.election(name, ttl = 60) defaults to 60 s as well",
  },
}
