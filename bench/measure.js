'use strict'
// Timing helpers shared by the workloads.

const { performance } = require('perf_hooks')

const QUICK = process.env.BENCH_QUICK === '1'

// Fixed-time measurement windows (ms). Full: ~0.5 s warm-up + 3 × 1.5 s per workload and peer.
const TIMING = QUICK
  ? { warmupMs: 50, measureMs: 200, reps: 3 }
  : { warmupMs: 500, measureMs: 1500, reps: 3 }

const now = () => performance.now()
// Wall-clock ms with now()'s resolution, comparable between processes (now() counts from each
// process's own start).
const epoch = () => performance.timeOrigin + performance.now()

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/**
 * Warm up once, then measure `reps` times, and return the median.
 * `fn(ms, phase)` runs the workload for about `ms` milliseconds and returns a rate (ops/s or
 * rows/s) or an object { value, ...otherMetrics }; phase is 'warmup' or 'measure'.
 */
async function repeat(fn, timing = TIMING) {
  await fn(timing.warmupMs, 'warmup')
  const samples = []
  for (let i = 0; i < timing.reps; i++) {
    const r = await fn(timing.measureMs, 'measure')
    samples.push(typeof r === 'number' ? r : r.value)
  }
  return { value: median(samples), samples }
}

/** Let pending I/O and GC settle between measurements. */
function settle() {
  if (global.gc) global.gc()
  return new Promise((resolve) => setImmediate(resolve))
}

module.exports = { QUICK, TIMING, now, epoch, median, repeat, settle }
