'use strict'
// A master process for the client-mode and fan-in workloads: `node master-child.js <kind> <db>`,
// forked by bench/procs.js. kind 'cluster' is sqlite3-cluster with `serve: true`; kind 'v1' is
// the 1.x package with `serve: true`. It opens the database as master, sets the same pragmas as
// every other peer, sends { ready, pid }, and then only serves (it issues no queries itself)
// until the parent sends 'stop' or goes away.

const path = require('path')
const { PRAGMAS, execP, closeCallbackDb } = require('./impls')

async function open(kind, filename) {
  if (kind === 'cluster') {
    const db = await require(path.join(__dirname, '..')).create({ filename, serve: true })
    await execP(db, PRAGMAS)
    return { db, close: () => closeCallbackDb(db) }
  }
  if (kind === 'v1') {
    const db = await require('./v1').serve(filename)
    await execP(db, PRAGMAS)
    // 1.x has no way to stop serving; the process exits right after this.
    return { db, close: () => closeCallbackDb(db) }
  }
  throw new Error(`unknown master kind ${kind}`)
}

async function main() {
  const [kind, filename] = process.argv.slice(2)
  // The IPC channel keeps this process alive (an idle sqlite3-cluster master would not).
  process.on('disconnect', () => process.exit(0))
  const master = await open(kind, filename)
  process.on('message', async (m) => {
    if (m !== 'stop') return
    try {
      await master.close()
    } catch (err) {
      console.error(`master-child (${kind}): close failed: ${err && err.message}`)
    }
    process.exit(0)
  })
  process.send({ ready: true, pid: process.pid })
}

main().catch((err) => {
  console.error(`master-child: ${err && err.stack || err}`)
  process.exit(1)
})
