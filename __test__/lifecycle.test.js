'use strict'
// Lifecycle, configuration, events, scheduling helpers, interrupt, error delivery, async
// context and verbose mode of the node-sqlite3 API (docs/node-sqlite3.md: objects, order of calls, opening, methods,
// errors, events, verbose mode, async context), plus this package's own create()/escape surface (docs/api.md).
//
// Where node-sqlite3 defines the behaviour, each test runs the same scenario against the real
// `sqlite3` module and against this package, checks that the real module shows what the
// docs/node-sqlite3.md says (so the scenario is meaningful), and asserts that both observations are equal.

const fs = require('fs')
const os = require('os')
const path = require('path')
const { spawn } = require('child_process')
const { AsyncLocalStorage } = require('async_hooks')

const ROOT = path.resolve(__dirname, '..')
const real = require('sqlite3')
const ours = require('..')
const IMPLS = [['sqlite3', real], ['ours', ours]]
const REAL_PATH = require.resolve('sqlite3')

const DEFAULT_MODE = 65542
const LONG_QUERY =
  'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT count(*) AS n FROM c'
const SCENARIO_TIMEOUT = 8000

let tmpDir
let fileCounter = 0
const openDbs = new Set()
const openStatements = new Set()
const children = new Set()

beforeAll(() => {
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-lifecycle-'))
})

afterEach(async () => {
  for (const st of openStatements) {
    try {
      await new Promise((resolve) => {
        const t = setTimeout(resolve, 2000)
        st.finalize(() => { clearTimeout(t); resolve() })
      })
    } catch { /* already finalized */ }
  }
  openStatements.clear()
  for (const db of openDbs) {
    await closeQuietly(db)
  }
  openDbs.clear()
})

afterAll(() => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  children.clear()
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true })
})

// ---------------------------------------------------------------------------------------------
// helpers

function tmpFile(label) {
  return path.join(tmpDir, `${label}-${process.pid}-${++fileCounter}.db`)
}

/** Registers a Database for cleanup and returns it. */
function track(db) {
  openDbs.add(db)
  return db
}

function closeQuietly(db) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 3000)
    const done = () => { clearTimeout(t); resolve() }
    try {
      if (!db.open) return done()
      const noop = () => {}
      db.on('error', noop)
      db.close(() => done())
    } catch {
      done()
    }
  })
}

/** `{ name, message, errno, code }` of an error (or null/undefined as is). */
function errObs(e) {
  if (e === null || e === undefined) return e
  return { name: e.constructor && e.constructor.name, message: e.message, errno: e.errno, code: e.code }
}

/** The error thrown by `fn`, normalised, or 'no throw'. */
function thrown(fn) {
  try {
    fn()
  } catch (e) {
    return errObs(e)
  }
  return 'no throw'
}

/**
 * Runs `scenario(mod, obs, done)` for one implementation; resolves with `obs` once `done()` is
 * called, or with `obs` + 'TIMEOUT' if it is not called in time (so a hang shows as a diff).
 */
function observe(mod, scenario, ms = SCENARIO_TIMEOUT) {
  const obs = []
  return new Promise((resolve) => {
    let finished = false
    const finish = (extra) => {
      if (finished) return
      finished = true
      clearTimeout(timer)
      if (extra !== undefined) obs.push(extra)
      // let late events (which would be a difference too) land first
      setTimeout(() => resolve(obs), 30)
    }
    const timer = setTimeout(() => finish('TIMEOUT'), ms)
    try {
      const r = scenario(mod, obs, () => finish())
      if (r && typeof r.then === 'function') r.catch((e) => finish({ scenarioThrew: errObs(e) }))
    } catch (e) {
      finish({ scenarioThrew: errObs(e) })
    }
  })
}

/** Runs the scenario for both implementations, one after the other. */
async function both(scenario, ms) {
  const out = {}
  for (const [name, mod] of IMPLS) out[name] = await observe(mod, scenario, ms)
  return out
}

/** Opens a Database of `mod` and waits for it to be open. */
function openDb(mod, file = ':memory:', mode) {
  return new Promise((resolve, reject) => {
    const cb = (err) => (err ? reject(err) : resolve(db))
    const db = track(mode === undefined ? new mod.Database(file, cb) : new mod.Database(file, mode, cb))
  })
}

/** Runs a child `node -e script`, resolves with { code, signal, stdout, stderr, ms }. */
function runChild(script, { timeout = 15000, cwd = ROOT } = {}) {
  return new Promise((resolve) => {
    const started = Date.now()
    const child = spawn(process.execPath, ['-e', script], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += d })
    child.stderr.on('data', (d) => { stderr += d })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      children.delete(child)
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started })
    })
  })
}

// ---------------------------------------------------------------------------------------------

