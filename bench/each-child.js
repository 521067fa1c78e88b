'use strict'
// Child process for the each() workload: `node each-child.js <implKey> <dbFile>`, forked by
// run.js. Opens the database, warms up with a short each() (10k rows), then measures one each()
// over the whole `big` table, closes, and sends { rows, rowsPerSec, baseRssKiB, maxRssKiB }.
// maxRSS is the process's peak resident set (KiB), read after the run.

const { byKey } = require('./impls')
const { now } = require('./measure')
const { EACH_SQL } = require('./workloads')

function eachCallback(db, sql) {
  return new Promise((resolve, reject) => {
    let rows = 0
    let checksum = 0
    db.each(sql, (err, row) => {
      if (err) return reject(err)
      rows++
      checksum += row.id
    }, (err, count) => {
      if (err) reject(err)
      else if (count !== rows) reject(new Error(`each() completion count ${count} but ${rows} rows delivered`))
      else resolve({ rows, checksum })
    })
  })
}

function eachSync(db, sql) {
  let rows = 0
  let checksum = 0
  for (const row of db.prepare(sql).iterate()) {
    rows++
    checksum += row.id
  }
  return { rows, checksum }
}

async function main() {
  const [key, file] = process.argv.slice(2)
  const impl = byKey(key)
  const db = await impl.open(file)
  const baseRssKiB = process.resourceUsage().maxRSS
  const each = impl.kind === 'sync' ? eachSync : eachCallback
  await each(db, `${EACH_SQL} LIMIT 10000`)
  const t0 = now()
  const { rows, checksum } = await each(db, EACH_SQL)
  const elapsed = now() - t0
  await impl.close(db)
  const expected = (rows * (rows + 1)) / 2
  if (checksum !== expected) throw new Error(`each() rows are wrong: id checksum ${checksum}, expected ${expected}`)
  const result = { rows, rowsPerSec: (rows * 1000) / elapsed, baseRssKiB, maxRssKiB: process.resourceUsage().maxRSS }
  process.send(result, () => process.disconnect())
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
  if (process.connected) process.disconnect()
})
