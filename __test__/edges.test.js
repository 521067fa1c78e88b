'use strict'
// API edges (issue 10, item 7), each checked against the real `sqlite3` package in the same
// test: calls on a Database that is closing or closed, Statements of such a Database, wait()'s
// argument, an each() whose row callback throws, and create()'s unknown options.

const { execFile } = require('child_process')
const fs = require('fs')
const os = require('os')
const path = require('path')
const { isNativeError } = require('util').types

const real = require('sqlite3')
const ours = require('..')

const IMPLS = [['sqlite3', real], ['sqlite3-cluster', ours]]
const REAL_PATH = path.dirname(require.resolve('sqlite3/package.json'))
const OURS_PATH = path.join(__dirname, '..')

const CLOSED = { message: 'SQLITE_MISUSE: Database is closed', errno: 21, code: 'SQLITE_MISUSE', keys: ['errno', 'code'] }
const HANDLE_CLOSED = { ...CLOSED, message: 'SQLITE_MISUSE: Database handle is closed' }
const FINALIZED = { ...CLOSED, message: 'SQLITE_MISUSE: Statement is already finalized' }

// ---- folders and Databases, all cleaned up ----

const dirs = []
const open = new Set()

function tmpDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-edges-'))
  dirs.push(dir)
  return dir
}

afterEach(async () => {
  // A test that failed half-way may leave a Database open.
  await Promise.all([...open].map((db) => new Promise((resolve) => {
    db.on('error', () => {})
    db.close(() => resolve())
  })))
  open.clear()
})

afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
})

function openDb(sqlite3, filename = ':memory:') {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(filename, (err) => (err ? reject(err) : resolve(db)))
    open.add(db)
  })
}

function closeDb(db) {
  return new Promise((resolve, reject) => db.close((err) => {
    if (err) return reject(err)
    open.delete(db)
    resolve()
  }))
}

/** Long enough for any callback still to come from a Database that has nothing in flight. */
function settle() {
  return new Promise((resolve) => setTimeout(resolve, 50))
}

// ---- what a call did: its callbacks and events, in order, and whether before it returned ----

function summary(value) {
  // Not `instanceof Error`: the real sqlite3's errors come from outside jest's sandbox.
  if (isNativeError(value)) {
    return { message: value.message, errno: value.errno, code: value.code, keys: Object.keys(value) }
  }
  return value
}

/**
 * Records every callback made by `fn(name)`: name, whether it ran before the call under test
 * returned (`sync`), its receiver and its arguments.
 */
function recorder(sqlite3, db) {
  const rec = { log: [], sync: true }
  rec.fn = (name) => function (...args) {
    const receiver = this === db ? 'Database'
      : this === undefined ? 'none'
        : this instanceof sqlite3.Statement ? 'Statement' : typeof this
    rec.log.push({ name, sync: rec.sync, receiver, args: args.map(summary) })
  }
  return rec
}

function kindOf(value, db, sqlite3) {
  if (value === db) return 'Database'
  if (value instanceof sqlite3.Statement) return 'Statement'
  return typeof value
}

/** Calls with a callback, by the name of the test. Each returns what the call returned. */
const CALLS = {
  'prepare(sql, cb)': (db, fn) => db.prepare('SELECT 1 AS x', fn('prepare')),
  'prepare(sql, param, cb)': (db, fn) => db.prepare('SELECT ? AS x', 1, fn('prepare')),
  'run(sql, cb)': (db, fn) => db.run('SELECT 1', fn('run')),
  'get(sql, param, cb)': (db, fn) => db.get('SELECT ? AS x', 1, fn('get')),
  'all(sql, cb)': (db, fn) => db.all('SELECT 1 AS x', fn('all')),
  'each(sql, row, complete)': (db, fn) => db.each('SELECT 1 AS x', fn('row'), fn('complete')),
  'each(sql, row)': (db, fn) => db.each('SELECT 1 AS x', fn('row')),
  'map(sql, cb)': (db, fn) => db.map('SELECT 1 AS x, 2 AS y', fn('map')),
  'exec(sql, cb)': (db, fn) => db.exec('SELECT 1', fn('exec')),
  'wait(cb)': (db, fn) => db.wait(fn('wait')),
  'close(cb)': (db, fn) => db.close(fn('close')),
  'loadExtension(path, cb)': (db, fn) => db.loadExtension('/nonexistent/extension', fn('loadExtension')),
}