describe('open: new Database(filename, [mode], [callback])', () => {
  test('callback gets exactly (null) with this === db, then the open event fires; db.open flips from false to true', async () => {
    const r = await both((mod, obs, done) => {
      const file = tmpFile('open')
      const db = track(new mod.Database(file, function (...args) {
        obs.push(['cb', this === db, args.length, args[0], db.open])
      }))
      obs.push(['after ctor', db.open])
      db.on('open', (...args) => {
        obs.push(['open event', args.length, db.open])
        done()
      })
    })
    expect(r.sqlite3).toEqual([['after ctor', false], ['cb', true, 1, null, true], ['open event', 0, true]])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test('missing directory: callback gets SQLITE_CANTOPEN errno 14 with this === db, no open event, db.open stays false', async () => {
    const r = await both((mod, obs, done) => {
      const file = path.join(tmpDir, 'no-such-dir', 'x.db')
      const db = track(new mod.Database(file, function (err) {
        obs.push(['cb', this === db, errObs(err), db.open])
        setTimeout(done, 50)
      }))
      db.on('open', () => obs.push('open event'))
    })
    expect(r.sqlite3).toEqual([['cb', true, {
      name: 'Error', message: 'SQLITE_CANTOPEN: unable to open database file', errno: 14, code: 'SQLITE_CANTOPEN',
    }, false]])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test('db.filename is the string as passed and db.mode the mode used (default 65542), both read-only non-enumerable own properties', async () => {
    const r = await both(async (mod, obs, done) => {
      const rel = path.relative(process.cwd(), tmpFile('props'))
      const a = await openDb(mod, rel)
      const b = await openDb(mod, ':memory:', mod.OPEN_READWRITE | mod.OPEN_CREATE)
      const c = track(new mod.Database(':memory:', 1.5))
      await new Promise((resolve) => c.once('open', resolve))
      const d = Object.getOwnPropertyDescriptor(a, 'filename')
      const m = Object.getOwnPropertyDescriptor(a, 'mode')
      obs.push(
        a.filename === rel, a.mode, b.mode, c.mode,
        d && { w: d.writable, e: d.enumerable, c: d.configurable },
        m && { w: m.writable, e: m.enumerable, c: m.configurable },
        Object.keys(a).includes('filename'),
      )
      done()
    })
    expect(r.sqlite3).toEqual([true, DEFAULT_MODE, real.OPEN_READWRITE | real.OPEN_CREATE, DEFAULT_MODE,
      { w: false, e: false, c: false }, { w: false, e: false, c: false }, false])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test('db.open is a getter on the prototype (no setter) that is false after close', async () => {
    const r = await both(async (mod, obs, done) => {
      const desc = Object.getOwnPropertyDescriptor(mod.Database.prototype, 'open')
      obs.push(typeof desc.get, desc.set)
      const db = await openDb(mod)
      obs.push(db.open)
      db.close(() => {
        obs.push(db.open)
        done()
      })
    })
    expect(r.sqlite3).toEqual(['function', undefined, true, false])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test("calling Database(':memory:') without new throws the class-constructor TypeError", async () => {
    const r = await both((mod, obs, done) => {
      obs.push(thrown(() => mod.Database(':memory:')))
      done()
    })
    expect(r.sqlite3).toEqual([{
      name: 'TypeError', message: "Class constructors cannot be invoked without 'new'", errno: undefined, code: undefined,
    }])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test("new Database(123) throws TypeError 'String expected'", async () => {
    const r = await both((mod, obs, done) => {
      obs.push(thrown(() => track(new mod.Database(123))))
      done()
    })
    expect(r.sqlite3).toEqual([{ name: 'TypeError', message: 'String expected', errno: undefined, code: undefined }])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test('OPEN_READONLY on :memory: opens, then a write fails with SQLITE_READONLY', async () => {
    const r = await both((mod, obs, done) => {
      const db = track(new mod.Database(':memory:', mod.OPEN_READONLY, function (err) {
        obs.push(['open', err, this === db, db.mode])
        db.get('SELECT 1 AS x', (err2, row) => {
          obs.push(['read', err2, row])
          db.run('CREATE TABLE t (x)', (err3) => {
            obs.push(['write', errObs(err3)])
            done()
          })
        })
      }))
    })
    expect(r.sqlite3).toEqual([
      ['open', null, true, real.OPEN_READONLY],
      ['read', null, { x: 1 }],
      ['write', { name: 'Error', message: 'SQLITE_READONLY: attempt to write a readonly database', errno: 8, code: 'SQLITE_READONLY' }],
    ])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test('calls made before the database is open are queued and run after the callback and the open event', async () => {
    const r = await both((mod, obs, done) => {
      const db = track(new mod.Database(':memory:', () => obs.push('cb')))
      db.on('open', () => obs.push('open'))
      db.get('SELECT 42 AS v', (err, row) => {
        obs.push(['get', err, row])
        done()
      })
    })
    expect(r.sqlite3).toEqual(['cb', 'open', ['get', null, { v: 42 }]])
    expect(r.ours).toEqual(r.sqlite3)
  })
})

describe('close: db.close([callback])', () => {
  test('callback gets exactly (null) with this === db, then the close event fires', async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod, tmpFile('close'))
      db.on('close', (...args) => {
        obs.push(['close event', args.length, db.open])
        done()
      })
      const ret = db.close(function (...args) {
        obs.push(['cb', this === db, args.length, args[0], db.open])
      })
      obs.push(['returns db', ret === db])
    })
    expect(r.sqlite3).toEqual([['returns db', true], ['cb', true, 1, null, false], ['close event', 0, false]])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test("a second close delivers 'SQLITE_MISUSE: Database is closed' synchronously, before close() returns", async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      db.close((err) => {
        obs.push(['first', err])
        let returned = false
        db.close(function (err2) {
          obs.push(['second', errObs(err2), this === db, returned ? 'async' : 'sync'])
        })
        returned = true
        obs.push('returned')
        setTimeout(done, 50)
      })
    })
    expect(r.sqlite3).toEqual([
      ['first', null],
      ['second', { name: 'Error', message: 'SQLITE_MISUSE: Database is closed', errno: 21, code: 'SQLITE_MISUSE' }, true, 'sync'],
      'returned',
    ])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test('after close, calls without a callback and without an error listener throw synchronously (child process)', async () => {
    // Run in a plain Node process: inside jest's sandbox, EventEmitter (host realm) does not
    // recognise errors created in the sandbox realm as Errors and wraps them.
    const results = {}
    for (const [name, impl] of [['sqlite3', REAL_PATH], ['ours', ROOT]]) {
      const res = await runChild(`
        const s = require(${JSON.stringify(impl)});
        const thrown = (fn) => { try { fn() } catch (e) { return [e.constructor.name, e.message, e.errno, e.code] } return 'no throw' };
        const db = new s.Database(':memory:');
        db.close(() => {
          const out = [];
          out.push(['close', thrown(() => db.close())]);
          out.push(['exec', thrown(() => db.exec('SELECT 1'))]);
          out.push(['wait', thrown(() => db.wait())]);
          out.push(['configure', thrown(() => db.configure('busyTimeout', 10))]);
          out.push(['run', thrown(() => db.run('SELECT 1'))]);
          const seen = [];
          db.on('error', (e) => seen.push(e.message));
          out.push(['exec+listener', thrown(() => db.exec('SELECT 1')), seen.slice()]);
          console.log(JSON.stringify(out));
        });
      `)
      results[name] = { code: res.code, out: res.stdout.trim() && JSON.parse(res.stdout.trim()), err: res.stderr.split('\n')[0] }
    }
    const misuse = ['Error', 'SQLITE_MISUSE: Database is closed', 21, 'SQLITE_MISUSE']
    expect(results.sqlite3.out.filter(([m]) => m !== 'run')).toEqual([
      ['close', misuse], ['exec', misuse], ['wait', misuse], ['configure', misuse],
      ['exec+listener', 'no throw', ['SQLITE_MISUSE: Database is closed']],
    ])
    expect(results.ours).toEqual(results.sqlite3)
  }, 40000)

  test('close with an unfinalized prepared statement fails with SQLITE_BUSY, the db stays usable, and closes after finalize', async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod, tmpFile('busyclose'))
      const st = db.prepare('SELECT 7 AS x')
      openStatements.add(st)
      await new Promise((resolve) => db.wait(resolve))
      db.close(function (err) {
        obs.push(['close', errObs(err), this === db, db.open])
        st.get((err2, row) => {
          obs.push(['get', err2, row])
          db.get('SELECT 8 AS y', (err3, row3) => {
            obs.push(['db.get', err3, row3])
            st.finalize(() => {
              openStatements.delete(st)
              db.close((err4) => {
                obs.push(['close again', err4, db.open])
                done()
              })
            })
          })
        })
      })
    })
    expect(r.sqlite3).toEqual([
      ['close', {
        name: 'Error', message: 'SQLITE_BUSY: unable to close due to unfinalized statements or unfinished backups', errno: 5, code: 'SQLITE_BUSY',
      }, true, true],
      ['get', null, { x: 7 }],
      ['db.get', null, { y: 8 }],
      ['close again', null, false],
    ])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test("close with an unfinalized statement and no callback emits the SQLITE_BUSY error on the db", async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      const st = db.prepare('SELECT 1')
      openStatements.add(st)
      await new Promise((resolve) => db.wait(resolve))
      db.on('error', (e) => {
        obs.push(['error event', errObs(e), db.open])
        done()
      })
      db.close()
    })
    expect(r.sqlite3).toEqual([['error event', {
      name: 'Error', message: 'SQLITE_BUSY: unable to close due to unfinalized statements or unfinished backups', errno: 5, code: 'SQLITE_BUSY',
    }, true]])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test("calls issued in the same tick right after close() fail with 'SQLITE_MISUSE: Database handle is closed' (serialized)", async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      db.on('close', () => obs.push('close event'))
      db.serialize(() => {
        db.close((err) => obs.push(['close cb', err]))
        db.run('SELECT 1', (err) => obs.push(['run', errObs(err)]))
        db.get('SELECT 1', (err) => obs.push(['get', errObs(err)]))
        db.exec('SELECT 1', (err) => obs.push(['exec', errObs(err)]))
        db.wait((err) => obs.push(['wait', errObs(err)]))
      })
      setTimeout(done, 300)
    })
    const closedHandle = { name: 'Error', message: 'SQLITE_MISUSE: Database handle is closed', errno: 21, code: 'SQLITE_MISUSE' }
    expect(r.sqlite3).toEqual([
      ['close cb', null], 'close event',
      ['run', closedHandle], ['get', closedHandle], ['exec', closedHandle], ['wait', closedHandle],
    ])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test("calls without callbacks issued right after close() produce one 'Database handle is closed' error event (serialized)", async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      db.on('error', (e) => obs.push(['error event', errObs(e)]))
      db.serialize(() => {
        db.close()
        db.exec('SELECT 1')
        db.wait()
      })
      setTimeout(done, 300)
    })
    expect(r.sqlite3).toEqual([['error event', {
      name: 'Error', message: 'SQLITE_MISUSE: Database handle is closed', errno: 21, code: 'SQLITE_MISUSE',
    }]])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test('this package: calls right after close() fail with Database handle is closed even without serialize() (always serialized, docs/api.md#the-database)', async () => {
    const obs = await observe(ours, async (mod, obs, done) => {
      const db = await openDb(mod)
      db.close((err) => obs.push(['close cb', err]))
      db.get('SELECT 1', (err) => obs.push(['get', err && err.message]))
      setTimeout(done, 300)
    })
    expect(obs).toEqual([['close cb', null], ['get', 'SQLITE_MISUSE: Database handle is closed']])
  })

  test("close(notAFunction) throws TypeError 'Argument 0 must be a function'", async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      obs.push(thrown(() => db.close(123)), db.open)
      done()
    })
    expect(r.sqlite3).toEqual([
      { name: 'TypeError', message: 'Argument 0 must be a function', errno: undefined, code: undefined }, true,
    ])
    expect(r.ours).toEqual(r.sqlite3)
  })
})

describe('configure: db.configure(option, ...values)', () => {
  test("busyTimeout accepts a number and returns db; a string throws TypeError 'Value must be an integer'", async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      obs.push(db.configure('busyTimeout', 200) === db)
      obs.push(thrown(() => db.configure('busyTimeout', 'soon')))
      db.get('SELECT 1 AS ok', (err, row) => {
        obs.push([err, row])
        done()
      })
    })
    expect(r.sqlite3).toEqual([
      true,
      { name: 'TypeError', message: 'Value must be an integer', errno: undefined, code: undefined },
      [null, { ok: 1 }],
    ])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test("limit LIMIT_ATTACHED=0 makes ATTACH fail with 'too many attached databases - max 0'; 1 lets it pass", async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      db.configure('limit', mod.LIMIT_ATTACHED, 0)
      db.exec("ATTACH DATABASE ':memory:' AS a1", (err) => {
        obs.push(['attach at 0', errObs(err)])
        db.configure('limit', mod.LIMIT_ATTACHED, 1)
        db.exec("ATTACH DATABASE ':memory:' AS a1", (err2) => {
          obs.push(['attach at 1', err2])
          done()
        })
      })
    })
    expect(r.sqlite3).toEqual([
      ['attach at 0', { name: 'Error', message: 'SQLITE_ERROR: too many attached databases - max 0', errno: 1, code: 'SQLITE_ERROR' }],
      ['attach at 1', null],
    ])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test("argument errors: 'Expected 2arguments', 'Expected 3arguments', limit id/value types, unknown option text", async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      obs.push(thrown(() => db.configure('busyTimeout')))
      obs.push(thrown(() => db.configure()))
      obs.push(thrown(() => db.configure('limit', 1)))
      obs.push(thrown(() => db.configure('limit', 'x', 1)))
      obs.push(thrown(() => db.configure('limit', 1, 'y')))
      obs.push(thrown(() => db.configure('cacheSize', 10)))
      done()
    })
    const te = (message) => ({ name: 'TypeError', message, errno: undefined, code: undefined })
    expect(r.sqlite3).toEqual([
      te('Expected 2arguments'), te('Expected 2arguments'), te('Expected 3arguments'),
      te('limit id must be an integer'), te('limit value must be an integer'),
      te('cacheSize is not a valid configuration option'),
    ])
    expect(r.ours).toEqual(r.sqlite3)
  })
})

