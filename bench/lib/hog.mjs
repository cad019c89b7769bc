// Preloaded into every node process of the stability benchmark (through NODE_OPTIONS=--import): keeps
// the event loop busy, `BENCH_HOG="busyMs,everyMs"`: every everyMs it spins for busyMs, so timers fire
// late and the process competes for CPU, as a node on a busy host would.
const [busyMs, everyMs] = (process.env.BENCH_HOG ?? '').split(',').map(Number)
if (busyMs > 0 && everyMs > 0) {
  const timer = setInterval(() => {
    const until = performance.now() + busyMs
    while (performance.now() < until) {
      // spin
    }
  }, everyMs)
  timer.unref()
}
