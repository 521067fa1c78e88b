'use strict'
// A test process for dropin.test.js: opens ONE Database the way an app using the package as
// `sqlite3` would (`new Database`, a `driver()` module, `cached`) or with create(), then runs
// what the test asks over IPC. Each message `{ id, op, args }` is answered with
// `{ id, ok, result | error }`. Every 'error' event and uncaught exception is recorded (and
// reported by `problems`) instead of crashing the process.

const path = require('path')
const sqlite = require(path.join(__dirname, '..', '..'))

let db = null
const problems = []

process.on('uncaughtException', (e) => problems.push({ where: 'uncaughtException', message: e.message, code: e.code }))

function errorInfo(e) {
  return { name: e.constructor && e.constructor.name, message: e.message, code: e.code, errno: e.errno }
}

function openWith(via, filename, options) {
  if (via === 'create') return sqlite.create({ filename, ...options })
  const Database = via === 'driver' ? sqlite.driver(options).Database : sqlite.Database
  return new Promise((resolve, reject) => {
    const opened = new Database(filename, function (err) {
      if (err) return reject(err)
      if (this !== opened) return reject(new Error('open callback: this is not the Database'))
      resolve(opened)
    })
  })
}

const ops = {
  /** `{ filename, via: 'new' | 'driver' | 'create', options }` → db.cluster */
  async open({ filename, via = 'new', options = {} }) {
    db = await openWith(via, filename, options)
    db.on('error', (e) => problems.push({ where: 'error event', message: e.message, code: e.code }))
    return db.cluster
  },
  cluster: () => db.cluster,
  query: (method, sql, params = []) => new Promise((resolve, reject) => {
    db[method](sql, params, function (err, result) {
      if (err) reject(err)
      else resolve(method === 'run' ? { lastID: this.lastID, changes: this.changes } : result)
    })
  }),
  exec: (sql) => new Promise((resolve, reject) => db.exec(sql, (e) => (e ? reject(e) : resolve(null)))),
  /** `db.run(sql)` without a callback (what ORMs do with setup pragmas). */
  fire(sql) {
    db.run(sql)
    return null
  },
  /** 'error' events and uncaught exceptions seen so far, after letting pending work land. */
  problems: () => new Promise((resolve) => setTimeout(() => resolve(problems), 50)),
  close: () => new Promise((resolve, reject) => db.close((e) => (e ? reject(e) : resolve(null)))),
}

process.on('message', async ({ id, op, args = [] }) => {
  try {
    const result = await ops[op](...args)
    process.send({ id, ok: true, result })
  } catch (e) {
    process.send({ id, ok: false, error: errorInfo(e) })
  }
})
process.send({ event: 'ready' })