describe('events: trace, profile, change', () => {
  test("'trace' receives the SQL with bound parameters expanded", async () => {
    // trace events are asynchronous and not ordered relative to query callbacks; close flushes them
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      const traces = []
      let row
      // hook first: node-sqlite3 never runs a configure() queued in serialize mode behind pending work
      db.on('trace', (sql) => traces.push(sql))
      db.serialize()
      db.run('CREATE TABLE t (a, b)')
      db.run('INSERT INTO t VALUES (?, ?)', ["str'q", 3.5])
      db.get('SELECT a FROM t WHERE b = $b', { $b: 3.5 }, (err, r) => { row = [err, r] })
      db.close(() => {
        obs.push(['traces', traces], ['row', row])
        done()
      })
    })
    expect(r.sqlite3).toEqual([
      ['traces', ['CREATE TABLE t (a, b)', "INSERT INTO t VALUES ('str''q', 3.5)", 'SELECT a FROM t WHERE b = 3.5']],
      ['row', [null, { a: "str'q" }]],
    ])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test("'profile' receives (sql, milliseconds as a number) with the unexpanded SQL", async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      db.on('profile', (...args) => obs.push([args.length, args[0], typeof args[1], args[1] >= 0]))
      db.get('SELECT ? AS x', [5], () => {
        db.close(() => done())
      })
    })
    expect(r.sqlite3).toEqual([[2, 'SELECT ? AS x', 'number', true]])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test("'profile' reports each statement of an exec script with its text as written", async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      db.on('profile', (sql, ms) => obs.push([sql, typeof ms]))
      db.exec('CREATE TABLE foo (id int); SELECT * FROM foo;')
      db.close(() => done())
    })
    expect(r.sqlite3).toEqual([['CREATE TABLE foo (id int);', 'number'], ['SELECT * FROM foo;', 'number']])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test("'change' receives ('insert'|'update'|'delete', 'main', table, rowid)", async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      db.on('change', (...args) => obs.push(args))
      db.serialize()
      db.run('CREATE TABLE items (id INTEGER PRIMARY KEY, v)')
      db.run('INSERT INTO items (id, v) VALUES (5, 1)')
      db.run('INSERT INTO items (v) VALUES (2)')
      db.run('UPDATE items SET v = 10 WHERE id = 5')
      db.run('DELETE FROM items WHERE id = 6')
      db.close(() => done())
    })
    expect(r.sqlite3).toEqual([
      ['insert', 'main', 'items', 5],
      ['insert', 'main', 'items', 6],
      ['update', 'main', 'items', 5],
      ['delete', 'main', 'items', 6],
    ])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test("removeAllListeners('trace') really turns the hook off (a function planted in db._events.trace is never called)", async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      const traces = []
      db.serialize()
      db.on('trace', (sql) => traces.push(['on', sql]))
      db.run('SELECT 1')
      // node-sqlite3 delivers trace events asynchronously, with no order relative to callbacks:
      // wait until the first one has arrived before removing the listeners.
      const traced = new Promise((resolve) => {
        const started = Date.now()
        const poll = () => (traces.length || Date.now() - started > 3000 ? resolve() : setTimeout(poll, 5))
        poll()
      })
      db.wait(() => traced.then(() => {
        const ret = db.removeAllListeners('trace')
        db._events.trace = (sql) => traces.push(['planted', sql])
        db.run('SELECT 2')
        db.close(() => {
          obs.push(['returns db', ret === db], ['traces', traces])
          done()
        })
      }))
    })
    expect(r.sqlite3).toEqual([['returns db', true], ['traces', [['on', 'SELECT 1']]]])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test("two on('trace') listeners toggle the hook off (neither fires); a third turns it on again", async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      const traces = []
      db.serialize()
      db.on('trace', (sql) => traces.push(['first', sql]))
      db.on('trace', (sql) => traces.push(['second', sql]))
      db.run('SELECT 1')
      db.wait(() => {
        obs.push(['after two listeners', traces.slice()])
        db.on('trace', (sql) => traces.push(['third', sql]))
        db.run('SELECT 2')
        db.close(() => {
          obs.push(['after three listeners', traces.slice()])
          done()
        })
      })
    })
    expect(r.sqlite3).toEqual([
      ['after two listeners', []],
      ['after three listeners', [['first', 'SELECT 2'], ['second', 'SELECT 2'], ['third', 'SELECT 2']]],
    ])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test('each statement of an exec script is traced separately; all trace events arrive before the close callback', async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      db.on('trace', (sql) => obs.push(sql))
      db.exec('CREATE TABLE foo (id int); SELECT * FROM foo;')
      db.close(() => {
        obs.push('closed')
        done()
      })
    })
    expect(r.sqlite3).toEqual(['CREATE TABLE foo (id int);', 'SELECT * FROM foo;', 'closed'])
    expect(r.ours).toEqual(r.sqlite3)
  })
})