/** The same calls without a callback. */
const BARE_CALLS = {
  'prepare(sql)': (db) => db.prepare('SELECT 1 AS x'),
  'run(sql)': (db) => db.run('SELECT 1'),
  'get(sql)': (db) => db.get('SELECT 1'),
  'all(sql)': (db) => db.all('SELECT 1'),
  'each(sql)': (db) => db.each('SELECT 1'),
  'map(sql)': (db) => db.map('SELECT 1'),
  'exec(sql)': (db) => db.exec('SELECT 1'),
  'wait()': (db) => db.wait(),
  'close()': (db) => db.close(),
  "configure('busyTimeout', 100)": (db) => db.configure('busyTimeout', 100),
  'loadExtension(path)': (db) => db.loadExtension('/nonexistent/extension'),
}

/** Runs `act(db, rec.fn)` on a Database whose close() has completed. */
async function afterClose(sqlite3, act, db) {
  db = db ?? await openDb(sqlite3)
  await closeDb(db)
  const rec = recorder(sqlite3, db)
  const returned = kindOf(act(db, rec.fn), db, sqlite3)
  rec.sync = false
  await settle()
  return { returned, log: rec.log }
}

/** Runs `act(db, rec.fn)` right after close(), while it is in progress. */
async function duringClose(sqlite3, act) {
  const db = await openDb(sqlite3)
  const rec = recorder(sqlite3, db)
  const closed = new Promise((resolve) => db.close(function (err) {
    rec.fn('close').call(this, err)
    resolve()
  }))
  act(db, rec.fn)
  rec.sync = false
  await closed
  open.delete(db)
  await settle()
  return rec.log
}

async function both(run) {
  const results = {}
  for (const [name, sqlite3] of IMPLS) results[name] = await run(sqlite3)
  return results
}

// ---------------------------------------------------------------------------------------------

describe('calls on a closed Database fail with SQLITE_MISUSE: Database is closed, before they return', () => {
  test.each(Object.keys(CALLS))('%s: the callback gets the error once, synchronously', async (name) => {
    const results = await both((sqlite3) => afterClose(sqlite3, CALLS[name]))
    expect(results['sqlite3-cluster']).toEqual(results.sqlite3)
    // What node-sqlite3 does, spelled out: one synchronous call of the last function.
    const { returned, log } = results.sqlite3
    expect(returned).toBe(name.startsWith('prepare') ? 'Statement' : 'Database')
    expect(log).toHaveLength(1)
    expect(log[0]).toMatchObject({ sync: true, args: [CLOSED] })
  })

  test.each(Object.keys(BARE_CALLS))('%s without a callback: emitted as the Database\'s error before it returns', async (name) => {
    const results = await both(async (sqlite3) => {
      const db = await openDb(sqlite3)
      await closeDb(db)
      const rec = recorder(sqlite3, db)
      db.on('error', rec.fn('error'))
      BARE_CALLS[name](db)
      rec.sync = false
      await settle()
      return rec.log
    })
    expect(results['sqlite3-cluster']).toEqual(results.sqlite3)
    expect(results.sqlite3).toEqual([{ name: 'error', sync: true, receiver: 'Database', args: [CLOSED] }])
  })

  test('without a callback nor an error listener: every call throws the error', async () => {
    const script = path.join(__dirname, 'edges', 'closed-throws.js')
    const [theirs, mine] = await Promise.all([REAL_PATH, OURS_PATH].map((impl) => new Promise((resolve, reject) => {
      execFile(process.execPath, [script, impl], { cwd: tmpDir(), timeout: 20000 },
        (err, stdout) => (err ? reject(err) : resolve(JSON.parse(stdout))))
    })))
    expect(mine).toEqual(theirs)
    expect(Object.keys(theirs)).toEqual(Object.keys(BARE_CALLS))
    for (const thrown of Object.values(theirs)) expect(thrown).toEqual({ ...CLOSED, error: true })
  })

  test("the closed Database's error carries the caller's stack, as node-sqlite3's synchronous errors do", async () => {
    const results = await both(async (sqlite3) => {
      const db = await openDb(sqlite3)
      await closeDb(db)
      let stack
      db.get('SELECT 1', (err) => { stack = err.stack })
      return stack.includes(__filename)
    })
    expect(results).toEqual({ sqlite3: true, 'sqlite3-cluster': true })
  })

  test('the same in a cluster: a master Database of a file, closed, answers every call at once', async () => {
    const expected = {}
    for (const name of Object.keys(CALLS)) expected[name] = await afterClose(real, CALLS[name])
    const file = path.join(tmpDir(), 'cluster.db')
    for (const name of Object.keys(CALLS)) {
      const db = await ours.create({ filename: file, standalone: false })
      open.add(db)
      expect(db.cluster.role).toBe('master')
      expect({ name, ...(await afterClose(ours, CALLS[name], db)) }).toEqual({ name, ...expected[name] })
    }
  })
})

