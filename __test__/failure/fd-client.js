'use strict'
// A client of the file-descriptor test: joins the master (connect: true, so it never becomes
// master itself), writes three rows, and three more on each `write` line on stdin; it stays
// connected until killed. Reports each step as a JSON line on stdout.

const path = require('path')
const readline = require('readline')
const { create } = require(path.join(__dirname, '..', '..'))

const [file, tag] = process.argv.slice(2)
const out = (o) => process.stdout.write(JSON.stringify({ tag, pid: process.pid, ...o }) + '\n')

async function main() {
  const t0 = Date.now()
  let db
  try {
    db = await create({ filename: file, connect: true, connectTimeout: 3000, standalone: false })
  } catch (e) {
    out({ event: 'open', ok: false, code: e.code, message: e.message, ms: Date.now() - t0 })
    process.exit(0)
  }
  db.on('error', () => {})
  out({ event: 'open', ok: true, role: db.cluster.role, ms: Date.now() - t0 })
  const run = (sql, params = []) => new Promise((resolve, reject) => db.run(sql, params, (e) => (e ? reject(e) : resolve())))
  let n = 0
  async function writes(phase) {
    const errors = []
    let ok = 0
    for (let i = 0; i < 3; i++) {
      try {
        await run('INSERT INTO w(who, n) VALUES (?, ?)', [tag, n++])
        ok++
      } catch (e) {
        errors.push({ code: e.code, message: e.message })
      }
    }
    out({ event: 'writes', phase, ok, errors })
  }
  await writes(1)
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    if (line === 'write') writes(2)
  })
}

main()