describe('wait, serialize, parallelize and chaining', () => {
  test('wait(cb) calls cb with exactly (null) and this === db after earlier work', async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      db.run('CREATE TABLE w (x)', () => obs.push('run done'))
      db.wait(function (...args) {
        obs.push(['wait', this === db, args.length, args[0]])
        done()
      })
    })
    expect(r.sqlite3).toEqual(['run done', ['wait', true, 1, null]])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test('serialize(cb) and parallelize(cb) call cb synchronously with this === db and no arguments', async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      let phase = 'before'
      const ret1 = db.serialize(function (...args) {
        obs.push(['serialize cb', phase, this === db, args.length])
      })
      obs.push('after serialize')
      const ret2 = db.parallelize(function (...args) {
        obs.push(['parallelize cb', phase, this === db, args.length])
      })
      phase = 'after'
      obs.push(['returns', ret1 === db, ret2 === db])
      obs.push(thrown(() => db.serialize(1)))
      done()
    })
    expect(r.sqlite3).toEqual([
      ['serialize cb', 'before', true, 0], 'after serialize', ['parallelize cb', 'before', true, 0],
      ['returns', true, true],
      { name: 'TypeError', message: 'Argument 0 must be a function', errno: undefined, code: undefined },
    ])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test('run/get/all/each/map/exec/wait/configure/serialize/parallelize/interrupt return the Database (chaining)', async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      const noop = () => {}
      obs.push(['run', db.run('SELECT 1', noop) === db])
      obs.push(['run no cb', db.run('SELECT 1') === db])
      obs.push(['get', db.get('SELECT 1', noop) === db])
      obs.push(['all', db.all('SELECT 1', noop) === db])
      obs.push(['each', db.each('SELECT 1', noop, noop) === db])
      obs.push(['map', db.map('SELECT 1 AS a, 2 AS b', noop) === db])
      obs.push(['exec', db.exec('SELECT 1', noop) === db])
      obs.push(['wait', db.wait(noop) === db])
      obs.push(['wait no cb', db.wait() === db])
      obs.push(['configure', db.configure('busyTimeout', 100) === db])
      obs.push(['serialize', db.serialize() === db])
      obs.push(['parallelize', db.parallelize() === db])
      obs.push(['interrupt', db.interrupt() === db])
      db.wait(() => done())
    })
    expect(r.sqlite3.every(([, ok]) => ok === true)).toBe(true)
    expect(r.ours).toEqual(r.sqlite3)
  })

  test('serialize(cb) restores the previous mode afterwards so serialized calls run in order', async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      db.serialize(() => {
        db.run('CREATE TABLE s (x)')
        db.run('INSERT INTO s VALUES (1)')
        db.run('INSERT INTO s VALUES (2)')
        db.all('SELECT x FROM s ORDER BY x', (err, rows) => {
          obs.push([err, rows])
          done()
        })
      })
    })
    expect(r.sqlite3).toEqual([[null, [{ x: 1 }, { x: 2 }]]])
    expect(r.ours).toEqual(r.sqlite3)
  })
})

