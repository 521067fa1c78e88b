'use strict'
// require.resolve('sqlite3-cluster/worker1'): a worker_threads script that speaks SQLite WASM's
// Worker1 message protocol on this package's databases (real files, SQLCipher, the cluster).
//
//   const worker = new Worker(require.resolve('sqlite3-cluster/worker1'))
//   worker.on('message', (m) => …)   // first {type:'sqlite3-api', result:'worker1-ready'}
//   worker.postMessage({ type: 'open', messageId: 1, args: { filename: 'app.db', key } })

const { parentPort, isMainThread } = require('worker_threads')
const { Worker1 } = require('./lib/worker1')

if (isMainThread || !parentPort) {
  throw new Error("sqlite3-cluster/worker1 runs inside a worker thread: new Worker(require.resolve('sqlite3-cluster/worker1'))")
}

const worker1 = new Worker1((message, transfer) => parentPort.postMessage(message, transfer))
parentPort.on('message', (message) => worker1.receive(message))
parentPort.postMessage({ type: 'sqlite3-api', result: 'worker1-ready' })
