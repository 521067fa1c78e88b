'use strict'
// Differential tests: every scenario runs against the real node-sqlite3 (`sqlite3`, devDependency)
// and against this package, records normalized observations (callback arguments, receivers,
// `this.lastID/changes`, rows, error shapes, number of callback calls) and requires them to be
// deep-equal. What is followed: docs/node-sqlite3.md, #database-methods to #errors, and #easy-to-miss-points.
//
// node-sqlite3 runs in serialized mode (`db.serialize()`) so that no scenario depends on its
// parallel-mode ordering; this package always runs calls in order.

const fs = require('fs')
const os = require('os')
const path = require('path')
const vm = require('vm')
const { isNativeError } = require('util').types
const sqlite3 = require('sqlite3')
const mine = require('..')

const IMPLS = ['sqlite3', 'sqlite3-cluster']

// jest runs test code in its own realm, and node-sqlite3 recognizes Date and RegExp with
// `instanceof` against the main realm's constructors; values made here with the sandbox's
// `new Date()` would look like plain objects to it. Real applications use the main realm, so
// Dates and RegExps are made there.
const REALM = vm.runInThisContext('({ Date, RegExp })')
const mkDate = (ms) => new REALM.Date(ms)
const mkRegExp = (src, flags) => new REALM.RegExp(src, flags)
const TIMEOUT = 'TIMEOUT (callback never called)'

let tmpCounter = 0
function tmpFile() {
  return path.join(os.tmpdir(), `sqlite3-cluster-query-${process.pid}-${Date.now()}-${tmpCounter++}.db`)
}
function unlinkDb(file) {
  for (const suffix of ['', '-journal', '-wal', '-shm']) {
    try {
      fs.unlinkSync(file + suffix)
    } catch {
      /* absent */
    }
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function withTimeout(promise, ms = 3000) {
  let timer
  return Promise.race([
    promise,
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(TIMEOUT), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

// ---------------------------------------------------------------------------------------------
// Normalization

function normErr(e) {
  return {
    $error: e.constructor && e.constructor.name,
    message: e.message,
    errno: e.errno,
    code: e.code,
    keys: Object.keys(e),
  }
}

function norm(v) {
  if (v === undefined) return { $undefined: true }
  if (typeof v === 'number') {
    if (Object.is(v, -0)) return { $number: '-0' }
    if (Number.isNaN(v)) return { $number: 'NaN' }
    if (!Number.isFinite(v)) return { $number: String(v) }
    return v
  }
  if (typeof v === 'bigint') return { $bigint: String(v) }
  if (typeof v === 'function') return { $function: true }
  if (typeof v !== 'object' || v === null) return v
  // (jest runs tests in a separate realm: errors made by native code are not `instanceof Error` here)
  if (isNativeError(v) || v instanceof Error) return normErr(v)
  if (Buffer.isBuffer(v)) return { $buffer: v.toString('hex') }
  if (ArrayBuffer.isView(v)) return { $view: v.constructor.name, hex: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex') }
  if (Array.isArray(v)) return v.map(norm)
  const proto = Object.getPrototypeOf(v)
  const out = {
    $proto: proto === Object.prototype ? 'Object' : proto === null ? 'null' : (proto.constructor && proto.constructor.name) || '?',
    $keys: Object.keys(v),
  }
  for (const k of Object.keys(v)) out[`.${k}`] = norm(v[k])
  return out
}

// ---------------------------------------------------------------------------------------------
// Harness

function receiver(self, ctx) {
  if (self === undefined || self === globalThis) return 'none'
  if (self === ctx.db) return 'db'
  if (self !== null && typeof self === 'object') {
    const i = ctx.stmts.indexOf(self)
    return {
      recv: i >= 0 ? `stmt#${i}` : self instanceof ctx.lib.Statement ? 'statement' : 'object',
      sql: self.sql,
      lastID: norm(self.lastID),
      changes: norm(self.changes),
    }
  }
  return typeof self
}

function makeContext(kind, lib, db) {
  const ctx = { kind, lib, db, stmts: [], recorders: [] }

  /** A callback that records each call; `.first` resolves on the first call. */
  ctx.rec = (extra) => {
    const calls = []
    let resolveFirst
    const first = new Promise((resolve) => {
      resolveFirst = resolve
    })
    const fn = function () {
      const call = { n: arguments.length, args: Array.from(arguments, norm), this: receiver(this, ctx) }
      if (extra) call.extra = extra.call(this, ...arguments)
      calls.push(call)
      resolveFirst(call)
    }
    fn.calls = calls
    fn.first = first
    ctx.recorders.push(fn)
    return fn
  }

  /** Calls `db[method](...args, cb)` and resolves with the first recorded callback call. */
  ctx.q = (method, ...args) => {
    const cb = ctx.rec()
    const ret = db[method](...args, cb)
    if (ret !== db) throw new Error(`db.${method} did not return the Database`)
    return withTimeout(cb.first)
  }

  /** Waits until the database has finished everything queued so far. */
  ctx.settle = async () => {
    await withTimeout(new Promise((resolve) => db.wait(() => resolve())))
    await sleep(15)
  }

  ctx.track = (stmt) => {
    ctx.stmts.push(stmt)
    return stmt
  }
  return ctx
}

async function openDb(kind, filename) {
  if (kind === 'sqlite3') {
    return new Promise((resolve, reject) => {
      const db = new sqlite3.Database(filename, (err) => (err ? reject(err) : resolve(db)))
    })
  }
  return mine.create(filename)
}

async function runOn(kind, scenario, opts) {
  const lib = kind === 'sqlite3' ? sqlite3 : mine
  const file = opts.file ? tmpFile() : ':memory:'
  const db = await openDb(kind, file)
  db.serialize()
  const ctx = makeContext(kind, lib, db)
  let result
  let closeResult
  try {
    result = await scenario(ctx)
    await ctx.settle()
  } finally {
    closeResult = await withTimeout(new Promise((resolve) => db.close((err) => resolve(err ? normErr(err) : null))))
    if (opts.file) unlinkDb(file)
  }
  return {
    result,
    callbackCalls: ctx.recorders.map((r) => r.calls.length),
    close: closeResult,
  }
}

/** Runs `scenario` on both implementations; asserts equal observations; returns sqlite3's. */
async function diff(scenario, opts = {}) {
  const real = await runOn(IMPLS[0], scenario, opts)
  const ours = await runOn(IMPLS[1], scenario, opts)
  expect(ours).toEqual(real)
  return real.result
}

const ERR_SYNTAX_SELEC = 'SQLITE_ERROR: near "SELEC": syntax error'

async function seed(ctx, values = [1, 2, 3]) {
  await ctx.q('exec', 'CREATE TABLE t (id INTEGER PRIMARY KEY, x)')
  for (const v of values) await ctx.q('run', 'INSERT INTO t (x) VALUES (?)', v)
}

// =============================================================================================

describe('Database#run', () => {
  test('INSERT calls back once with (null) and this.lastID = rowid, this.changes = 1', async () => {
    const r = await diff(async (ctx) => {
      await ctx.q('exec', 'CREATE TABLE t (id INTEGER PRIMARY KEY, x)')
      const a = await ctx.q('run', 'INSERT INTO t (x) VALUES (?)', 'a')
      const b = await ctx.q('run', "INSERT INTO t (x) VALUES ('b')")
      const c = await ctx.q('run', 'INSERT INTO t (id, x) VALUES (10, ?)', 'c')
      return [a, b, c]
    })
    expect(r.map((c) => [c.n, c.this.lastID, c.this.changes])).toEqual([[1, 1, 1], [1, 2, 1], [1, 10, 1]])
  })

  test('UPDATE reports the number of changed rows and keeps the previous lastID', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx, [1, 2, 3, 4])
      return ctx.q('run', 'UPDATE t SET x = x + 10 WHERE id >= ?', 2)
    })
    expect(r.this).toMatchObject({ lastID: 4, changes: 3 })
  })

  test('DELETE reports changes (with and without WHERE)', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx, [1, 2, 3, 4, 5])
      const one = await ctx.q('run', 'DELETE FROM t WHERE id = 1')
      const none = await ctx.q('run', 'DELETE FROM t WHERE id = 99')
      const all = await ctx.q('run', 'DELETE FROM t')
      return [one, none, all]
    })
    expect(r.map((c) => c.this.changes)).toEqual([1, 0, 4])
  })

  test('after SELECT / CREATE, this.lastID and this.changes are the stale values of the last DML', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx, [1, 2, 3, 4])
      await ctx.q('run', 'UPDATE t SET x = 0')
      const sel = await ctx.q('run', 'SELECT * FROM t')
      const create = await ctx.q('run', 'CREATE TABLE u (y)')
      return [sel, create]
    })
    expect(r[0].this).toMatchObject({ lastID: 4, changes: 4 })
    expect(r[1].this).toMatchObject({ lastID: 4, changes: 4 })
  })

  test('multi-row INSERT: lastID is the last row, changes the row count', async () => {
    const r = await diff(async (ctx) => {
      await ctx.q('exec', 'CREATE TABLE t (id INTEGER PRIMARY KEY, x)')
      return ctx.q('run', 'INSERT INTO t (x) VALUES (?), (?), (?)', 'a', 'b', 'c')
    })
    expect(r.this).toMatchObject({ lastID: 3, changes: 3 })
  })

  test('INSERT into a WITHOUT ROWID table: changes = 1, lastID unchanged', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx, [1, 2])
      await ctx.q('exec', 'CREATE TABLE w (k TEXT PRIMARY KEY, v) WITHOUT ROWID')
      return ctx.q('run', "INSERT INTO w VALUES ('a', 1)")
    })
    expect(r.this).toMatchObject({ lastID: 2, changes: 1 })
  })

  test('only the first statement of "A; B" runs', async () => {
    const r = await diff(async (ctx) => {
      await ctx.q('exec', 'CREATE TABLE t (x)')
      const run = await ctx.q('run', 'INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)')
      const rows = await ctx.q('all', 'SELECT x FROM t')
      return { run, rows }
    })
    expect(r.rows.args[1]).toHaveLength(1)
  })

  test('this.sql is the SQL string exactly as passed', async () => {
    const sql = '  INSERT INTO t (x)\n  VALUES (?) -- trailing comment'
    const r = await diff(async (ctx) => {
      await ctx.q('exec', 'CREATE TABLE t (x)')
      return ctx.q('run', sql, 1)
    })
    expect(r.this.sql).toBe(sql)
  })

  test('success receiver: own enumerable keys are exactly [lastID, changes]; sql is non-enumerable and read-only', async () => {
    const r = await diff(async (ctx) => {
      await ctx.q('exec', 'CREATE TABLE t (x)')
      const cb = ctx.rec(function () {
        const d = Object.getOwnPropertyDescriptor(this, 'sql')
        return {
          keys: Object.keys(this),
          sqlDescriptor: d && { enumerable: d.enumerable, writable: d.writable, configurable: d.configurable },
          json: JSON.stringify(this),
        }
      })
      ctx.db.run('INSERT INTO t VALUES (1)', cb)
      return withTimeout(cb.first)
    })
    expect(r.extra.keys).toEqual(['lastID', 'changes'])
  })

  test('runtime error (UNIQUE) calls back once with the error, primary errno 19, receiver has no lastID/changes', async () => {
    const r = await diff(async (ctx) => {
      await ctx.q('exec', 'CREATE TABLE t (x UNIQUE)')
      await ctx.q('run', 'INSERT INTO t VALUES (1)')
      return ctx.q('run', 'INSERT INTO t VALUES (1)')
    })
    expect(r.n).toBe(1)
    expect(r.args[0]).toMatchObject({ message: 'SQLITE_CONSTRAINT: UNIQUE constraint failed: t.x', errno: 19, code: 'SQLITE_CONSTRAINT' })
  })

  test('NOT NULL and CHECK constraint messages', async () => {
    const r = await diff(async (ctx) => {
      await ctx.q('exec', 'CREATE TABLE t (x NOT NULL, w CHECK (w > 0))')
      const a = await ctx.q('run', 'INSERT INTO t VALUES (NULL, 1)')
      const b = await ctx.q('run', 'INSERT INTO t VALUES (1, -1)')
      return [a, b]
    })
    expect(r[1].args[0].message).toBe('SQLITE_CONSTRAINT: CHECK constraint failed: w > 0')
  })

  test('run() returns the Database (chainable) and calls in a chain execute in order', async () => {
    const r = await diff(async (ctx) => {
      const a = ctx.rec()
      const b = ctx.rec()
      const ret = ctx.db.run('CREATE TABLE t (x)', a).run('INSERT INTO t VALUES (5)', b)
      await withTimeout(b.first)
      const rows = await ctx.q('all', 'SELECT x FROM t')
      return { same: ret === ctx.db, a: a.calls, b: b.calls, rows }
    })
    expect(r.same).toBe(true)
  })
})

