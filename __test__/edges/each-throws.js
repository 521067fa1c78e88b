'use strict'
// A child process for edges.test.js: an each() whose row callback throws, in a process of its
// own because the exception is uncaught. Prints what happened as one JSON line when it exits.
//
// usage: node each-throws.js '<JSON { impl, rows, throwAt, via: "db"|"statement", handler }>'
//   impl     the module to test (the real sqlite3 package or this repository)
//   rows     rows in the table; throwAt: the row whose callback throws
//   via      db.each() or a prepared Statement's each()
//   handler  install process.on('uncaughtException') (otherwise the process dies of it)
//
// The real sqlite3 hands rows to JavaScript in batches whose size depends on thread timing;
// an exception loses the rest of its batch, and later batches are still delivered. To make its
// behaviour repeatable, the main thread is blocked right after a prepared statement's each()
// starts, so that every row is read before JavaScript sees the first: one batch. (The block
// changes nothing for sqlite3-cluster.)

const { impl, rows, throwAt, via, handler } = JSON.parse(process.argv[2])
const sqlite3 = require(impl)

const report = { rows: 0, lastRow: null, complete: [], uncaught: [], later: null, closed: null }
let printed = false
function print() {
  if (printed) return
  printed = true
  process.stdout.write(JSON.stringify(report) + '\n')
}
process.on('exit', print)

// How long to wait for the calls made after the each() once the exception is reported: the
// real sqlite3 never answers them (its Database stays stuck), so its process ends by this timer.
const SETTLE_MS = 1000
function finishSoon() {
  setTimeout(() => {
    print()
    process.exit(0)
  }, SETTLE_MS).unref()
}

if (handler) {
  process.on('uncaughtException', (err) => {
    report.uncaught.push(err.message)
    finishSoon()
  })
}

function blockMainThread(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

function onRow(err, row) {
  if (err) throw err
  report.rows++
  report.lastRow = row.x
  if (row.x === throwAt) throw new Error(`row callback threw at ${row.x}`)
}

function onComplete(err, count) {
  report.complete.push({ err: err && err.message, count })
}

const SELECT = 'SELECT x FROM t ORDER BY x'
const db = new sqlite3.Database(':memory:')
db.serialize()
db.run('CREATE TABLE t(x INTEGER)')
db.run(`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ${rows}) INSERT INTO t SELECT i FROM c`)
const statement = db.prepare(SELECT, (err) => {
  if (err) throw err
  // A later turn: the statement is idle, so its each() starts on a worker thread at once.
  setImmediate(() => {
    if (via === 'statement') statement.each(onRow, onComplete)
    else db.each(SELECT, onRow, onComplete)
    blockMainThread(300)
    statement.finalize()
    // Calls made after the each(): does the Database go on?
    db.get('SELECT count(*) AS n FROM t', (err, row) => { report.later = err ? err.message : row.n })
    db.close((err) => {
      report.closed = err ? err.message : 'closed'
      print()
      process.exit(0)
    })
  })
})