describe('calls made while close() is in progress fail with SQLITE_MISUSE: Database handle is closed', () => {
  test('every call with a callback gets the error after the close callback, in call order', async () => {
    const act = (db, fn) => {
      for (const call of Object.values(CALLS)) call(db, fn)
    }
    const results = await both((sqlite3) => duringClose(sqlite3, act))
    expect(results['sqlite3-cluster']).toEqual(results.sqlite3)
    const names = results.sqlite3.map(({ name }) => name)
    expect(names).toEqual(['close', 'prepare', 'prepare', 'run', 'get', 'all', 'complete', 'row', 'map', 'exec',
      'wait', 'close', 'loadExtension'])
    expect(results.sqlite3[0]).toMatchObject({ sync: false, args: [null] })
    for (const entry of results.sqlite3.slice(1)) expect(entry).toMatchObject({ sync: false, args: [HANDLE_CLOSED] })
  })

  test('calls without a callback: the Database emits the error once', async () => {
    const results = await both(async (sqlite3) => {
      const db = await openDb(sqlite3)
      const rec = recorder(sqlite3, db)
      db.on('error', rec.fn('error'))
      db.close(rec.fn('close'))
      for (const call of Object.values(BARE_CALLS)) call(db)
      rec.sync = false
      await new Promise((resolve) => db.once('close', resolve))
      open.delete(db)
      await settle()
      return rec.log
    })
    expect(results['sqlite3-cluster']).toEqual(results.sqlite3)
    expect(results.sqlite3).toEqual([
      { name: 'close', sync: false, receiver: 'Database', args: [null] },
      { name: 'error', sync: false, receiver: 'Database', args: [HANDLE_CLOSED] },
    ])
  })
})