// =============================================================================================

describe('Database#get', () => {
  test('get() with a row calls back with (null, row), receiver is the statement', async () => {
    const r = await diff((ctx) => ctx.q('get', "SELECT 1 AS a, 'x' AS b, NULL AS c"))
    expect(r.n).toBe(2)
  })

  test('get() with no row calls back with exactly one argument', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx)
      return ctx.q('get', 'SELECT * FROM t WHERE x > 100')
    })
    expect(r.n).toBe(1)
    expect(r.args).toEqual([null])
  })

  test('get() only fetches the first row', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx, ['a', 'b', 'c'])
      return ctx.q('get', 'SELECT x FROM t ORDER BY id DESC')
    })
    expect(r.args[1]['.x']).toBe('c')
  })

  test('get() runtime error (integer overflow) calls back with one argument', async () => {
    const r = await diff((ctx) => ctx.q('get', 'SELECT abs(-9223372036854775808) AS v'))
    expect(r.n).toBe(1)
    expect(r.args[0].message).toBe('SQLITE_ERROR: integer overflow')
  })

  test('get() on a write statement performs it and calls back with one argument', async () => {
    await diff(async (ctx) => {
      await ctx.q('exec', 'CREATE TABLE t (x)')
      const g = await ctx.q('get', 'INSERT INTO t VALUES (7)')
      const rows = await ctx.q('all', 'SELECT x FROM t')
      return { g, rows }
    })
  })

  test('get() with RETURNING yields the returned row', async () => {
    await diff(async (ctx) => {
      await ctx.q('exec', 'CREATE TABLE t (id INTEGER PRIMARY KEY, x)')
      return ctx.q('get', 'INSERT INTO t (x) VALUES (?) RETURNING id, x', 'r')
    })
  })
})

