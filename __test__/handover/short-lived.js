'use strict'
// One short-lived process of the churn test: create() in auto mode, five acknowledged inserts
// tagged (pid, i), close(), exit. Prints one JSON line: what was acknowledged and every error,
// with the step it happened in. It must exit by itself once closed (nothing left holding it).

const path = require('path')
const { create } = require(path.join(__dirname, '..', '..'))

const file = process.argv[2]
const report = { pid: process.pid, role: null, acked: [], errors: [], ms: 0 }
const t0 = Date.now()
let stage = 'create'
let reported = false

function fail(step, e) {
  report.errors.push({ step, code: e && e.code, message: e && e.message })
}

function done() {
  if (reported) return
  reported = true
  report.ms = Date.now() - t0
  process.stdout.write(JSON.stringify(report) + '\n')
}

// A promise nobody answers leaves the event loop empty and node exits silently: that is an
// error too (a call that never called back), named by the step it was waiting in.
process.on('exit', () => {
  if (!reported) {
    fail(stage, { code: 'NO_ANSWER', message: `exited while waiting in ${stage}` })
    done()
  }
})
process.on('uncaughtException', (e) => fail(`uncaught during ${stage}`, e))
// A call that never answers while something keeps the process alive: report and leave.
const watchdog = setTimeout(() => {
  fail(stage, { code: 'HANG', message: `no answer in ${stage} after 20 s` })
  done()
  process.exit(1)
}, 20000)

function run(db, sql, params) {
  return new Promise((resolve, reject) => db.run(sql, params, (e) => (e ? reject(e) : resolve())))
}

async function main() {
  let db
  try {
    db = await create({ filename: file, standalone: false })
  } catch (e) {
    fail('create', e)
    return
  }
  report.role = db.cluster.role
  db.on('error', (e) => fail(`error event during ${stage}`, e))
  for (let i = 0; i < 5; i++) {
    stage = `insert ${i}`
    try {
      await run(db, 'INSERT INTO rows(pid, i) VALUES (?, ?)', [process.pid, i])
      report.acked.push(i)
    } catch (e) {
      fail(stage, e)
    }
  }
  stage = 'close'
  await new Promise((resolve) => db.close((e) => {
    if (e) fail('close', e)
    resolve()
  }))
}

main().then(() => {
  stage = 'exit'
  clearTimeout(watchdog)
  done()
})
