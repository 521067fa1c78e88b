'use strict'
// A writer process of dqlite.test.js: `node writer.js <url> <name> <ms>`. Opens the dqlite
// database with create() and inserts (name, 1), (name, 2), … one at a time for <ms> ms, then
// prints one JSON line: the sequence numbers acknowledged, and every outcome with its time.

const { create } = require('../..')

const [url, name, ms] = process.argv.slice(2)

function insert(db, seq) {
  return new Promise((resolve, reject) => {
    db.run('INSERT INTO w(writer, seq) VALUES (?, ?)', [name, seq], (err) => (err ? reject(err) : resolve()))
  })
}

async function main() {
  const db = await create({ filename: url, busyTimeout: 10000 })
  const acked = []
  const outcomes = [] // [time, 'ok' | error code]
  const until = Date.now() + Number(ms)
  for (let seq = 1; Date.now() < until; seq++) {
    try {
      await insert(db, seq)
      acked.push(seq)
      outcomes.push([Date.now(), 'ok'])
    } catch (e) {
      outcomes.push([Date.now(), e.code || e.message])
    }
  }
  await new Promise((resolve) => db.close(resolve))
  process.stdout.write(JSON.stringify({ acked, outcomes }) + '\n')
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ failed: String(e && e.stack || e) }) + '\n')
  process.exit(1)
})