describe('Statements of a closing or closed Database', () => {
  /** Every Statement operation, with callbacks, then one after finalize(); what each returned. */
  function useStatement(statement, fn) {
    return [
      statement.bind(1, fn('bind')),
      statement.run(fn('run')),
      statement.get(fn('get')),
      statement.all(fn('all')),
      statement.each(fn('row'), fn('complete')),
      statement.map(fn('map')),
      statement.reset(fn('reset')),
      statement.finalize(fn('finalize')),
      statement.get(fn('get after finalize')),
    ]
  }

  test('prepared after close: the prepare callback gets "Database is closed" once; the operations are dropped', async () => {
    const results = await both((sqlite3) => afterClose(sqlite3, (db, fn) => {
      const statement = db.prepare('SELECT 1 AS x', fn('prepare'))
      const returned = useStatement(statement, fn).map((value) => kindOf(value, db, sqlite3))
      expect(returned).toEqual(['Statement', 'Statement', 'Statement', 'Statement', 'Statement', 'Statement',
        'Statement', 'Database', 'Statement'])
      return statement
    }))
    expect(results['sqlite3-cluster']).toEqual(results.sqlite3)
    expect(results.sqlite3).toEqual({
      returned: 'Statement',
      log: [{ name: 'prepare', sync: true, receiver: 'none', args: [CLOSED] }],
    })
  })

  test('new Statement(db, sql, cb) on a closed Database: the callback gets the error, with the Database as receiver', async () => {
    const results = await both((sqlite3) => afterClose(sqlite3, (db, fn) => new sqlite3.Statement(db, 'SELECT 1', fn('prepare'))))
    expect(results['sqlite3-cluster']).toEqual(results.sqlite3)
    expect(results.sqlite3.log).toEqual([{ name: 'prepare', sync: true, receiver: 'Database', args: [CLOSED] }])
  })

  test('finalized before close: operations fail with "Statement is already finalized", synchronously', async () => {
    const results = await both(async (sqlite3) => {
      const db = await openDb(sqlite3)
      const statement = db.prepare('SELECT 1 AS x')
      await new Promise((resolve) => statement.finalize(resolve))
      return afterClose(sqlite3, (_, fn) => {
        statement.get(fn('get'))
        statement.each(fn('row'), fn('complete'))
        return statement.finalize(fn('finalize'))
      }, db)
    })
    expect(results['sqlite3-cluster']).toEqual(results.sqlite3)
    expect(results.sqlite3).toEqual({
      returned: 'Database',
      log: [
        { name: 'get', sync: true, receiver: 'Statement', args: [FINALIZED] },
        { name: 'row', sync: true, receiver: 'Statement', args: [FINALIZED] },
        { name: 'finalize', sync: true, receiver: 'Statement', args: [FINALIZED] },
      ],
    })
  })

  test('prepared while close() runs, and the close succeeds: "Database handle is closed" once; the operations are dropped', async () => {
    const results = await both((sqlite3) => duringClose(sqlite3, (db, fn) => {
      useStatement(db.prepare('SELECT 1 AS x', fn('prepare')), fn)
    }))
    expect(results['sqlite3-cluster']).toEqual(results.sqlite3)
    expect(results.sqlite3).toEqual([
      { name: 'close', sync: false, receiver: 'Database', args: [null] },
      { name: 'prepare', sync: false, receiver: 'none', args: [HANDLE_CLOSED] },
    ])
  })

  // node-sqlite3 never runs a prepare queued behind a close that failed (its Database stays
  // stuck); here the Database stays open, so the statement is prepared and used in call order.
  test('this package: prepared while a close() fails (unfinalized statement), it is prepared and runs its operations in order', async () => {
    const db = await openDb(ours)
    const rec = recorder(ours, db)
    const keep = db.prepare('SELECT 2')
    const closing = new Promise((resolve) => db.close(function (err) {
      rec.fn('close').call(this, err)
      resolve()
    }))
    const fn = rec.fn
    const statement = db.prepare('SELECT ? AS x', fn('prepare'))
    statement.get(5, fn('get'))
    statement.all(fn('all'))
    statement.finalize(fn('finalize'))
    rec.sync = false
    await closing
    await new Promise((resolve) => db.wait(resolve))
    keep.finalize()
    await closeDb(db)
    expect(rec.log.map(({ name, args }) => [name, ...args])).toEqual([
      ['close', { message: 'SQLITE_BUSY: unable to close due to unfinalized statements or unfinished backups', errno: 5, code: 'SQLITE_BUSY', keys: ['errno', 'code'] }],
      ['prepare', null],
      ['get', null, { x: 5 }],
      ['all', null, [{ x: 5 }]],
      ['finalize'],
    ])
  })
})

