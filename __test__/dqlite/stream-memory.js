'use strict'
// A reader process of dqlite-memory.test.js: `node --expose-gc stream-memory.js <url> <each|all>
// <rows> <length> [<µs per row>]`. Opens the dqlite database with create(), measures its
// resident set after a gc, then reads every row of `big` ordered by id: with each(), counting
// the rows and checking their length without keeping them, or with all(), keeping them all until
// its callback. With <µs per row>, each()'s receiver sleeps that long per row (every 10 rows,
// in Atomics.wait, which allocates nothing): a receiver slower than the server. The RSS is
// sampled every 1000 rows and every 5 ms; the process prints one JSON line: the rows seen, the
// rows whose text was not <length> characters, the baseline and the peak growth, in bytes.

const { create } = require('../..')

const [url, mode, expectedRows, length, microsPerRow = '0'] = process.argv.slice(2)
const SLEEPER = new Int32Array(new SharedArrayBuffer(4))
const sleepMs = (Number(microsPerRow) * 10) / 1000
const SQL = 'SELECT id, v FROM big ORDER BY id'

if (typeof global.gc !== 'function') throw new Error('run with node --expose-gc')

async function main() {
  const db = await create({ filename: url, busyTimeout: 10000 })
  // A first query, so that the connection and its buffers are there before the baseline.
  await new Promise((resolve, reject) => db.get('SELECT count(*) AS n FROM big', (err) => (err ? reject(err) : resolve())))
  global.gc()
  global.gc()
  const baseline = process.memoryUsage().rss
  let peak = baseline
  const sample = () => {
    const rss = process.memoryUsage().rss
    if (rss > peak) peak = rss
  }
  const timer = setInterval(sample, 5)
  const started = Date.now()
  let rows = 0
  let wrong = 0
  const check = (row) => {
    if (typeof row.v !== 'string' || row.v.length !== Number(length)) wrong++
  }
  try {
    if (mode === 'each') {
      await new Promise((resolve, reject) => db.each(SQL, (err, row) => {
        if (err) return reject(err) // node-sqlite3 gives an error to the row callback
        rows++
        check(row)
        if (sleepMs > 0 && rows % 10 === 0) Atomics.wait(SLEEPER, 0, 0, sleepMs)
        if (rows % 1000 === 0) sample()
      }, (err, count) => (err ? reject(err) : count === rows ? resolve() : reject(new Error(`complete said ${count}, rows seen ${rows}`)))))
    } else if (mode === 'all') {
      const all = await new Promise((resolve, reject) => db.all(SQL, (err, r) => (err ? reject(err) : resolve(r))))
      sample()
      rows = all.length
      for (let i = 0; i < all.length; i++) {
        check(all[i])
        if (i % 1000 === 0) sample()
      }
    } else {
      throw new Error(`mode ${mode}: each or all`)
    }
  } finally {
    clearInterval(timer)
  }
  sample()
  const ms = Date.now() - started
  await new Promise((resolve) => db.close(resolve))
  const result = { mode, microsPerRow: Number(microsPerRow), rows, expectedRows: Number(expectedRows), wrong, baseline, peakGrowth: peak - baseline, ms }
  process.stdout.write(JSON.stringify(result) + '\n')
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ failed: String((e && e.stack) || e), code: e && e.code }) + '\n')
  process.exit(1)
})
