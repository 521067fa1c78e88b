'use strict'
// The master of the file-descriptor test, started under `ulimit -n`: serves the file, writes a
// row of its own every 100 ms and counts how those writes end. Reports JSON lines on stdout;
// answers `report` on stdin with its tallies and its open descriptors.

const fs = require('fs')
const path = require('path')
const readline = require('readline')
const { create } = require(path.join(__dirname, '..', '..'))

const file = process.argv[2]
const fds = () => fs.readdirSync('/proc/self/fd').length
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')

async function main() {
  let db
  try {
    db = await create({ filename: file, serve: true, standalone: false })
  } catch (e) {
    return out({ event: 'ready', ok: false, code: e.code, message: e.message })
  }
  db.on('error', () => {})
  const run = (sql, params = []) => new Promise((resolve, reject) => db.run(sql, params, (e) => (e ? reject(e) : resolve())))
  await run('CREATE TABLE IF NOT EXISTS w(who TEXT, n INTEGER)')
  let ok = 0
  let n = 0
  const failures = {}
  let firstError = null
  setInterval(() => {
    run('INSERT INTO w(who, n) VALUES (?, ?)', ['master', n++]).then(() => ok++, (e) => {
      failures[e.code || 'NO_CODE'] = (failures[e.code || 'NO_CODE'] || 0) + 1
      firstError = firstError || { code: e.code, message: e.message }
    })
  }, 100)
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    if (line === 'report') out({ event: 'report', ok, failures, firstError, fds: fds(), role: db.cluster.role })
  })
  out({ event: 'ready', ok: true, pid: process.pid, role: db.cluster.role, fds: fds(), limit: fs.readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+(\d+)/)[1] })
}

main()
