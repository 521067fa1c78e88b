'use strict'
// One reader of the multi-reader workloads: `node reader-child.js <implKey> <db>`, forked by
// workloads.js. Opens the database (a client of the master the workload started, or a connection
// of its own), sends { ready }, then waits for
//   { go: epochMs, warmupMs, measureMs, reps }
// From `go` on it does serial point reads (bench/point-reads.js, the loop the measuring process
// runs in the single-reader variants): a warm-up window, then `reps` windows of `measureMs`. All
// readers get the same wall-clock `go`, so their windows line up and the workload sums their rates.
// Sends { samples: [reads/s per window], latencies } (latencies: a bench/latency.js histogram of
// the measured reads), then closes and exits on 'stop' (or when the parent goes away).

const { byKey } = require('./impls')
const { randomIds } = require('./data')
const { repeat, epoch } = require('./measure')
const { serialPointReads, pointReader } = require('./point-reads')
const { Latencies } = require('./latency')

async function measure(impl, db, { go, warmupMs, measureMs, reps }) {
  const latencies = new Latencies()
  const reads = serialPointReads(pointReader(impl, db), randomIds(), (ms, phase) => {
    if (phase === 'measure') latencies.add(ms)
  })
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, go - epoch())))
  const { samples } = await repeat(reads, { warmupMs, measureMs, reps })
  return { samples, latencies: latencies.toJSON() }
}

async function main() {
  const [key, filename] = process.argv.slice(2)
  const impl = byKey(key)
  process.on('disconnect', () => process.exit(0))
  const db = impl.master ? await impl.connect(filename) : await impl.open(filename)
  process.on('message', async (m) => {
    if (m === 'stop') {
      await impl.close(db) // a client's close() stops no master here: the workload owns it
      process.exit(0)
    }
    if (m && m.go) {
      try {
        process.send(await measure(impl, db, m))
      } catch (err) {
        process.send({ error: String(err && err.message || err) })
      }
    }
  })
  process.send({ ready: true })
}

main().catch((err) => {
  console.error(`reader-child: ${err && err.stack || err}`)
  if (process.connected) process.send({ error: String(err && err.message || err) })
  process.exit(1)
})
