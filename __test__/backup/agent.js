'use strict'
// A test process for backup.test.js: opens a Database with create() and runs what the test asks
// over IPC. Each message `{ id, op, args }` is answered with `{ id, ok, result | error }`.
// The process may run with a cwd of its own (fork's `cwd`), so relative backup filenames are
// resolved here, not where the test or the master runs.

const path = require('path')
const { create } = require(path.join(__dirname, '..', '..'))

let db = null
let backup = null

function errorInfo(e) {
  return { message: e.message, code: e.code, errno: e.errno }
}

/** The getters of the current backup. */
function state() {
  return {
    idle: backup.idle,
    completed: backup.completed,
    failed: backup.failed,
    remaining: backup.remaining,
    pageCount: backup.pageCount,
  }
}

function call(method, sql, params = []) {
  return new Promise((resolve, reject) => {
    db[method](sql, params, function (err, row) {
      if (err) reject(err)
      else resolve(method === 'run' ? { lastID: this.lastID, changes: this.changes } : row)
    })
  })
}

const ops = {
  async open(options) {
    db = await create(options)
    db.on('error', () => {})
    return { cluster: db.cluster, cwd: process.cwd() }
  },
  run: (sql, params) => call('run', sql, params),
  get: (sql, params) => call('get', sql, params),
  all: (sql, params) => call('all', sql, params),
  exec: (sql) => new Promise((resolve, reject) => db.exec(sql, (e) => (e ? reject(e) : resolve(null)))),
  /** Starts `db.backup(...args)`; resolves when its callback has run. */
  backupStart: (...args) => new Promise((resolve, reject) => {
    backup = db.backup(...args, function (err) {
      if (err) reject(err)
      else resolve({ self: this === backup, filename: backup.filename, ...state() })
    })
  }),
  /** One `step(pages)`; resolves with what its callback got and the getters in it. */
  backupStep: (pages) => new Promise((resolve) => {
    backup.step(pages, function (err, done) {
      resolve({ err: err ? errorInfo(err) : err, done, self: this === backup, ...state() })
    })
  }),
  backupFinish: () => new Promise((resolve) => {
    backup.finish(function (...args) {
      resolve({ args: args.length, self: this === backup, ...state() })
    })
  }),
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
process.send({ event: 'ready', pid: process.pid })
