'use strict'
// Read latencies, and the table rows that report them (p50, p99, max).
//
// Kept as a histogram of whole microseconds, rounded up, rather than a list of every read: reader
// processes send theirs over IPC to be merged, and a fast reader does millions of reads in a
// measurement. A microsecond is far below the 0.1 ms the tables print, and rounding up never makes
// a read look faster than it was.

class Latencies {
  constructor() {
    this.counts = new Map() // µs -> reads
    this.reads = 0
  }

  /** Record one read of `ms` milliseconds. */
  add(ms) {
    const us = Math.ceil(ms * 1000)
    this.counts.set(us, (this.counts.get(us) ?? 0) + 1)
    this.reads++
  }

  /** Merge another histogram, as sent by toJSON() (e.g. from a reader process). */
  merge(pairs) {
    for (const [us, count] of pairs) {
      this.counts.set(us, (this.counts.get(us) ?? 0) + count)
      this.reads += count
    }
    return this
  }

  toJSON() {
    return [...this.counts]
  }

  /** The latency (ms) at quantile `q` (0..1) of all reads: the read at index floor(q × reads) in order. */
  quantile(q) {
    if (!this.reads) return null
    const index = Math.min(this.reads - 1, Math.floor(q * this.reads))
    let seen = 0
    for (const us of [...this.counts.keys()].sort((a, b) => a - b)) {
      seen += this.counts.get(us)
      if (seen > index) return us / 1000
    }
    return null // not reached: the counts add up to `reads`
  }

  max() {
    let max = null
    for (const us of this.counts.keys()) if (max === null || us > max) max = us
    return max === null ? null : max / 1000
  }
}

/**
 * The extra rows (see bench/workloads.js) of a workload's read latencies: p50, p99 and max.
 * `targets` may give a target ({ text, ok(ms) }) for 'p50', 'p99' or 'max'.
 */
function latencyRows(latencies, targets = {}) {
  const row = (name, value) => ({ name: `  (${name} read latency)`, unit: 'ms', target: targets[name] ?? null, value, samples: [value], lowerIsBetter: true })
  return [row('p50', latencies.quantile(0.5)), row('p99', latencies.quantile(0.99)), row('max', latencies.max())]
}

module.exports = { Latencies, latencyRows }
