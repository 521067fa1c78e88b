'use strict'
// A test process for the handover and failure tests: opens a Database with create() and runs
// what the test asks over IPC. Each message `{ id, op, args }` is answered with
// `{ id, ok, result | error }`; role changes and the outcomes of background loops are reported as
// `{ event, ... }` messages, stamped with Date.now() (one clock: same machine).

const { create } = require(require('path').join(__dirname, '..', '..'))

let db = null

function errorInfo(e) {
  return { message: e.message, code: e.code, errno: e.errno, masterPid: e.masterPid }
}

function call(method, sql, params = []) {
  return new Promise((resolve, reject) => {
    db[method](sql, params, function (err, row) {
      if (err) reject(err)
      else resolve(method === 'run' ? { lastID: this.lastID, changes: this.changes } : row)
    })
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** The background loops; each has a `stop` flag and a promise of its summary. */
let txnLoop = null
let stream = null

const ops = {
  async open(options) {
    db = await create(options)
    db.on('role', (role, masterPid) => process.send({ event: 'role', role, masterPid, at: Date.now() }))
    db.on('error', (e) => process.send({ event: 'dbError', error: errorInfo(e), at: Date.now() }))
    return db.cluster
  },
  cluster: () => db.cluster,
  run: (sql, params) => call('run', sql, params),
  get: (sql, params) => call('get', sql, params),
  all: (sql, params) => call('all', sql, params),
  exec: (sql) => new Promise((resolve, reject) => db.exec(sql, (e) => (e ? reject(e) : resolve(null)))),
  close: () => new Promise((resolve, reject) => db.close((e) => (e ? reject(e) : resolve(null)))),
  /** Closes the Database (a master hands over) and then exits on its own. */
  async leave() {
    await ops.close()
    setImmediate(() => process.exit(0))
    return null
  },

  /**
   * Loops `BEGIN IMMEDIATE; INSERT; (pause); INSERT; COMMIT` into txn(tag, seq, part) until
   * stopTxnLoop. Every failed statement is reported at once as a `txnFailed` event (then the
   * transaction is rolled back and the loop goes on); committed transactions are returned by
   * stopTxnLoop as `tag:seq`.
   */
  startTxnLoop({ tag, pauseMs = 5 }) {
    const state = { stop: false, committed: [], failures: {} }
    state.done = (async () => {
      for (let seq = 0; !state.stop; seq++) {
        let step = 'BEGIN'
        try {
          await call('run', 'BEGIN IMMEDIATE')
          step = 'INSERT 1'
          await call('run', 'INSERT INTO txn(tag, seq, part) VALUES (?, ?, 1)', [tag, seq])
          await sleep(pauseMs)
          step = 'INSERT 2'
          await call('run', 'INSERT INTO txn(tag, seq, part) VALUES (?, ?, 2)', [tag, seq])
          step = 'COMMIT'
          await call('run', 'COMMIT')
          state.committed.push(`${tag}:${seq}`)
        } catch (e) {
          state.failures[e.code || 'NO_CODE'] = (state.failures[e.code || 'NO_CODE'] || 0) + 1
          process.send({ event: 'txnFailed', tag, seq, step, error: errorInfo(e), at: Date.now() })
          // The transaction is lost either way; ROLLBACK clears CLUSTER_TXN_ABORTED.
          await call('run', 'ROLLBACK').catch(() => {})
          await sleep(pauseMs)
        }
      }
      return { committed: state.committed, failures: state.failures, role: db.cluster.role }
    })()
    txnLoop = state
    return null
  },
  async stopTxnLoop() {
    txnLoop.stop = true
    return txnLoop.done
  },

  /**
   * Sends `sql` (db.get) every `everyMs` without waiting for earlier answers, so some are always
   * in flight; every outcome is reported as an `outcome` event with when it was sent and settled.
   */
  startStream({ sql, everyMs = 50 }) {
    stream = { timer: null, sent: 0 }
    stream.timer = setInterval(() => {
      const n = stream.sent++
      const sentAt = Date.now()
      db.get(sql, (err) => process.send({
        event: 'outcome', seq: n, sentAt, doneAt: Date.now(), ok: !err, error: err ? errorInfo(err) : null,
      }))
    }, everyMs)
    return null
  },
  /** Stops sending; resolves with how many were sent (the test compares with the outcomes). */
  stopStream() {
    clearInterval(stream.timer)
    return { sent: stream.sent, at: Date.now() }
  },

  /**
   * Sends `n` db.get(sql) at once, not awaiting any, and resolves as soon as they are sent; a
   * `flooded` event follows once every one is answered. Answers are checked (a blob of `bytes`)
   * and dropped, so this process holds one at a time.
   */
  flood({ sql, n, bytes }) {
    let answered = 0
    let good = 0
    const failures = {}
    for (let i = 0; i < n; i++) {
      db.get(sql, (err, row) => {
        if (err) failures[err.code || 'NO_CODE'] = (failures[err.code || 'NO_CODE'] || 0) + 1
        else if (row && row.b && row.b.length === bytes) good++
        if (++answered === n) process.send({ event: 'flooded', good, failures, at: Date.now() })
      })
    }
    return { sent: n, at: Date.now() }
  },

  /**
   * `n` read-modify-write transactions on counter(n) with a deferred BEGIN: two connections to
   * the file get SQLITE_BUSY here (both read, then both want to write), one master never does.
   */
  async counter({ n }) {
    const failures = {}
    let done = 0
    for (let i = 0; i < n; i++) {
      try {
        await call('run', 'BEGIN')
        const row = await call('get', 'SELECT n FROM counter')
        await call('run', 'UPDATE counter SET n = ?', [row.n + 1])
        await call('run', 'COMMIT')
        done++
      } catch (e) {
        failures[e.code || 'NO_CODE'] = (failures[e.code || 'NO_CODE'] || 0) + 1
        await call('run', 'ROLLBACK').catch(() => {})
      }
    }
    return { done, failures }
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