describe('interrupt()', () => {
  test("before the database is open it throws Error 'Database is not open'", async () => {
    const r = await both((mod, obs, done) => {
      const db = track(new mod.Database(':memory:'))
      obs.push(thrown(() => db.interrupt()))
      db.once('open', () => done())
    })
    expect(r.sqlite3).toEqual([{ name: 'Error', message: 'Database is not open', errno: undefined, code: undefined }])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test("after close() has started it throws 'Database is closing'; after close finished 'Database is not open'", async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      db.close(() => {
        obs.push(['after close', thrown(() => db.interrupt())])
        done()
      })
      obs.push(['closing', thrown(() => db.interrupt())])
    })
    expect(r.sqlite3).toEqual([
      ['closing', { name: 'Error', message: 'Database is closing', errno: undefined, code: undefined }],
      ['after close', { name: 'Error', message: 'Database is not open', errno: undefined, code: undefined }],
    ])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test('interrupting a long-running query fails it with SQLITE_INTERRUPT errno 9 and the db stays usable', async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      const started = Date.now()
      db.get(LONG_QUERY, (err, row) => {
        obs.push(['query', errObs(err), row, Date.now() - started < 5000])
        db.get('SELECT 1 AS after', (err2, row2) => {
          obs.push(['after', err2, row2])
          done()
        })
      })
      setTimeout(() => {
        obs.push(['interrupt returns db', db.interrupt() === db])
      }, 50)
    }, 20000)
    expect(r.sqlite3).toEqual([
      ['interrupt returns db', true],
      ['query', { name: 'Error', message: 'SQLITE_INTERRUPT: interrupted', errno: 9, code: 'SQLITE_INTERRUPT' }, undefined, true],
      ['after', null, { after: 1 }],
    ])
    expect(r.ours).toEqual(r.sqlite3)
  }, 45000)
})

