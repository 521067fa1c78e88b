'use strict'
// A worker thread of readers.test.js: a Database of the same file in the same process (so of the
// same engine) that writes while the test's main thread is blocked inside an each() row
// callback. When its writes are answered it raises the shared flag and wakes the main thread.

const path = require('path')
const { parentPort, workerData } = require('worker_threads')
const { create } = require(path.join(__dirname, '..', '..'))

const flag = new Int32Array(workerData.shared)
let db = null

function run(sql) {
  return new Promise((resolve) => {
    db.run(sql, function (err) { resolve(err ? { err: err.code, message: err.message } : { changes: this.changes }) })
  })
}

parentPort.on('message', async (m) => {
  if (m.op === 'open') {
    db = await create({ filename: workerData.file, standalone: true, ...workerData.options })
    parentPort.postMessage({ op: 'open' })
  } else if (m.op === 'write') {
    const results = []
    for (const sql of m.statements) results.push(await run(sql))
    parentPort.postMessage({ op: 'write', results })
    Atomics.store(flag, 0, 1)
    Atomics.notify(flag, 0)
  } else if (m.op === 'close') {
    await new Promise((resolve) => db.close(resolve))
    parentPort.postMessage({ op: 'close' })
  }
})