// =============================================================================================

describe('Database#all', () => {
  test('all() returns every row in order, as plain objects', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx, ['a', null, 3.5, 4])
      return ctx.q('all', 'SELECT id, x FROM t ORDER BY id')
    })
    expect(r.args[1]).toHaveLength(4)
  })

  test('all() with no rows calls back with (null, [])', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx)
      return ctx.q('all', 'SELECT * FROM t WHERE 0')
    })
    expect(r.n).toBe(2)
    expect(r.args[1]).toEqual([])
  })

  test('all() runtime error calls back with one argument and no rows', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx, [1, '-9223372036854775808'])
      await ctx.q('run', 'UPDATE t SET x = -9223372036854775808 WHERE id = 2')
      return ctx.q('all', 'SELECT abs(x) AS a FROM t ORDER BY id')
    })
    expect(r.n).toBe(1)
  })
})

// =============================================================================================

describe('Database#each', () => {
  test('each() calls the row callback for every row, then complete(null, count)', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx, ['a', 'b', 'c'])
      const log = []
      const done = new Promise((resolve) => {
        ctx.db.each(
          'SELECT id, x FROM t ORDER BY id',
          ctx.rec(function (...args) {
            log.push({ cb: 'row', n: arguments.length, args: args.map(norm), this: receiver(this, ctx) })
          }),
          ctx.rec(function (...args) {
            log.push({ cb: 'complete', n: arguments.length, args: args.map(norm), this: receiver(this, ctx) })
            resolve()
          })
        )
      })
      await withTimeout(done)
      return log
    })
    expect(r.map((e) => e.cb)).toEqual(['row', 'row', 'row', 'complete'])
    expect(r[3].args).toEqual([null, 3])
  })

  test('each() on an empty result: row callback never called, complete(null, 0)', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx)
      const row = ctx.rec()
      const complete = ctx.rec()
      ctx.db.each('SELECT * FROM t WHERE 0', row, complete)
      await withTimeout(complete.first)
      return { row: row.calls, complete: complete.calls }
    })
    expect(r.row).toEqual([])
    expect(r.complete[0].args).toEqual([null, 0])
  })

  test('each() with a single callback treats it as the row callback', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx, [10, 20])
      const row = ctx.rec()
      ctx.db.each('SELECT x FROM t ORDER BY id', row)
      await ctx.settle()
      return row.calls
    })
    expect(r).toHaveLength(2)
  })

  test('each() with parameters before the two callbacks binds them', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx, [1, 2, 3, 4])
      const row = ctx.rec()
      const complete = ctx.rec()
      ctx.db.each('SELECT x FROM t WHERE x > ? AND x < ? ORDER BY x', 1, 4, row, complete)
      await withTimeout(complete.first)
      return { row: row.calls, complete: complete.calls }
    })
    expect(r.row).toHaveLength(2)
  })

  test('each() runtime error: row callback gets (err), complete still gets (null, count) — compared as a set', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx, [1, 2, 3, 4])
      await ctx.q('run', 'UPDATE t SET x = -9223372036854775808 WHERE id = 3')
      const events = []
      const done = new Promise((resolve) => {
        ctx.db.each(
          'SELECT abs(x) AS a FROM t ORDER BY id',
          ctx.rec((...args) => events.push(JSON.stringify({ cb: 'row', n: args.length, args: args.map(norm) }))),
          ctx.rec((...args) => {
            events.push(JSON.stringify({ cb: 'complete', n: args.length, args: args.map(norm) }))
            resolve()
          })
        )
      })
      await withTimeout(done)
      await ctx.settle()
      return events.sort()
    })
    const parsed = r.map((e) => JSON.parse(e))
    expect(parsed.filter((e) => e.cb === 'complete')).toEqual([{ cb: 'complete', n: 2, args: [null, 2] }])
    expect(parsed.filter((e) => e.cb === 'row' && e.args[0] !== null)).toHaveLength(1)
  })

  test('each() runtime error on the first row with only a row callback', async () => {
    const r = await diff(async (ctx) => {
      const row = ctx.rec()
      ctx.db.each('SELECT abs(-9223372036854775808) AS v', row)
      await withTimeout(row.first)
      await ctx.settle()
      return row.calls
    })
    expect(r[0].args[0].message).toBe('SQLITE_ERROR: integer overflow')
  })
})

// =============================================================================================

describe('Database#map', () => {
  async function mapOf(ctx, sql) {
    await ctx.q('exec', "CREATE TABLE t (id INTEGER PRIMARY KEY, name, extra); INSERT INTO t VALUES (1, 'one', 'e1'), (2, 'two', 'e2'), (3, 'three', 'e3')")
    return ctx.q('map', sql)
  }

  test('map() with 1 column: keys present, values undefined', async () => {
    const r = await diff((ctx) => mapOf(ctx, 'SELECT name FROM t ORDER BY id'))
    expect(r.args[1].$keys).toEqual(['one', 'two', 'three'])
    expect(r.args[1]['.one']).toEqual({ $undefined: true })
  })

  test('map() with 2 columns: first column -> second column', async () => {
    const r = await diff((ctx) => mapOf(ctx, 'SELECT id, name FROM t ORDER BY id'))
    expect(r.args[1]['.2']).toBe('two')
  })

  test('map() with 3 columns: first column -> whole row', async () => {
    const r = await diff((ctx) => mapOf(ctx, 'SELECT name, id, extra FROM t ORDER BY id'))
    expect(r.args[1]['.two']['.extra']).toBe('e2')
  })

  test('map() duplicate keys: last row wins; empty result -> {}; receiver is not the statement', async () => {
    const r = await diff(async (ctx) => {
      const dup = await ctx.q('map', "SELECT 'k' AS k, 1 AS v UNION ALL SELECT 'k', 2")
      const empty = await ctx.q('map', 'SELECT 1 AS a, 2 AS b WHERE 0')
      return { dup, empty }
    })
    expect(r.dup.args[1]['.k']).toBe(2)
    expect(r.dup.this).toBe('none')
  })

  test('map() with parameters and with a prepare error', async () => {
    const r = await diff(async (ctx) => {
      const withParams = await ctx.q('map', 'SELECT ? AS a, ? AS b', 'key', 'val')
      const bad = await ctx.q('map', 'SELECT * FROM nope')
      return { withParams, bad }
    })
    expect(r.bad.args[0].message).toBe('SQLITE_ERROR: no such table: nope')
  })
})

// =============================================================================================

