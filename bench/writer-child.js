'use strict'
// The writer of the "reads during write transactions" workload: `node writer-child.js <implKey>
// <db>`, forked by workloads.js. Opens the database (a client of the workload's master, or a
// connection of its own), then holds write transactions back to back: BEGIN IMMEDIATE, one
// insert, HOLD_MS of waiting (an app awaiting an HTTP call inside its transaction), COMMIT.
// Sends { ready } once the first transaction is open; on 'stop' it commits, closes and exits.

const { byKey } = require('./impls')

const HOLD_MS = 200

function call(db, method, sql, params = []) {
  return new Promise((resolve, reject) => db[method](sql, params, (err) => (err ? reject(err) : resolve())))
}

async function main() {
  const [key, filename] = process.argv.slice(2)
  const impl = byKey(key)
  process.on('disconnect', () => process.exit(0))
  const db = impl.master ? await impl.connect(filename) : await impl.open(filename)
  const sync = impl.kind === 'sync'
  const run = (sql, params) => (sync ? db.prepare(sql).run(...(params ?? [])) : call(db, 'run', sql, params))
  await run('CREATE TABLE IF NOT EXISTS held (id INTEGER PRIMARY KEY, at REAL)')
  let stopping = false
  let transactions = 0
  process.on('message', (m) => { if (m === 'stop') stopping = true })
  while (!stopping) {
    await run('BEGIN IMMEDIATE')
    await run('INSERT INTO held (at) VALUES (?)', [Date.now()])
    if (transactions++ === 0) process.send({ ready: true })
    await new Promise((resolve) => setTimeout(resolve, HOLD_MS))
    await run('COMMIT')
  }
  await impl.close(db)
  process.exit(0)
}

main().catch((err) => {
  console.error(`writer-child: ${err && err.stack || err}`)
  if (process.connected) process.send({ error: String(err && err.message || err) })
  process.exit(1)
})
