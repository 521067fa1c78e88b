'use strict'
// One worker of the fan-in workloads: `node fanin-child.js <implKey> <db>`, forked by
// workloads.js. Opens the database (a client of the master the workload started, or for
// node-sqlite3 and better-sqlite3 its own connection), sends { ready }, then waits for
//   { go: epochMs, warmupMs, measureMs, reps, inFlight }
// From `go` on it keeps `inFlight` point reads by primary key outstanding (better-sqlite3, being
// synchronous, reads in a plain loop instead), warms up for `warmupMs`, then counts completed
// reads in `reps` consecutive windows of `measureMs`. All workers get the same wall-clock `go`,
// so their windows line up and the workload sums them.
// Sends { counts: [...] }, then closes and exits on 'stop' (or when the parent goes away).

const { byKey } = require('./impls')
const { randomIds } = require('./data')
const { POINT_SQL, checkRow } = require('./point-reads')
const { epoch } = require('./measure')

function pointReads(db, ids, seed, { go, warmupMs, measureMs, reps, inFlight }) {
  const measureStart = go + warmupMs
  const end = measureStart + measureMs * reps
  const counts = new Array(reps).fill(0)
  const mask = ids.length - 1
  let i = seed
  return new Promise((resolve, reject) => {
    let outstanding = 0
    let stop = false
    let failure = null
    const issue = () => {
      const id = ids[i++ & mask]
      outstanding++
      db.get(POINT_SQL, id, (err, row) => {
        outstanding--
        if (err) failure = failure || err
        else if (!row || row.id !== id) failure = failure || new Error(`wrong row for id ${id}: ${JSON.stringify(row)}`)
        const t = epoch()
        if (t >= measureStart && t < end) counts[Math.floor((t - measureStart) / measureMs)]++
        if (!stop && (failure || t >= end)) stop = true
        if (!stop) issue()
        else if (outstanding === 0) {
          if (failure) reject(failure)
          else resolve(counts)
        }
      })
    }
    setTimeout(() => {
      for (let k = 0; k < inFlight; k++) issue()
    }, Math.max(0, go - epoch()))
  })
}

/**
 * pointReads for a synchronous implementation: nothing can be in flight, so a plain loop of a
 * prepared statement, looking at the clock every 64 reads as the in-process workload does. The
 * loop holds the event loop until `end`, which bounds how late a 'stop' or a disconnect is seen.
 */
async function pointReadsSync(db, ids, seed, { go, warmupMs, measureMs, reps }) {
  const measureStart = go + warmupMs
  const end = measureStart + measureMs * reps
  const counts = new Array(reps).fill(0)
  const mask = ids.length - 1
  const stmt = db.prepare(POINT_SQL)
  let i = seed
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, go - epoch())))
  let t = epoch()
  while (t < end) {
    for (let k = 0; k < 64; k++) {
      const id = ids[i++ & mask]
      checkRow(stmt.get(id), id)
    }
    t = epoch()
    if (t >= measureStart && t < end) counts[Math.floor((t - measureStart) / measureMs)] += 64
  }
  return counts
}

async function main() {
  const [key, filename, seed] = process.argv.slice(2)
  const impl = byKey(key)
  process.on('disconnect', () => process.exit(0))
  const db = impl.master ? await impl.connect(filename) : await impl.open(filename)
  const ids = randomIds()
  process.on('message', async (m) => {
    if (m === 'stop') {
      await impl.close(db) // a client's close() stops no master here: the workload owns it
      process.exit(0)
    }
    if (m && m.go) {
      try {
        const read = impl.kind === 'sync' ? pointReadsSync : pointReads
        process.send({ counts: await read(db, ids, Number(seed) * 4099, m) })
      } catch (err) {
        process.send({ error: String(err && err.message || err) })
      }
    }
  })
  process.send({ ready: true })
}

main().catch((err) => {
  console.error(`fanin-child: ${err && err.stack || err}`)
  if (process.connected) process.send({ error: String(err && err.message || err) })
  process.exit(1)
})