describe('prepare errors', () => {
  test("db.run('SELEC 1', cb): message, errno, code, Object.keys(err) == ['errno','code'], cb called once without receiver", async () => {
    const r = await diff((ctx) => ctx.q('run', 'SELEC 1'))
    expect(r).toEqual({
      n: 1,
      args: [{ $error: 'Error', message: ERR_SYNTAX_SELEC, errno: 1, code: 'SQLITE_ERROR', keys: ['errno', 'code'] }],
      this: 'none',
    })
  })

  test('get/all/map with a prepare error call their callback exactly once with (err)', async () => {
    const r = await diff(async (ctx) => [
      await ctx.q('get', 'SELEC 1'),
      await ctx.q('all', 'SELECT * FROM missing_table'),
      await ctx.q('map', 'SELECT nofunc(1)'),
      await ctx.q('get', 'SELECT ('),
    ])
    expect(r.map((c) => c.args[0].message)).toEqual([
      ERR_SYNTAX_SELEC,
      'SQLITE_ERROR: no such table: missing_table',
      'SQLITE_ERROR: no such function: nofunc',
      'SQLITE_ERROR: incomplete input',
    ])
  })

  test('each(bad, row, complete): the prepare error goes to complete only', async () => {
    const r = await diff(async (ctx) => {
      const row = ctx.rec()
      const complete = ctx.rec()
      ctx.db.each('SELEC 1', row, complete)
      await withTimeout(complete.first)
      await ctx.settle()
      return { row: row.calls, complete: complete.calls }
    })
    expect(r.row).toEqual([])
    expect(r.complete).toHaveLength(1)
    expect(r.complete[0].n).toBe(1)
  })

  test('each(bad, row): the prepare error goes to the row callback', async () => {
    const r = await diff(async (ctx) => {
      const row = ctx.rec()
      ctx.db.each('SELECT * FROM foo', row)
      await withTimeout(row.first)
      await ctx.settle()
      return row.calls
    })
    expect(r).toHaveLength(1)
    expect(r[0].args[0].message).toBe('SQLITE_ERROR: no such table: foo')
  })

  test('db.prepare(bad, cb) calls cb exactly once with (err), no receiver; returns a Statement', async () => {
    const r = await diff(async (ctx) => {
      const cb = ctx.rec()
      const stmt = ctx.db.prepare('CRATE TALE foo text bar)', cb)
      await withTimeout(cb.first)
      await ctx.settle()
      return { isStatement: stmt instanceof ctx.lib.Statement, sql: stmt.sql, calls: cb.calls }
    })
    expect(r.calls).toHaveLength(1)
    expect(r.calls[0].args[0].message).toBe('SQLITE_ERROR: near "CRATE": syntax error')
  })

  test('operations queued on a statement whose prepare failed never call back', async () => {
    const r = await diff(async (ctx) => {
      const prepCb = ctx.rec()
      const stmt = ctx.db.prepare('SELECT * FROM nope', prepCb)
      const runCb = ctx.rec()
      const getCb = ctx.rec()
      stmt.run(runCb)
      stmt.get(getCb)
      await withTimeout(prepCb.first)
      await ctx.settle()
      return { prep: prepCb.calls, run: runCb.calls.length, get: getCb.calls.length }
    })
    expect(r.run).toBe(0)
  })

  test('db.prepare(sql, cb) on valid SQL calls cb once with (null), receiver = the statement', async () => {
    const r = await diff(async (ctx) => {
      const cb = ctx.rec()
      const stmt = ctx.track(ctx.db.prepare('SELECT 1 AS one', cb))
      await withTimeout(cb.first)
      await ctx.settle()
      stmt.finalize()
      return cb.calls
    })
    expect(r).toEqual([{ n: 1, args: [null], this: { recv: 'stmt#0', sql: 'SELECT 1 AS one', lastID: { $undefined: true }, changes: { $undefined: true } } }])
  })
})

// =============================================================================================

describe('parameter binding (docs/node-sqlite3.md#parameters)', () => {
  const get = (ctx, sql, ...params) => ctx.q('get', sql, ...params)

  test('array binds positionally; further arguments are ignored', async () => {
    const r = await diff(async (ctx) => [
      await get(ctx, 'SELECT ? AS a, ? AS b', [1, 'x']),
      await get(ctx, 'SELECT ? AS a, ? AS b', [1], 2),
    ])
    expect(r[1].args[1]['.b']).toBe(null)
  })

  test('varargs bind positionally', async () => {
    const r = await diff((ctx) => get(ctx, 'SELECT ? AS a, ? AS b, ? AS c', 1, 'two', null))
    expect(r.args[1]['.b']).toBe('two')
  })

  test('named object with $, : and @ prefixes', async () => {
    const r = await diff((ctx) => get(ctx, 'SELECT $a AS a, :b AS b, @c AS c', { $a: 1, ':b': 'bee', '@c': 3.5 }))
    expect(r.args[1]['.c']).toBe(3.5)
  })

  test('named placeholders can also be bound by position (array)', async () => {
    await diff((ctx) => get(ctx, 'SELECT @txt AS t, @id AS i', ['text', 7]))
  })

  test('numeric keys of an object bind by position', async () => {
    const r = await diff(async (ctx) => [
      await get(ctx, 'SELECT ? AS a, ? AS b', { 1: 'x', 2: 'y' }),
      await get(ctx, 'SELECT $n AS n, ? AS b', { 1: 'first', 2: 'second' }),
      await get(ctx, 'SELECT ?2 AS a, ?4 AS b', { 2: 'two', 4: 'four' }),
    ])
    expect(r[0].args[1]['.b']).toBe('y')
  })

  test('?NNN with an array: index i binds parameter i+1', async () => {
    const r = await diff(async (ctx) => [
      await get(ctx, 'SELECT ?2 AS a, ?4 AS b', [null, 'x', null, 5]),
      await get(ctx, 'SELECT ?5 AS a', ['only']),
    ])
    expect(r[1].args[1]['.a']).toBe(null)
  })

  test('too many values -> SQLITE_RANGE: column index out of range (errno 25), cb called once', async () => {
    const r = await diff(async (ctx) => [
      await get(ctx, 'SELECT ? AS a', 1, 2),
      await get(ctx, 'SELECT ? AS a', [1, 2, 3]),
      await ctx.q('run', 'SELECT 1', 'x'),
      await ctx.q('all', 'SELECT ? AS a', { 1: 'a', 2: 'b' }),
    ])
    for (const c of r) expect(c.args[0]).toMatchObject({ message: 'SQLITE_RANGE: column index out of range', errno: 25, code: 'SQLITE_RANGE' })
  })

  test('too few values -> the rest are NULL', async () => {
    const r = await diff((ctx) => get(ctx, 'SELECT ? AS a, ? AS b, ? AS c', 1))
    expect(r.args[1]['.c']).toBe(null)
  })

  test('undefined values are skipped (NULL, no RANGE error), including on a 0-parameter statement', async () => {
    const r = await diff(async (ctx) => {
      await ctx.q('exec', 'CREATE TABLE t (x)')
      return [
        await ctx.q('run', 'INSERT INTO t VALUES (1)', undefined),
        await get(ctx, 'SELECT ? AS a, ? AS b', undefined, 2),
        await get(ctx, 'SELECT ? AS a', 1, undefined, undefined),
        await get(ctx, 'SELECT $a AS a, $b AS b', { $a: undefined, $b: 'b' }),
      ]
    })
    expect(r[0].args).toEqual([null])
  })

  test('BigInt and Symbol values are skipped silently (NULL, no RANGE error)', async () => {
    const r = await diff(async (ctx) => [
      await get(ctx, 'SELECT ? AS a, typeof(?) AS t', 5n, 5n),
      await get(ctx, 'SELECT ? AS a', 1, 10n),
      await get(ctx, 'SELECT ? AS a, ? AS b', [Symbol('s'), 2n]),
      await get(ctx, 'SELECT $a AS a', { $a: 9007199254740993n }),
    ])
    expect(r[0].args[1]['.a']).toBe(null)
  })

  test('object key without prefix, key "0", or key not in the SQL -> SQLITE_RANGE', async () => {
    const r = await diff(async (ctx) => [
      await get(ctx, 'SELECT $a AS a', { a: 1 }),
      await get(ctx, 'SELECT ? AS a', { 0: 1 }),
      await get(ctx, 'SELECT $a AS a', { $a: 1, $zzz: 2 }),
    ])
    for (const c of r) expect(c.args[0].message).toBe('SQLITE_RANGE: column index out of range')
  })

  test('missing object keys leave their parameters NULL', async () => {
    const r = await diff((ctx) => get(ctx, 'SELECT $a AS a, $b AS b', { $b: 2 }))
    expect(r.args[1]['.a']).toBe(null)
  })

  test('inherited enumerable keys of the object are bound too; a Map binds nothing', async () => {
    const r = await diff(async (ctx) => {
      const obj = Object.create({ $a: 'inherited' })
      obj.$b = 'own'
      return [
        await get(ctx, 'SELECT $a AS a, $b AS b', obj),
        await get(ctx, 'SELECT $a AS a', new Map([['$a', 1]])),
      ]
    })
    expect(r[0].args[1]['.a']).toBe('inherited')
  })

  test('Date, Buffer, RegExp or a primitive as first argument mean varargs', async () => {
    const r = await diff(async (ctx) => [
      await get(ctx, 'SELECT ? AS a, ? AS b', mkDate(1700000000000), 'second'),
      await get(ctx, 'SELECT hex(?) AS a, ? AS b', Buffer.from('hi'), 'second'),
      await get(ctx, 'SELECT ? AS a, ? AS b', mkRegExp('re', 'g'), 'second'),
      await get(ctx, 'SELECT ? AS a, ? AS b', null, 'second'),
    ])
    expect(r.map((c) => c.args[1]['.b'])).toEqual(['second', 'second', 'second', 'second'])
  })

  test('two trailing functions in run(): the first is a parameter (bound as "[object Object]")', async () => {
    await diff(async (ctx) => {
      await ctx.q('exec', 'CREATE TABLE t (x)')
      const run = await ctx.q('run', 'INSERT INTO t VALUES (?)', () => 1)
      const rows = await ctx.q('all', 'SELECT x, typeof(x) AS t FROM t')
      return { run, rows }
    })
  })
})

