'use strict'
// A test process: opens a Database with create() and runs what the test asks over IPC.
// Each message `{ id, op, args }` is answered with `{ id, ok, result | error }`; role changes
// and progress of long loops are reported as `{ event, ... }` messages.

const { create } = require('../..')
const { NativeSession } = require('../../lib/native')

let db = null
// The sessions of joinOnly: held here so that the garbage collector cannot drop them while the
// test runs.
const joined = []

function errorInfo(e) {
  return { message: e.message, code: e.code, errno: e.errno, masterPid: e.masterPid, rows: e.rows }
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
    // Buffers arrive as Uint8Arrays through IPC.
    for (const name of ['key', 'secret']) {
      if (options[name] instanceof Uint8Array) options[name] = Buffer.from(options[name])
    }
    db = await create(options)
    db.on('role', (role, masterPid) => process.send({ event: 'role', role, masterPid, at: Date.now() }))
    db.on('error', () => {})
    return db.cluster
  },
  /** Joins the cluster of `sock` the way a Database does, but sends no open (yet). */
  joinOnly(filename, sock) {
    joined.push(new NativeSession(filename, () => {}, { sock, intent: 'auto', connectTimeout: 5000 }))
    return null
  },
  cluster: () => db.cluster,
  run: (sql, params) => call('run', sql, params),
  get: (sql, params) => call('get', sql, params),
  all: (sql, params) => call('all', sql, params),
  exec: (sql) => new Promise((resolve, reject) => db.exec(sql, (e) => (e ? reject(e) : resolve(null)))),
  /** Sends every statement at once and reports each outcome, in order. */
  batch: (statements) => Promise.all(statements.map(([method, sql, params]) =>
    call(method, sql, params).then((result) => ({ ok: true, result }), (e) => ({ ok: false, error: errorInfo(e) })))),
  each(sql) {
    return new Promise((resolve, reject) => {
      let rows = 0
      let peak = 0
      let failure = null // node-sqlite3 hands a step error to the row callback
      db.each(sql, (err) => {
        if (err) failure = err
        else if (++rows % 10000 === 0) peak = Math.max(peak, process.memoryUsage().rss)
      }, (err, count) => (err || failure
        ? reject(Object.assign(err || failure, { rows })) // rows delivered before the error
        : resolve({ rows, count, peakRss: peak })))
    })
  },
  loadExtension: (file) => new Promise((resolve, reject) => db.loadExtension(file, (e) => (e ? reject(e) : resolve(null)))),
  close: () => new Promise((resolve, reject) => db.close((e) => (e ? reject(e) : resolve(null)))),
  rss: () => process.memoryUsage().rss,
  /**
   * Inserts `tag:n` rows for `ms`, `inFlight` at a time, reporting each acknowledged value as
   * it is acknowledged (a killed process keeps what it reported) and counting failures by code.
   */
  async insertLoop({ ms, tag, inFlight = 8 }) {
    const failures = {}
    let acked = 0
    let seq = 0
    const end = Date.now() + ms
    while (Date.now() < end) {
      const values = Array.from({ length: inFlight }, () => `${tag}:${seq++}`)
      const done = []
      await Promise.all(values.map((v) => call('run', 'INSERT INTO log(v) VALUES (?)', [v]).then(
        () => { done.push(v); acked++ },
        (e) => { failures[e.code] = (failures[e.code] || 0) + 1 })))
      if (done.length) process.send({ event: 'acked', values: done, at: Date.now() })
    }
    return { acked, failures, role: db.cluster.role }
  },
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