describe('argument checks that node-sqlite3 makes before the call returns', () => {
  const NOT_FUNCTIONS = ['x', 5, null, {}, true]

  test.each(NOT_FUNCTIONS.map((v) => [JSON.stringify(v), v]))('wait(%s) throws TypeError: Argument 0 must be a function, open or closed', async (_, value) => {
    const results = await both(async (sqlite3) => {
      const db = await openDb(sqlite3)
      const outcome = []
      for (const phase of ['open', 'closed']) {
        if (phase === 'closed') await closeDb(db)
        try {
          db.wait(value)
          outcome.push('no throw')
        } catch (err) {
          outcome.push(`${err.constructor.name}: ${err.message}`)
        }
      }
      return outcome
    })
    expect(results['sqlite3-cluster']).toEqual(results.sqlite3)
    expect(results.sqlite3).toEqual(['TypeError: Argument 0 must be a function', 'TypeError: Argument 0 must be a function'])
  })

  // node-sqlite3 calls wait()'s callback before returning when nothing is in flight, later
  // otherwise; this package always calls it later, so `sync` is left out of the comparison.
  test('wait() and wait(undefined) return the Database; wait(cb) calls back with (null) and the Database as receiver', async () => {
    const results = await both(async (sqlite3) => {
      const db = await openDb(sqlite3)
      const rec = recorder(sqlite3, db)
      const returned = [db.wait(), db.wait(undefined), db.wait(rec.fn('wait'))].map((v) => kindOf(v, db, sqlite3))
      await closeDb(db)
      return { returned, log: rec.log.map(({ sync, ...rest }) => rest) }
    })
    expect(results['sqlite3-cluster']).toEqual(results.sqlite3)
    expect(results.sqlite3).toEqual({
      returned: ['Database', 'Database', 'Database'],
      log: [{ name: 'wait', receiver: 'Database', args: [null] }],
    })
  })

  test('loadExtension(path, notAFunction) and statement.finalize(notAFunction) throw the TypeError at once', async () => {
    const results = await both(async (sqlite3) => {
      const db = await openDb(sqlite3)
      const statement = db.prepare('SELECT 1')
      const thrown = []
      for (const call of [() => db.loadExtension('/nonexistent/extension', 'y'), () => statement.finalize('x')]) {
        try {
          call()
          thrown.push('no throw')
        } catch (err) {
          thrown.push(`${err.constructor.name}: ${err.message}`)
        }
      }
      await new Promise((resolve) => statement.finalize(resolve))
      await closeDb(db)
      return thrown
    })
    expect(results['sqlite3-cluster']).toEqual(results.sqlite3)
    expect(results.sqlite3).toEqual(['TypeError: Argument 1 must be a function', 'TypeError: Argument 0 must be a function'])
  })
})

describe('each() whose row callback throws', () => {
  /** Runs __test__/edges/each-throws.js with `impl`; resolves with its report and exit code. */
  function eachThrows(impl, scenario) {
    const script = path.join(__dirname, 'edges', 'each-throws.js')
    return new Promise((resolve, reject) => {
      execFile(process.execPath, [script, JSON.stringify({ impl, ...scenario })], { cwd: tmpDir(), timeout: 20000 },
        (err, stdout, stderr) => {
          if (err && err.killed) return reject(new Error(`each-throws.js timed out: ${stderr}`))
          const lines = stdout.trim().split('\n')
          resolve({ code: err ? err.code : 0, report: JSON.parse(lines[lines.length - 1]), stderr })
        })
    })
  }

  // node-sqlite3: the exception is uncaught, no further row is delivered, complete is never
  // called; its Database then never answers anything again (a later get() nor close()). Here
  // later calls run. (each-throws.js makes node-sqlite3 deliver its rows in one batch, the only
  // case where its behaviour is repeatable.)
  const expectedAfterThrow = (rows, throwAt) => ({
    rows: throwAt,
    lastRow: throwAt,
    complete: [],
    uncaught: [`row callback threw at ${throwAt}`],
  })

  test.each([
    ['5 rows, throws at row 2', { rows: 5, throwAt: 2 }],
    ['3000 rows, throws at row 2000', { rows: 3000, throwAt: 2000 }],
    ['3000 rows, throws at row 1', { rows: 3000, throwAt: 1 }],
  ])('statement.each(), %s: an uncaught exception, no more rows, no complete', async (_, { rows, throwAt }) => {
    const scenario = { via: 'statement', rows, throwAt, handler: true }
    const [theirs, mine] = await Promise.all([REAL_PATH, OURS_PATH].map((impl) => eachThrows(impl, scenario)))
    expect(theirs.report).toMatchObject(expectedAfterThrow(rows, throwAt))
    expect(mine.report).toMatchObject(expectedAfterThrow(rows, throwAt))
    expect(theirs.report).toMatchObject({ later: null, closed: null })
    expect(mine.report).toMatchObject({ later: rows, closed: 'closed' })
  })

  test.each([
    ['5 rows, throws at row 2', { rows: 5, throwAt: 2 }],
    ['3000 rows, throws at row 2000', { rows: 3000, throwAt: 2000 }],
  ])('db.each(), %s: the same (this package; node-sqlite3 is not repeatable there)', async (_, { rows, throwAt }) => {
    const { report } = await eachThrows(OURS_PATH, { via: 'db', rows, throwAt, handler: true })
    expect(report).toEqual({ ...expectedAfterThrow(rows, throwAt), later: rows, closed: 'closed' })
  })

  test('without an uncaughtException handler the process dies of it, after the same rows and no complete', async () => {
    const scenario = { via: 'statement', rows: 5, throwAt: 2, handler: false }
    const [theirs, mine] = await Promise.all([REAL_PATH, OURS_PATH].map((impl) => eachThrows(impl, scenario)))
    for (const { code, report, stderr } of [theirs, mine]) {
      expect(code).toBe(1)
      expect(report).toMatchObject({ rows: 2, lastRow: 2, complete: [], closed: null })
      expect(stderr).toContain('row callback threw at 2')
    }
  })
})