// =============================================================================================

describe('value mapping (docs/node-sqlite3.md#values)', () => {
  /** Binds `value` into a TEXT column and an untyped column and reads back what is stored. */
  async function stored(ctx, value) {
    const cb = ctx.rec()
    ctx.db.run('INSERT INTO v (t, u) VALUES (?, ?)', value, value, cb)
    await withTimeout(cb.first)
    // Not quote(u): SQLite 3.53 (this package) renders large REALs differently from 3.52
    // (sqlite3 6.0.1), e.g. 9007199254740992.0 vs 9.007199254740992e+15; the stored value,
    // its type and its text in a TEXT column are what binding decides, and they are compared.
    const row = await ctx.q('get', 'SELECT typeof(t) AS tt, t, typeof(u) AS tu, u FROM v WHERE rowid = last_insert_rowid()')
    return { run: cb.calls[0].args, row: row.args[1] }
  }
  const table = (ctx) => ctx.q('exec', 'CREATE TABLE v (t TEXT, u)')

  test('int32 numbers bind as INTEGER; other integral numbers bind as REAL ("2147483648.0" in a TEXT column)', async () => {
    const values = [0, 1, -1, 2147483647, -2147483648, 2147483648, -2147483649, 4294967299, 2 ** 53, 1.5, -0.25, 1e300]
    const r = await diff(async (ctx) => {
      await table(ctx)
      const out = []
      for (const v of values) out.push(await stored(ctx, v))
      return out
    })
    expect(r[3].row['.tu']).toBe('integer')
    expect(r[5].row['.tu']).toBe('real')
    expect(r[5].row['.t']).toBe('2147483648.0')
  })

  test('typeof(?) in SQL for int32 vs non-int32 numbers', async () => {
    const r = await diff((ctx) => ctx.q('get', 'SELECT typeof(?) AS a, typeof(?) AS b, typeof(?) AS c, typeof(?) AS d', 7, 2147483648, 3.25, -2147483648))
    expect(r.args[1]).toMatchObject({ '.a': 'integer', '.b': 'real', '.c': 'real', '.d': 'integer' })
  })

  test('NaN binds as NULL; ±Infinity bind as REAL and read back as ±Infinity', async () => {
    const r = await diff(async (ctx) => {
      await table(ctx)
      return [await stored(ctx, NaN), await stored(ctx, Infinity), await stored(ctx, -Infinity)]
    })
    expect(r[0].row['.tu']).toBe('null')
    expect(r[1].row['.u']).toEqual({ $number: 'Infinity' })
  })

  test('-0 binds as INTEGER 0; REAL -0.0 reads back as -0', async () => {
    const r = await diff(async (ctx) => {
      await table(ctx)
      const s = await stored(ctx, -0)
      const neg = await ctx.q('get', 'SELECT -0.0 AS z, typeof(-0.0) AS t')
      return { s, neg }
    })
    expect(r.s.row['.tu']).toBe('integer')
  })

  test('booleans bind as INTEGER 1/0; null as NULL', async () => {
    const r = await diff(async (ctx) => {
      await table(ctx)
      return [await stored(ctx, true), await stored(ctx, false), await stored(ctx, null)]
    })
    expect(r[0].row['.u']).toBe(1)
  })

  test('Buffer, Uint8Array, Float64Array bind as BLOB of the raw bytes and read back as Buffer', async () => {
    const r = await diff(async (ctx) => {
      await table(ctx)
      return [
        await stored(ctx, Buffer.from([0, 1, 2, 255])),
        await stored(ctx, new Uint8Array([9, 8, 7])),
        await stored(ctx, new Float64Array([1.5])),
        await stored(ctx, new Uint16Array([1, 2]).subarray(1)),
      ]
    })
    expect(r[0].row['.u']).toEqual({ $buffer: '000102ff' })
  })

  test('an empty Buffer binds as an empty BLOB (not NULL) and reads back as an empty Buffer', async () => {
    const r = await diff(async (ctx) => {
      await table(ctx)
      const s = await stored(ctx, Buffer.alloc(0))
      const lit = await ctx.q('get', "SELECT x'' AS e, typeof(x'') AS t, zeroblob(3) AS z, zeroblob(0) AS z0")
      return { s, lit }
    })
    expect(r.s.row['.tu']).toBe('blob')
    expect(r.lit.args[1]['.z']).toEqual({ $buffer: '000000' })
  })

  test('Date binds as REAL milliseconds ("1700000000000.0" in TEXT); Invalid Date as NULL', async () => {
    const r = await diff(async (ctx) => {
      await table(ctx)
      return [await stored(ctx, mkDate(1700000000000)), await stored(ctx, mkDate(NaN)), await stored(ctx, mkDate(1700000000123))]
    })
    expect(r[0].row['.t']).toBe('1700000000000.0')
  })

  test('RegExp binds as its source text', async () => {
    const r = await diff(async (ctx) => {
      await table(ctx)
      return stored(ctx, mkRegExp('ab+c', 'gi'))
    })
    expect(r.row['.u']).toBe('/ab+c/gi')
  })

  test('nested objects, arrays, functions, ArrayBuffer, String objects, custom toString bind as "[object Object]"', async () => {
    const values = () => [{ a: 1 }, [1, 2], () => 0, new ArrayBuffer(4), new String('s'), { toString: () => 'custom' }]
    const r = await diff(async (ctx) => {
      await table(ctx)
      const out = []
      for (const v of values()) {
        const cb = ctx.rec()
        ctx.db.run('INSERT INTO v (t, u) VALUES (?, ?)', 'marker', v, cb)
        await withTimeout(cb.first)
      }
      out.push(await ctx.q('all', 'SELECT t, typeof(u) AS tu, u FROM v ORDER BY rowid'))
      out.push(await ctx.q('get', 'SELECT $o AS o', { $o: { nested: true } }))
      return out
    })
    expect(r[0].args[1].every((row) => row['.u'] === '[object Object]')).toBe(true)
  })

  test('strings with NUL, emoji and a lone surrogate', async () => {
    const values = ['a\u0000b', '😀 émoji ✓', 'x\uD800y', '\uDC00', '', "quote'd"]
    const r = await diff(async (ctx) => {
      await table(ctx)
      const out = []
      for (const v of values) {
        out.push(await stored(ctx, v))
        out.push(await ctx.q('get', 'SELECT hex(?) AS h, length(CAST(? AS BLOB)) AS n', v, v))
      }
      return out
    })
    expect(r[0].row['.u']).toBe('a\u0000b')
    expect(r[4].row['.u']).toBe('x\uFFFDy')
  })

  test('big integers read back as lossy numbers (2^53+1, 9223372036854775807, -9223372036854775808)', async () => {
    const r = await diff((ctx) =>
      ctx.q('get', 'SELECT 9007199254740993 AS a, 9223372036854775807 AS b, -9223372036854775808 AS c, 2147483648 AS d, typeof(9223372036854775807) AS t'))
    expect(r.args[1]['.a']).toBe(9007199254740992)
    expect(r.args[1]['.b']).toBe(2 ** 63) // 9223372036854775807 rounded to a double
  })

  test('big integers stored in an INTEGER column from JS numbers', async () => {
    await diff(async (ctx) => {
      await ctx.q('exec', 'CREATE TABLE n (i INTEGER, f FLOAT)')
      for (const v of [4294967299, 3924729304762836, 9.29e300, -9.29e300, Infinity, -Infinity, 2 ** 63]) {
        await ctx.q('run', 'INSERT INTO n VALUES (?, ?)', v, v)
      }
      return ctx.q('all', 'SELECT i, typeof(i) AS ti, f, typeof(f) AS tf FROM n ORDER BY rowid')
    })
  })

  test('row keys: duplicate column names collapse (last wins), unnamed expressions keyed by SQL text, integer-like keys first', async () => {
    const r = await diff(async (ctx) => [
      await ctx.q('get', 'SELECT 1 AS a, 2 AS a'),
      await ctx.q('get', 'SELECT 4'),
      await ctx.q('get', "SELECT 1 AS b, 2 AS a, 3 AS \"10\", 'x' || 'y'"),
      await ctx.q('all', 'SELECT t1.id, t2.id FROM (SELECT 1 AS id) t1, (SELECT 2 AS id) t2'),
      await ctx.q('get', 'SELECT 1 AS "__proto__", 2 AS "constructor"'),
    ])
    expect(r[0].args[1]).toEqual({ $proto: 'Object', $keys: ['a'], '.a': 2 })
    expect(r[1].args[1].$keys).toEqual(['4'])
  })

  test('column values follow the per-row storage class, not the declared type', async () => {
    await diff(async (ctx) => {
      await ctx.q('exec', "CREATE TABLE m (x INTEGER); INSERT INTO m VALUES (1), ('text'), (2.5), (NULL), (x'00')")
      return ctx.q('all', 'SELECT x FROM m ORDER BY rowid')
    })
  })
})

