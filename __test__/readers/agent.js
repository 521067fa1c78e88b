'use strict'
// A process of the read-connection tests (readers.test.js): opens one Database with create()
// and runs what the test asks over IPC. Each message `{ id, op, args }` is answered with
// `{ id, ok, result | error }`.

const { create } = require(require('path').join(__dirname, '..', '..'))

let db = null

function errorInfo(e) {
  return { message: e.message, code: e.code, errno: e.errno }
}

function call(method, sql, params = []) {
  return new Promise((resolve, reject) => {
    db[method](sql, params, function (err, row) {
      if (err) reject(err)
      else resolve(method === 'run' ? { lastID: this.lastID, changes: this.changes } : row)
    })
  })
}

/** `db.each()`: the rows, in order (an error from a row or the completion rejects). */
function each(sql, params = []) {
  return new Promise((resolve, reject) => {
    const rows = []
    let failure = null
    db.each(sql, params, (err, row) => (err ? (failure = err) : rows.push(row)),
      (err) => (err || failure ? reject(err || failure) : resolve(rows)))
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** The background transaction loop of startTxnLoop. */
let loop = null

const ops = {
  async open(options) {
    db = await create(options)
    db.on('error', () => {})
    return db.cluster
  },
  run: (sql, params) => call('run', sql, params),
  get: (sql, params) => call('get', sql, params),
  all: (sql, params) => call('all', sql, params),
  each: (sql, params) => each(sql, params),
  exec: (sql) => new Promise((resolve, reject) => db.exec(sql, (e) => (e ? reject(e) : resolve(null)))),
  close: () => new Promise((resolve, reject) => db.close((e) => (e ? reject(e) : resolve(null)))),

  /**
   * `BEGIN IMMEDIATE; INSERT ('a', 'loop:<n>'); (hold holdMs); COMMIT`, again and again, until
   * stopTxnLoop. Resolves once the first transaction is open and holds its row, so that
   * whatever the test does next meets a transaction of this process.
   */
  async startTxnLoop({ holdMs }) {
    const state = { stop: false, commits: 0, failures: [] }
    let started
    const first = new Promise((resolve) => { started = resolve })
    state.done = (async () => {
      for (let n = 0; !state.stop; n++) {
        try {
          await call('run', 'BEGIN IMMEDIATE')
          await call('run', 'INSERT INTO t(who, v) VALUES (?, ?)', ['a', `loop:${n}`])
          started()
          await sleep(holdMs)
          await call('run', 'COMMIT')
          state.commits++
        } catch (e) {
          state.failures.push(errorInfo(e))
          started()
          await call('run', 'ROLLBACK').catch(() => {})
        }
      }
      return { commits: state.commits, failures: state.failures }
    })()
    loop = state
    await first
    return null
  },
  async stopTxnLoop() {
    loop.stop = true
    return loop.done
  },

  /**
   * Read-your-writes: `n` times, insert a row and read it back at once. On even rounds the read
   * is sent only after the insert's answer; on odd rounds it is sent in the same turn as the
   * insert, without waiting (a Database's calls run in call order, so it must still see it).
   * Returns the rounds whose read missed the row, with the form used.
   */
  async readYourWrites({ n, tag }) {
    const misses = []
    const read = (v) => call('get', 'SELECT v FROM t WHERE who = ? AND v = ?', [tag, v])
    for (let i = 0; i < n; i++) {
      const v = `${tag}:${i}`
      let row
      if (i % 2 === 0) {
        await call('run', 'INSERT INTO t(who, v) VALUES (?, ?)', [tag, v])
        row = await read(v)
      } else {
        const inserted = call('run', 'INSERT INTO t(who, v) VALUES (?, ?)', [tag, v])
        const got = read(v)
        await inserted
        row = await got
      }
      if (row === undefined || row.v !== v) misses.push({ round: i, form: i % 2 === 0 ? 'after the answer' : 'same turn', row })
    }
    return misses
  },
}

/** `ops.fillLog` and `ops.scanLog`: the rows of one transaction, each a page of its own. */
const ROWS_PER_TXN = 8

Object.assign(ops, {
  /**
   * `get(sql, [p])` for each p of `each`, all sent in one turn; resolves with the rows and the
   * order in which their callbacks ran.
   */
  async getMany({ sql, each }) {
    const order = []
    const rows = await Promise.all(each.map((p, i) => call('get', sql, [p]).then((row) => { order.push(i); return row })))
    return { rows, order }
  },

  /** Commits transactions of ROWS_PER_TXN rows of 4000 bytes for `ms`; returns how many. */
  async fillLog({ ms }) {
    const until = Date.now() + ms
    let commits = 0
    while (Date.now() < until) {
      await call('run', 'BEGIN')
      for (let i = 0; i < ROWS_PER_TXN; i++) await call('run', 'INSERT INTO log(b) VALUES (randomblob(4000))')
      await call('run', 'COMMIT')
      commits++
    }
    return commits
  },

  /**
   * Scans the whole log table again and again for `ms`: each scan must see whole transactions
   * only, and never fewer rows than the scan before. Returns the scans and what was wrong.
   */
  async scanLog({ ms }) {
    const until = Date.now() + ms
    const problems = []
    let scans = 0
    let last = 0
    while (Date.now() < until) {
      const row = await call('get', 'SELECT count(*) AS n, coalesce(max(id), 0) AS m FROM log')
      if (!(row.n === row.m && row.n % ROWS_PER_TXN === 0 && row.n >= last)) problems.push({ ...row, last })
      last = row.n
      scans++
    }
    return { scans, problems }
  },
})

process.on('message', async ({ id, op, args = [] }) => {
  try {
    const result = await ops[op](...args)
    process.send({ id, ok: true, result })
  } catch (e) {
    process.send({ id, ok: false, error: errorInfo(e) })
  }
})
process.on('disconnect', () => process.exit(0))
process.send({ event: 'ready', pid: process.pid })
