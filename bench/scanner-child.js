'use strict'
// The scanner of the "long scan beside point reads" workload: `node scanner-child.js <implKey>
// <db>`, forked by workloads.js. Opens the database (a client of the workload's master, or a
// connection of its own), then runs a full-table aggregate over `scanned` back to back: a report
// that must read every row, the kind of query that holds a connection for a long time. Sends
// { ready } after its first scan (so the reads start against a scanner already at work) and
// { scanMs, endedAt } (ms, and the wall-clock end) after every scan; on 'stop' it finishes the
// scan under way, sends { stopped } once every report is written, closes and exits.

const { byKey } = require('./impls')
const { epoch } = require('./measure')
const { SCAN_ROWS } = require('./data')

// count(*) alone could be answered from the smallest index; length(payload) and avg(n) make
// SQLite decode every row.
const SCAN_SQL = 'SELECT count(*) AS rows, sum(length(payload)) AS bytes, avg(n) AS mean FROM scanned'

function scanner(impl, db) {
  if (impl.kind === 'sync') {
    const stmt = db.prepare(SCAN_SQL)
    return () => stmt.get()
  }
  return () => new Promise((resolve, reject) => db.get(SCAN_SQL, (err, row) => (err ? reject(err) : resolve(row))))
}

async function main() {
  const [key, filename] = process.argv.slice(2)
  const impl = byKey(key)
  process.on('disconnect', () => process.exit(0))
  const db = impl.master ? await impl.connect(filename) : await impl.open(filename)
  const scan = scanner(impl, db)
  let stopping = false
  let scans = 0
  process.on('message', (m) => { if (m === 'stop') stopping = true })
  while (!stopping) {
    const t0 = epoch()
    const row = await scan()
    const endedAt = epoch()
    if (!row || row.rows !== SCAN_ROWS) throw new Error(`the scan counted ${row && row.rows} rows, expected ${SCAN_ROWS}`)
    process.send({ ready: scans++ === 0, scanMs: endedAt - t0, endedAt })
    // A synchronous scan never yields: let 'stop' (and the parent's going away) in between scans.
    await new Promise((resolve) => setImmediate(resolve))
  }
  // The callback runs once this message is written, and so every report before it.
  await new Promise((resolve) => process.send({ stopped: true }, resolve))
  await impl.close(db)
  process.exit(0)
}

main().catch((err) => {
  console.error(`scanner-child: ${err && err.stack || err}`)
  if (process.connected) process.send({ error: String(err && err.message || err) })
  process.exit(1)
})