// =============================================================================================

describe('Statement API (docs/node-sqlite3.md#statements)', () => {
  const prepare = (ctx, sql, ...args) => ctx.track(ctx.db.prepare(sql, ...args))

  test('prepare -> bind -> successive get() walk the rows, undefined (1 arg) at the end, reset() rewinds', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx, [10, 20, 30, 40])
      const stmt = prepare(ctx, 'SELECT x FROM t WHERE x > ? ORDER BY x')
      const cbs = []
      const add = () => {
        const cb = ctx.rec()
        cbs.push(cb)
        return cb
      }
      stmt.bind(15, add())
      for (let i = 0; i < 5; i++) stmt.get(add())
      stmt.reset(add())
      stmt.get(add())
      stmt.get(add())
      const fin = ctx.rec()
      stmt.finalize(fin)
      await withTimeout(fin.first)
      return { calls: cbs.map((c) => c.calls), fin: fin.calls }
    })
    const rows = r.calls.slice(1, 6).map((c) => (c[0].n === 2 ? c[0].args[1]['.x'] : 'END'))
    expect(rows).toEqual([20, 30, 40, 'END', 'END'])
    expect(r.calls[7][0].args[1]['.x']).toBe(20)
  })

  test('get() over 1000 rows then 5 more returns undefined for the extra calls', async () => {
    const r = await diff(async (ctx) => {
      await ctx.q('exec', 'CREATE TABLE t (x); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1000) INSERT INTO t SELECT i FROM c')
      const stmt = prepare(ctx, 'SELECT x FROM t ORDER BY x')
      const seen = []
      let last
      for (let i = 0; i < 1005; i++) {
        last = new Promise((resolve) => stmt.get(function (err, row) { seen.push(err ? norm(err) : row === undefined ? `undefined/${arguments.length}` : row.x); resolve() }))
      }
      await withTimeout(last, 10000)
      stmt.finalize()
      return seen
    })
    expect(r).toHaveLength(1005)
    expect(r[999]).toBe(1000)
    expect(r.slice(1000)).toEqual(Array(5).fill('undefined/1'))
  })

  test('run/all/each on a prepared statement; all and each reset first', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx, ['a', 'b', 'c'])
      const stmt = prepare(ctx, 'SELECT x FROM t ORDER BY id')
      const cbs = [ctx.rec(), ctx.rec(), ctx.rec(), ctx.rec(), ctx.rec(), ctx.rec()]
      stmt.run(cbs[0]) // consumes one row
      stmt.get(cbs[1]) // -> row 2
      stmt.all(cbs[2]) // resets -> all rows
      stmt.get(cbs[3]) // cursor at DONE -> undefined
      stmt.each(cbs[4], cbs[5])
      const fin = ctx.rec()
      stmt.finalize(fin)
      await withTimeout(fin.first)
      return cbs.map((c) => c.calls)
    })
    expect(r[1][0].args[1]['.x']).toBe('b')
    expect(r[3][0].n).toBe(1)
    expect(r[5][0].args).toEqual([null, 3])
  })

  test('bindings persist across executions without parameters; bind() without params yields a spurious SQLITE_DONE after DONE and SQLITE_ROW after a row', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx, [1, 2, 3, 4])
      const stmt = prepare(ctx, 'SELECT count(*) AS n FROM t WHERE x > ?')
      const cbs = [ctx.rec(), ctx.rec(), ctx.rec(), ctx.rec(), ctx.rec(), ctx.rec(), ctx.rec(), ctx.rec()]
      stmt.bind(2, cbs[0])
      stmt.all(cbs[1])
      stmt.all(cbs[2]) // still bound to 2
      stmt.bind(cbs[3]) // no params, last status DONE -> spurious SQLITE_DONE
      stmt.run(cbs[4]) // steps once: last status ROW
      stmt.bind(cbs[5]) // no params, last status ROW -> spurious SQLITE_ROW
      stmt.get(0, cbs[6]) // params: resets and rebinds
      stmt.get(cbs[7]) // cursor past the only row
      const fin = ctx.rec()
      stmt.finalize(fin)
      await withTimeout(fin.first)
      return cbs.map((c) => c.calls)
    })
    expect(r[2][0].args[1][0]['.n']).toBe(2)
    expect(r[3][0].args[0]).toMatchObject({ message: 'SQLITE_DONE: ', errno: 101, code: 'SQLITE_DONE' })
    expect(r[5][0].args[0]).toMatchObject({ message: 'SQLITE_ROW: ', errno: 100, code: 'SQLITE_ROW' })
    expect(r[6][0].args[1]['.n']).toBe(4)
  })

  test('rerun with params: get(i) rebinds each time; run(params) resets and rebinds', async () => {
    const r = await diff(async (ctx) => {
      await ctx.q('exec', 'CREATE TABLE t (id INTEGER PRIMARY KEY, x)')
      const ins = prepare(ctx, 'INSERT INTO t (x) VALUES (?)')
      const runs = []
      for (let i = 0; i < 5; i++) runs.push(ctx.rec())
      runs.forEach((cb, i) => ins.run(`v${i}`, cb))
      const get = prepare(ctx, 'SELECT x FROM t WHERE id = ?')
      const gets = []
      for (let i = 1; i <= 6; i++) {
        const cb = ctx.rec()
        gets.push(cb)
        get.get(i, cb)
      }
      const fin = ctx.rec()
      ins.finalize()
      get.finalize(fin)
      await withTimeout(fin.first)
      return { runs: runs.map((c) => c.calls), gets: gets.map((c) => c.calls) }
    })
    expect(r.runs.map((c) => c[0].this.lastID)).toEqual([1, 2, 3, 4, 5])
    expect(r.gets[5][0].n).toBe(1)
  })

  test('run() on a prepared statement: this is the statement, lastID/changes become own enumerable props', async () => {
    const r = await diff(async (ctx) => {
      await ctx.q('exec', 'CREATE TABLE t (x)')
      const stmt = prepare(ctx, 'INSERT INTO t VALUES (?)')
      const before = Object.keys(stmt)
      const cb = ctx.rec()
      stmt.run(1, cb)
      await withTimeout(cb.first)
      const after = Object.keys(stmt)
      const fin = ctx.rec()
      stmt.finalize(fin)
      await withTimeout(fin.first)
      return { before, after, call: cb.calls[0] }
    })
    expect(r.after).toEqual(['lastID', 'changes'])
  })

  test('named parameters through bind() and Statement#map', async () => {
    await diff(async (ctx) => {
      await seed(ctx, [5, 6, 7])
      const stmt = prepare(ctx, 'SELECT id, x FROM t WHERE x >= $min ORDER BY id')
      const b = ctx.rec()
      const m = ctx.rec()
      stmt.bind({ $min: 6 }, b)
      stmt.map(m)
      const fin = ctx.rec()
      stmt.finalize(fin)
      await withTimeout(fin.first)
      return { b: b.calls, m: m.calls }
    })
  })

  test('finalize() returns the Database; its callback gets zero arguments with this = statement', async () => {
    const r = await diff(async (ctx) => {
      const stmt = prepare(ctx, 'SELECT 1')
      const fin = ctx.rec()
      const ret = stmt.finalize(fin)
      await withTimeout(fin.first)
      return { returnsDb: ret === ctx.db, calls: fin.calls }
    })
    expect(r.returnsDb).toBe(true)
    expect(r.calls[0].n).toBe(0)
  })

  test('other Statement methods return the statement (chainable)', async () => {
    const r = await diff(async (ctx) => {
      const stmt = prepare(ctx, 'SELECT ? AS a')
      const rets = [stmt.bind(1), stmt.get(), stmt.reset(), stmt.all(), stmt.run(), stmt.each()].map((x) => x === stmt)
      const fin = ctx.rec()
      stmt.finalize(fin)
      await withTimeout(fin.first)
      return rets
    })
    expect(r).toEqual([true, true, true, true, true, true])
  })

  test('any operation after finalize -> SQLITE_MISUSE: Statement is already finalized, delivered synchronously', async () => {
    const r = await diff(async (ctx) => {
      const stmt = prepare(ctx, 'SELECT 1')
      const fin = ctx.rec()
      stmt.finalize(fin)
      await withTimeout(fin.first)
      const out = {}
      for (const method of ['run', 'get', 'all', 'bind', 'reset', 'finalize']) {
        let sync = true
        let seen = null
        stmt[method](function (...args) {
          seen = { sync, n: arguments.length, args: args.map(norm), self: this === stmt }
        })
        sync = false
        out[method] = seen
      }
      await ctx.settle()
      return out
    })
    expect(r.run).toMatchObject({ sync: true, n: 1 })
    expect(r.run.args[0]).toMatchObject({ message: 'SQLITE_MISUSE: Statement is already finalized', errno: 21, code: 'SQLITE_MISUSE' })
  })

  test('each(row, complete) after finalize: the error goes synchronously to the row callback, complete is not called', async () => {
    const r = await diff(async (ctx) => {
      const stmt = prepare(ctx, 'SELECT 1')
      const fin = ctx.rec()
      stmt.finalize(fin)
      await withTimeout(fin.first)
      const log = []
      let sync = true
      stmt.each(
        (...args) => log.push({ cb: 'row', sync, args: args.map(norm) }),
        (...args) => log.push({ cb: 'complete', sync, args: args.map(norm) })
      )
      sync = false
      await ctx.settle()
      return log
    })
    expect(r.map((e) => [e.cb, e.sync])).toEqual([['row', true]])
  })

  test('an operation after finalize without callback emits "error" on the statement synchronously', async () => {
    const r = await diff(async (ctx) => {
      const stmt = prepare(ctx, 'SELECT 1')
      const fin = ctx.rec()
      stmt.finalize(fin)
      await withTimeout(fin.first)
      const events = []
      stmt.on('error', (err) => events.push(norm(err)))
      stmt.run()
      const syncCount = events.length
      await ctx.settle()
      return { syncCount, events }
    })
    expect(r.syncCount).toBe(1)
  })

  test('operations issued right after finalize() (before it has completed) each fail once with "Statement is already finalized"', async () => {
    const r = await diff(async (ctx) => {
      const stmt = prepare(ctx, 'SELECT 1 AS one')
      const fin = ctx.rec()
      const log = []
      let sync = true
      stmt.finalize(fin)
      for (const method of ['run', 'get', 'all']) {
        stmt[method](function (...args) {
          log.push({ method, sync, n: arguments.length, args: args.map(norm), self: this === stmt })
        })
      }
      sync = false
      await withTimeout(fin.first)
      await ctx.settle()
      return { log, fin: fin.calls }
    })
    expect(r.log.map((e) => e.args[0].message)).toEqual(Array(3).fill('SQLITE_MISUSE: Statement is already finalized'))
  })

  test("prepare('') gives a statement whose run yields SQLITE_MISUSE: not an error", async () => {
    const r = await diff(async (ctx) => {
      const prepCb = ctx.rec()
      const stmt = prepare(ctx, '', prepCb)
      const runCb = ctx.rec()
      stmt.run(runCb)
      const allCb = ctx.rec()
      stmt.all(allCb)
      await withTimeout(allCb.first)
      const fin = ctx.rec()
      stmt.finalize(fin)
      await withTimeout(fin.first)
      const dbRun = await ctx.q('run', '   -- only a comment')
      return { isStatement: stmt instanceof ctx.lib.Statement, prep: prepCb.calls, run: runCb.calls, all: allCb.calls, dbRun }
    })
    expect(r.run[0].args[0]).toMatchObject({ message: 'SQLITE_MISUSE: not an error', errno: 21 })
  })

  test('lastID increments 1..1000 over 1000 stmt.run calls; an UPDATE then reports changes', async () => {
    const r = await diff(async (ctx) => {
      await ctx.q('exec', 'CREATE TABLE t (id INTEGER PRIMARY KEY, x)')
      const stmt = prepare(ctx, 'INSERT INTO t (x) VALUES (?)')
      const ids = []
      let last
      for (let i = 0; i < 1000; i++) {
        last = new Promise((resolve) => stmt.run(i, function (err) { ids.push(err ? norm(err) : [this.lastID, this.changes, this === stmt]); resolve() }))
      }
      await withTimeout(last, 10000)
      const fin = ctx.rec()
      stmt.finalize(fin)
      await withTimeout(fin.first)
      const upd = await ctx.q('run', 'UPDATE t SET x = -x WHERE id % 2 = 0')
      return { ids, upd: upd.this }
    })
    expect(r.ids.map((x) => x[0])).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1))
    expect(r.upd.changes).toBe(500)
  })

  test('db.close() with an unfinalized statement fails with SQLITE_BUSY and the db stays usable', async () => {
    const r = await diff(async (ctx) => {
      const stmt = prepare(ctx, 'SELECT 42 AS v')
      const g = ctx.rec()
      stmt.get(g)
      await withTimeout(g.first)
      const close = ctx.rec()
      ctx.db.close(close)
      await withTimeout(close.first)
      const after = await ctx.q('get', 'SELECT 1 AS ok')
      const fin = ctx.rec()
      stmt.finalize(fin)
      await withTimeout(fin.first)
      return { close: close.calls, after, open: ctx.db.open }
    })
    expect(r.close[0].args[0]).toMatchObject({ errno: 5, code: 'SQLITE_BUSY' })
  })

  test('Statement#each with params and two callbacks; runtime error goes to row callback, complete still called', async () => {
    const r = await diff(async (ctx) => {
      await seed(ctx, [1, 2])
      await ctx.q('run', 'INSERT INTO t (x) VALUES (-9223372036854775808)')
      const stmt = prepare(ctx, 'SELECT abs(x) AS a FROM t WHERE id >= ? ORDER BY id')
      const events = []
      const done = new Promise((resolve) => {
        stmt.each(
          1,
          (...args) => events.push(JSON.stringify({ cb: 'row', args: args.map(norm) })),
          (...args) => {
            events.push(JSON.stringify({ cb: 'complete', args: args.map(norm) }))
            resolve()
          }
        )
      })
      await withTimeout(done)
      await ctx.settle()
      const fin = ctx.rec()
      stmt.finalize(fin)
      await withTimeout(fin.first)
      return events.sort()
    })
    expect(r).toContain(JSON.stringify({ cb: 'complete', args: [null, 2] }))
  })
})

