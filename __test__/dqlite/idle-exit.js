'use strict'
// A process or a Worker of dqlite-event-loop.test.js that opens a dqlite database with
// `new Database(url)`, reads one row, then, from a timer (when nothing else keeps the event loop
// alive but the statement waiting on it), a count that takes the leader a while; it never closes
// the Database.
// - As a process: `node idle-exit.js <url>` prints `{ row, later }` as one JSON line; nothing
//   else keeps it alive, so it must exit by itself (status 0).
// - As a Worker (worker_threads): workerData `{ url, stay }`; posts `{ row, later }` to its
//   parent. Without `stay` it then ends; with `stay` an interval keeps it running, its Database
//   idle, until the parent terminates it.

const { isMainThread, parentPort, workerData } = require('worker_threads')
const { Database } = require('../..')

const { url, stay } = isMainThread ? { url: process.argv[2], stay: false } : workerData
const SQL = 'SELECT id, v FROM idle WHERE id = 2'
const LATER = 'WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200000) SELECT count(*) AS n FROM c'

const db = new Database(url, (err) => {
  if (err) fail(err)
})
db.get(SQL, (err, row) => {
  if (err) return fail(err)
  setTimeout(() => {
    db.get(LATER, (err2, later) => {
      if (err2) return fail(err2)
      if (isMainThread) process.stdout.write(JSON.stringify({ row, later }) + '\n')
      else parentPort.postMessage({ row, later })
      if (stay) setInterval(() => {}, 1000)
    })
  }, 50)
})

function fail(err) {
  const failed = { failed: String(err && err.stack || err), code: err && err.code }
  if (isMainThread) {
    process.stdout.write(JSON.stringify(failed) + '\n')
    process.exitCode = 1
  } else {
    parentPort.postMessage(failed)
  }
}