describe("create() and driver() refuse unknown options (this package's own API)", () => {
  test('a misspelt option rejects with a TypeError that names it and suggests the known one', async () => {
    const filename = path.join(tmpDir(), 'typo.db')
    const cases = [
      [{ filename, conectTimeout: 5 }, 'conectTimeout', 'connectTimeout'],
      [{ filename, busy_timeout: 5 }, 'busy_timeout', 'busyTimeout'],
      [{ filename, transactiontimeout: 5 }, 'transactiontimeout', 'transactionTimeout'],
      [{ filename, standalon: true }, 'standalon', 'standalone'],
      [{ filename, Key: 'k' }, 'Key', 'key'],
      [{ filname: filename }, 'filname', 'filename'],
    ]
    for (const [options, name, guess] of cases) {
      const err = await ours.create(options).then((db) => { open.add(db); return null }, (e) => e)
      expect(err).toBeInstanceOf(TypeError)
      expect(err.message).toBe(`sqlite3-cluster: unknown option \`${name}\` (did you mean \`${guess}\`?)`)
    }
    expect(fs.existsSync(filename)).toBe(false)
  })

  test('an unknown option with no close match lists the known ones; null is refused too for unknown names', async () => {
    const filename = path.join(tmpDir(), 'unknown.db')
    for (const value of ['secret', null]) {
      const err = await ours.create({ filename, password: value }).then((db) => { open.add(db); return null }, (e) => e)
      expect(err).toBeInstanceOf(TypeError)
      expect(err.message).toBe('sqlite3-cluster: unknown option `password`; the options are filename, key, bits, mode, ' +
        'verbose, standalone, serve, connect, sock, secret, connectTimeout, busyTimeout, transactionTimeout, journalMode, readConnections')
    }
  })

  test('driver() throws the same TypeError at once', () => {
    expect(() => ours.driver({ conectTimeout: 5 })).toThrow(new TypeError(
      'sqlite3-cluster: unknown option `conectTimeout` (did you mean `connectTimeout`?)'))
  })

  test('every known option is accepted, and null means "not set" for each of them', async () => {
    const dir = tmpDir()
    const valid = {
      filename: path.join(dir, 'known.db'),
      key: null, // set below: a key on a file that has none yet encrypts it
      bits: null,
      mode: ours.OPEN_READWRITE | ours.OPEN_CREATE,
      verbose: false,
      standalone: true,
      serve: false,
      connect: false,
      sock: path.join(dir, 'sock'),
      secret: 'shared',
      connectTimeout: 1000,
      busyTimeout: 1000,
      transactionTimeout: 1000,
    }
    const db = await ours.create({ ...valid, key: 'passphrase' })
    open.add(db)
    await closeDb(db)
    const nulls = Object.fromEntries(Object.keys(valid).map((name) => [name, null]))
    const again = await ours.create({ ...nulls, filename: path.join(dir, 'nulls.db'), standalone: true })
    open.add(again)
    expect(again.cluster.role).toBe('standalone')
    await closeDb(again)
    const module = ours.driver({ ...nulls, standalone: true, busyTimeout: 1000 })
    const viaDriver = await openDb(module, path.join(dir, 'driver.db'))
    await closeDb(viaDriver)
  })
})