describe('errors without callbacks', () => {
  const childScript = (impl) => `
    const s = require(${JSON.stringify(impl)});
    process.on('uncaughtException', (e) => {
      console.log(JSON.stringify({ message: e.message, errno: e.errno, code: e.code, keys: Object.keys(e) }));
      process.exit(7);
    });
    const db = new s.Database(':memory:');
    db.run('bad sql');
    setTimeout(() => { console.log('no exception'); process.exit(0) }, 3000);
  `

  test('db.run(bad sql) without a callback raises an uncaught exception (observed in a child process)', async () => {
    const results = {}
    for (const [name, impl] of [['sqlite3', REAL_PATH], ['ours', ROOT]]) {
      const res = await runChild(childScript(impl))
      results[name] = { code: res.code, out: res.stdout.trim() }
    }
    expect(results.sqlite3).toEqual({
      code: 7,
      out: JSON.stringify({ message: 'SQLITE_ERROR: near "bad": syntax error', errno: 1, code: 'SQLITE_ERROR', keys: ['errno', 'code'] }),
    })
    expect(results.ours).toEqual(results.sqlite3)
  }, 40000)

  test('db.run(bad sql) without a callback and without a handler exits non-zero printing the error', async () => {
    const results = {}
    for (const [name, impl] of [['sqlite3', REAL_PATH], ['ours', ROOT]]) {
      const res = await runChild(`
        const s = require(${JSON.stringify(impl)});
        const db = new s.Database(':memory:');
        db.run('bad sql');
        setTimeout(() => { console.log('no exception'); process.exit(0) }, 3000);
      `)
      results[name] = {
        failed: res.code !== 0,
        printed: res.stderr.includes('SQLITE_ERROR: near "bad": syntax error'),
        noException: res.stdout.includes('no exception'),
      }
    }
    expect(results.sqlite3).toEqual({ failed: true, printed: true, noException: false })
    expect(results.ours).toEqual(results.sqlite3)
  }, 40000)

  test("exec error without a callback is emitted as 'error' on the Database", async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      db.on('error', function (err) {
        obs.push(['error event', this === db, errObs(err), Object.keys(err)])
        done()
      })
      db.exec('CREATE TABLE ok1 (x); SELECT * FROM nope; CREATE TABLE ok2 (x)')
    })
    expect(r.sqlite3).toEqual([['error event', true,
      { name: 'Error', message: 'SQLITE_ERROR: no such table: nope', errno: 1, code: 'SQLITE_ERROR' }, ['errno', 'code']]])
    expect(r.ours).toEqual(r.sqlite3)
  })

  test('an async error carries no stack frames without verbose (stack is just "Error: <message>")', async () => {
    const results = {}
    for (const [name, impl] of [['sqlite3', REAL_PATH], ['ours', ROOT]]) {
      const res = await runChild(`
        const s = require(${JSON.stringify(impl)});
        const db = new s.Database(':memory:');
        db.run('update non_existent_table set id=1', (err) => {
          console.log(JSON.stringify({
            stack: err.stack,
            hasLabel: err.stack.includes("Database#run('update non_existent_table set id=1'"),
            augmented: err.__augmented,
          }));
          db.close();
        });
      `)
      results[name] = { code: res.code, out: res.stdout.trim() }
    }
    expect(results.sqlite3).toEqual({
      code: 0,
      out: JSON.stringify({ stack: 'Error: SQLITE_ERROR: no such table: non_existent_table', hasLabel: false }),
    })
    expect(results.ours).toEqual(results.sqlite3)
  }, 40000)
})