// =============================================================================================

describe('Database#exec', () => {
  test('exec runs every statement of a script; cb(null) once with this === db', async () => {
    const r = await diff(async (ctx) => {
      const e = await ctx.q('exec', 'CREATE TABLE t (x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);\nINSERT INTO t VALUES (3)')
      const rows = await ctx.q('all', 'SELECT x FROM t ORDER BY x')
      return { e, rows }
    })
    expect(r.e).toEqual({ n: 1, args: [null], this: 'db' })
    expect(r.rows.args[1]).toHaveLength(3)
  }, 30000)

  test('exec stops at the failing statement and keeps the effects of earlier ones', async () => {
    const r = await diff(async (ctx) => {
      const e = await ctx.q('exec', 'CREATE TABLE t (x); INSERT INTO t VALUES (1); INSERT INTO nope VALUES (2); INSERT INTO t VALUES (3)')
      const rows = await ctx.q('all', 'SELECT x FROM t')
      return { e, rows }
    }, { file: true })
    expect(r.e.args[0]).toMatchObject({ message: 'SQLITE_ERROR: no such table: nope', errno: 1 })
    expect(r.e.this).toBe('db')
    expect(r.rows.args[1]).toHaveLength(1)
  })

  test('exec of an empty script or only comments succeeds', async () => {
    const r = await diff(async (ctx) => [
      await ctx.q('exec', ''),
      await ctx.q('exec', '  -- nothing here\n /* nor here */ '),
      await ctx.q('exec', ';;'),
    ])
    for (const c of r) expect(c.args).toEqual([null])
  })

  test('exec syntax error message and shape', async () => {
    const r = await diff((ctx) => ctx.q('exec', 'CRATE TABLE x (y)'))
    expect(r.args[0]).toEqual({ $error: 'Error', message: 'SQLITE_ERROR: near "CRATE": syntax error', errno: 1, code: 'SQLITE_ERROR', keys: ['errno', 'code'] })
  })

  test('exec inside an explicit transaction: the error leaves the transaction open, ROLLBACK undoes it', async () => {
    await diff(async (ctx) => {
      await ctx.q('exec', 'CREATE TABLE t (x UNIQUE)')
      const e = await ctx.q('exec', 'BEGIN; INSERT INTO t VALUES (1); INSERT INTO t VALUES (1); COMMIT')
      const during = await ctx.q('all', 'SELECT x FROM t')
      const rb = await ctx.q('exec', 'ROLLBACK')
      const after = await ctx.q('all', 'SELECT x FROM t')
      return { e, during, rb, after }
    }, { file: true })
  })
})

// =============================================================================================

describe('error objects', () => {
  test('async errors are plain Errors with own enumerable errno/code and stack "Error: <message>" without frames', async () => {
    const r = await diff(async (ctx) => {
      const cb = ctx.rec(function (err) {
        const proto = Object.getPrototypeOf(err)
        return {
          stack: err.stack,
          isNativeError: isNativeError(err),
          protoName: proto && proto.constructor && proto.constructor.name,
          ownNames: Object.getOwnPropertyNames(err).sort(),
        }
      })
      ctx.db.get('SELECT * FROM nope', cb)
      await withTimeout(cb.first)
      return cb.calls[0].extra
    })
    expect(r.stack).toBe('Error: SQLITE_ERROR: no such table: nope')
  })
})

afterAll(async () => {
  await sleep(20)
})