describe('async context', () => {
  test('an AsyncLocalStorage store set around db.get(...) / db.run(...) is visible in its callback', async () => {
    const r = await both(async (mod, obs, done) => {
      const db = await openDb(mod)
      const als = new AsyncLocalStorage()
      let left = 2
      const finish = () => { if (--left === 0) done() }
      als.run({ id: 'outer-get' }, () => {
        db.get('SELECT 1 AS x', (err, row) => {
          obs.push(['get', als.getStore(), row])
          finish()
        })
      })
      als.run({ id: 'outer-run' }, () => {
        db.run('SELECT 1', () => {
          obs.push(['run', als.getStore()])
          finish()
        })
      })
    })
    const sorted = (o) => o.slice().sort((a, b) => String(a[0]).localeCompare(String(b[0])))
    expect(sorted(r.sqlite3)).toEqual([['get', { id: 'outer-get' }, { x: 1 }], ['run', { id: 'outer-run' }]])
    expect(sorted(r.ours)).toEqual(sorted(r.sqlite3))
  })

  test('this package: exec/wait/close callbacks also run in the async context of their call (docs/api.md#the-database)', async () => {
    // node-sqlite3 itself does not propagate the context to Database-level work (exec, wait).
    const obs = await observe(ours, async (mod, obs, done) => {
      const db = await openDb(mod)
      const als = new AsyncLocalStorage()
      als.run({ id: 'get' }, () => db.get('SELECT 1', () => obs.push(['get', als.getStore()])))
      als.run({ id: 'exec' }, () => db.exec('SELECT 1', () => obs.push(['exec', als.getStore()])))
      als.run({ id: 'wait' }, () => db.wait(() => obs.push(['wait', als.getStore()])))
      als.run({ id: 'close' }, () => db.close(() => {
        obs.push(['close', als.getStore()])
        done()
      }))
    })
    expect(obs).toEqual([['get', { id: 'get' }], ['exec', { id: 'exec' }], ['wait', { id: 'wait' }], ['close', { id: 'close' }]])
  })
})

describe('this package only: escape, create() and process lifetime', () => {
  test('escape() doubles every single quote, adds no surrounding quotes; sanitize is the same function; db.escape/db.sanitize agree', async () => {
    const input = "Robert'); DROP TABLE Students; --'"
    const expected = "Robert''); DROP TABLE Students; --''"
    expect(ours.escape(input)).toBe(expected)
    expect(ours.sanitize).toBe(ours.escape)
    expect(ours.escape("''")).toBe("''''")
    expect(ours.escape('no quotes')).toBe('no quotes')
    expect(ours.escape(12)).toBe('12')
    const db = track(await ours.create(':memory:'))
    expect(db.escape(input)).toBe(expected)
    expect(db.sanitize(input)).toBe(expected)
    // the escaped text really is a safe SQL literal
    const row = await new Promise((resolve, reject) =>
      db.get(`SELECT '${ours.escape(input)}' AS v`, (err, r) => (err ? reject(err) : resolve(r))))
    expect(row).toEqual({ v: input })
  })

  test.each([
    ['filename is a number', { filename: 123 }, /filename/],
    ['key is a number', { filename: ':memory:', key: 123 }, /key/],
    ['busyTimeout is -1', { filename: ':memory:', busyTimeout: -1 }, /busyTimeout/],
    ['serve and connect are both true', { filename: 'x.db', serve: true, connect: true }, /serve|connect/],
  ])('create() rejects with a TypeError naming the option when %s', async (_label, opts, pattern) => {
    const p = ours.create(opts)
    await expect(p).rejects.toThrow(TypeError)
    await expect(p).rejects.toThrow(pattern)
  })

  test('create() without options rejects with a TypeError', async () => {
    await expect(ours.create()).rejects.toThrow(TypeError)
    await expect(ours.create(null)).rejects.toThrow(TypeError)
  })

  test('create({ serve: true }) makes this process the master; a second serve in the same process shares it', async () => {
    const file = tmpFile('serve')
    const a = track(await ours.create({ filename: file, serve: true }))
    const b = track(await ours.create({ filename: file, serve: true }))
    expect(a.cluster).toEqual({ role: 'master', sock: expect.stringMatching(/\.cluster\/sock$/), masterPid: process.pid })
    expect(b.cluster).toEqual(a.cluster)
    await new Promise((resolve, reject) => a.run('CREATE TABLE t(x)', (e) => (e ? reject(e) : resolve())))
    const rows = await new Promise((resolve, reject) => b.all('SELECT name FROM sqlite_master', (e, r) => (e ? reject(e) : resolve(r))))
    expect(rows).toEqual([{ name: 't' }])
  })

  test("create('path') is create({ filename: 'path' })", async () => {
    const file = tmpFile('samecreate')
    const a = track(await ours.create(file))
    const b = track(await ours.create({ filename: file }))
    const shape = (db) => ({
      isDatabase: db instanceof ours.Database, filename: db.filename, mode: db.mode, open: db.open, cluster: db.cluster,
    })
    expect(shape(a)).toEqual(shape(b))
    expect(shape(a)).toMatchObject({ isDatabase: true, filename: file, mode: DEFAULT_MODE, open: true })
  })

  test('two create() of the same file share data immediately', async () => {
    const file = tmpFile('shared')
    const a = track(await ours.create(file))
    const b = track(await ours.create({ filename: file }))
    const run = (db, sql, ...p) => new Promise((resolve, reject) => db.run(sql, ...p, (err) => (err ? reject(err) : resolve())))
    const get = (db, sql) => new Promise((resolve, reject) => db.get(sql, (err, row) => (err ? reject(err) : resolve(row))))
    await run(a, 'CREATE TABLE shared (x)')
    await run(a, 'INSERT INTO shared VALUES (?)', 41)
    expect(await get(b, 'SELECT x FROM shared')).toEqual({ x: 41 })
    await run(b, 'UPDATE shared SET x = x + 1')
    expect(await get(a, 'SELECT x FROM shared')).toEqual({ x: 42 })
  })

  test("require('../standalone').create() opens the database in this process, even with serve: true", async () => {
    const standalone = require('../standalone')
    const file = tmpFile('standalone')
    const db = track(await standalone.create(file))
    expect(db).toBeInstanceOf(ours.Database)
    expect(db.cluster.role).toBe('standalone')
    const row = await new Promise((resolve, reject) => db.get('SELECT 3 AS x', (err, r) => (err ? reject(err) : resolve(r))))
    expect(row).toEqual({ x: 3 })
    const db2 = track(await standalone.create({ filename: tmpFile('standalone2'), serve: true }))
    expect(db2.cluster.role).toBe('standalone')
  })

  test('an idle Database does not keep the process alive', async () => {
    const res = await runChild(
      "require('.').create(':memory:').then(db => db.get('SELECT 1', () => { console.log('got') }))",
      { timeout: 10000 })
    expect({ code: res.code, signal: res.signal, out: res.stdout.trim() }).toEqual({ code: 0, signal: null, out: 'got' })
    expect(res.ms).toBeLessThan(5000)
  }, 20000)

  test('a pending request keeps the process alive until its callback has run', async () => {
    const res = await runChild(`
      const q = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT count(*) AS n FROM c';
      require('.').create(':memory:').then(db => {
        db.get(q, (err, row) => { console.log('callback', err && err.message, JSON.stringify(row)) });
      });
    `, { timeout: 30000 })
    expect({ code: res.code, out: res.stdout.trim() }).toEqual({ code: 0, out: 'callback null {"n":3000000}' })
  }, 40000)
})

// verbose() is process-global and irreversible (for node-sqlite3 it patches the prototypes of
// its native classes, which every later test file in the same jest worker would inherit), so
// both sides run it in a child process.
describe('verbose()', () => {
  test("with verbose(), err.stack of db.run's error names the call: Database#run('update non_existent_table set id=1'", async () => {
    const results = {}
    for (const [name, impl] of [['sqlite3', REAL_PATH], ['ours', ROOT]]) {
      const res = await runChild(`
        const s = require(${JSON.stringify(impl)});
        if (s.verbose() !== s) throw new Error('verbose() must return the module');
        const db = new s.Database(':memory:');
        db.run('update non_existent_table set id=1', (err) => {
          console.log(JSON.stringify([
            err.message,
            err.stack.includes("Database#run('update non_existent_table set id=1'"),
            err.stack.includes('--> in '),
            err.stack.includes('[eval]'),
            err.__augmented,
          ]));
          db.close();
        });
      `)
      results[name] = { code: res.code, out: res.stdout.trim() }
    }
    expect(results.sqlite3).toEqual({
      code: 0,
      out: JSON.stringify(['SQLITE_ERROR: no such table: non_existent_table', true, true, true, true]),
    })
    expect(results.ours).toEqual(results.sqlite3)
  }, 40000)

  test('without verbose (fresh child process) the stack does not contain the call label', async () => {
    const results = {}
    for (const [name, impl] of [['sqlite3', REAL_PATH], ['ours', ROOT]]) {
      const res = await runChild(`
        const s = require(${JSON.stringify(impl)});
        const db = new s.Database(':memory:');
        db.run('update non_existent_table set id=1', (err) => {
          console.log(JSON.stringify([err.message, err.stack.includes('update non_existent_table')]));
          db.close();
        });
      `)
      results[name] = { code: res.code, out: res.stdout.trim() }
    }
    expect(results.sqlite3).toEqual({ code: 0, out: JSON.stringify(['SQLITE_ERROR: no such table: non_existent_table', false]) })
    expect(results.ours).toEqual(results.sqlite3)
  }, 40000)
})
