'use strict'
// Online backup: `db.backup(...)` and the `Backup` class (docs/node-sqlite3.md#backup; node-sqlite3
// src/backup.cc), in standalone, master and cluster-client mode, and of encrypted databases.
//
// Where node-sqlite3 defines the behaviour, each scenario runs against the real `sqlite3` module
// and against this package (as a master and standalone), checks that the real module shows what
// docs/node-sqlite3.md#backup says (so the scenario is meaningful), and asserts that the observations are equal.

const crypto = require('crypto')
const fs = require('fs')
const os = require('os')
const path = require('path')
const { spawn } = require('child_process')

const real = require('sqlite3')
const ours = require(path.join(__dirname, '..'))
const { agent, killAll } = require('./backup/harness')

jest.setTimeout(30000)

const LOCKER = path.join(__dirname, 'backup', 'locker.js')
const ROWS = 3000
const FILL = `CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n REAL);
  WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${ROWS})
  INSERT INTO t(v, n) SELECT printf('row-%05d-%s', x, hex(x * 7919)), x / 7.0 FROM c`
const SQLITE_HEADER = 'SQLite format 3\0'
const SCENARIO_TIMEOUT = 8000

/** The implementations a side-by-side scenario runs on; `open(file)` resolves with an open Database. */
const IMPLS = {
  sqlite3: {
    mod: real,
    open: (file) => new Promise((resolve, reject) => {
      const db = new real.Database(file, (err) => (err ? reject(err) : resolve(db)))
      trackDb(db)
    }),
  },
  'ours (master)': {
    mod: ours,
    async open(file, options = {}) {
      const db = trackDb(await ours.create({ filename: file, serve: true, ...options }))
      if (db.cluster.role !== 'master') throw new Error(`expected a master, got ${db.cluster.role}`)
      return db
    },
  },
  'ours (standalone)': {
    mod: ours,
    async open(file, options = {}) {
      const db = trackDb(await ours.create({ filename: file, standalone: true, ...options }))
      if (db.cluster.role !== 'standalone') throw new Error(`expected standalone, got ${db.cluster.role}`)
      return db
    },
  },
}

let tmpRoot
let counter = 0
const openDbs = new Set()
const openBackups = new Set()
const lockers = new Set()

beforeAll(() => {
  tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-backup-'))
})

afterEach(async () => {
  for (const child of lockers) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  lockers.clear()
  await killAll()
  for (const b of openBackups) {
    // A failed backup is finished already (node-sqlite3 never calls back a finish() on one whose
    // open failed); the others are finished here.
    if (b.failed) continue
    await new Promise((resolve) => {
      const t = setTimeout(resolve, 1000)
      try {
        b.on('error', () => {})
        b.finish(() => { clearTimeout(t); resolve() })
      } catch {
        clearTimeout(t)
        resolve()
      }
    })
  }
  openBackups.clear()
  for (const db of openDbs) await closeQuietly(db)
  openDbs.clear()
})

afterAll(() => {
  if (tmpRoot) fs.rmSync(tmpRoot, { recursive: true, force: true })
})

// ---------------------------------------------------------------------------------------------
// helpers

/** A fresh private directory. */
function freshDir(label) {
  const dir = path.join(tmpRoot, `${label}-${++counter}`)
  fs.mkdirSync(dir, { recursive: true })
  return dir
}

function trackDb(db) {
  openDbs.add(db)
  return db
}

function trackBackup(b) {
  openBackups.add(b)
  return b
}

function closeQuietly(db) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 3000)
    const done = () => { clearTimeout(t); resolve() }
    try {
      if (db.open === false) return done()
      db.on('error', () => {})
      db.close(() => done())
    } catch {
      done()
    }
  })
}

/** `{ name, message, errno, code }` of an error (null/undefined as is). */
function errObs(e) {
  if (e === null || e === undefined) return e
  return { name: e.constructor && e.constructor.name, message: e.message, errno: e.errno, code: e.code }
}

/** The error `fn` throws, normalised, or 'no throw'. */
function thrown(fn) {
  try {
    fn()
  } catch (e) {
    return errObs(e)
  }
  return 'no throw'
}

/** The getters of a Backup. */
function snap(b) {
  return { idle: b.idle, completed: b.completed, failed: b.failed, remaining: b.remaining, pageCount: b.pageCount }
}

const call = (db, method, ...args) =>
  new Promise((resolve, reject) => db[method](...args, (err, result) => (err ? reject(err) : resolve(result))))

/** Rows of `t` as a digest, read through `db`. */
async function digestVia(db) {
  const rows = await call(db, 'all', 'SELECT id, v, n FROM t ORDER BY id')
  return { n: rows.length, digest: crypto.createHash('sha256').update(JSON.stringify(rows)).digest('hex') }
}

/**
 * What a database file holds, read with the real node-sqlite3 (so the file is a plain SQLite
 * file anyone can read): integrity check, row count and digest of `t`.
 */
async function contentOf(file, where = '') {
  const db = await new Promise((resolve, reject) => {
    const d = new real.Database(file, real.OPEN_READONLY, (err) => (err ? reject(err) : resolve(d)))
  })
  try {
    const integrity = (await call(db, 'get', 'PRAGMA integrity_check')).integrity_check
    const rows = await call(db, 'all', `SELECT id, v, n FROM t ${where} ORDER BY id`)
    return { integrity, n: rows.length, digest: crypto.createHash('sha256').update(JSON.stringify(rows)).digest('hex') }
  } finally {
    await new Promise((resolve) => db.close(resolve))
  }
}

/**
 * Runs `scenario(impl, dir, log)` for one implementation; resolves with `log` once the scenario
 * resolves, or with `log` + 'TIMEOUT' / the error it threw, so a hang or a throw shows as a diff.
 */
function observe(impl, scenario, ms = SCENARIO_TIMEOUT) {
  const log = []
  return new Promise((resolve) => {
    let finished = false
    const finish = (extra) => {
      if (finished) return
      finished = true
      clearTimeout(timer)
      if (extra !== undefined) log.push(extra)
      // let late events (which would be a difference too) land first
      setTimeout(() => resolve(log), 30)
    }
    const timer = setTimeout(() => finish('TIMEOUT'), ms)
    Promise.resolve()
      .then(() => scenario(impl, freshDir('scenario'), log))
      .then(() => finish(), (e) => finish({ scenarioThrew: errObs(e) }))
  })
}

/** Runs the scenario on each implementation in turn; resolves with `{ name: log }`. */
async function sideBySide(scenario, names = Object.keys(IMPLS)) {
  const out = {}
  for (const name of names) out[name] = await observe(IMPLS[name], scenario)
  return out
}

/** Expects every implementation's log to equal node-sqlite3's. */
function expectSameAsReal(out) {
  for (const name of Object.keys(out)) {
    if (name === 'sqlite3') continue
    expect({ [name]: out[name] }).toEqual({ [name]: out.sqlite3 })
  }
}

/** A process (real node-sqlite3) holding an EXCLUSIVE lock on `file` until `release()`. */
async function lockFile(file) {
  const child = spawn(process.execPath, [LOCKER, file], { stdio: ['pipe', 'pipe', 'inherit'] })
  lockers.add(child)
  let out = ''
  const waitFor = (word) => new Promise((resolve, reject) => {
    const check = () => {
      if (out.includes(word)) {
        child.stdout.off('data', onData)
        child.off('exit', onExit)
        resolve()
      }
    }
    const onData = (d) => { out += d; check() }
    const onExit = (code) => reject(new Error(`locker exited (${code}) before "${word}": ${out}`))
    child.stdout.on('data', onData)
    child.on('exit', onExit)
    check()
  })
  await waitFor('locked')
  return {
    release: async () => {
      const released = waitFor('released')
      child.stdin.write('release\n')
      await released
    },
  }
}

// ---------------------------------------------------------------------------------------------
// 1. side by side with node-sqlite3

describe('side by side with node-sqlite3', () => {
  test('step(5) until done, then finish: callbacks, `this`, getters at each point, the copy', async () => {
    const copies = {}
    const out = await sideBySide(async (impl, dir, log) => {
      const src = path.join(dir, 'src.db')
      const dst = path.join(dir, 'copy.db')
      const db = await impl.open(src)
      await call(db, 'exec', FILL)
      const source = await digestVia(db)
      let b
      await new Promise((resolve) => {
        b = trackBackup(db.backup(dst, function (err) {
          log.push({ at: 'init callback', args: arguments.length, err: errObs(err), self: this === b, ...snap(b) })
        }))
        log.push({ at: 'after backup()', instance: b instanceof impl.mod.Backup, retryErrors: b.retryErrors, ...snap(b) })
        let steps = 0
        const step = () => {
          let sync = true
          b.step(5, function (err, done) {
            log.push({ at: 'step callback', args: arguments.length, err: errObs(err), done, self: this === b, sync, ...snap(b) })
            if (err || done || ++steps > 200) {
              setImmediate(() => {
                log.push({ at: 'after the last step callback', ...snap(b) })
                resolve()
              })
            } else {
              step()
            }
          })
          sync = false
        }
        step()
        log.push({ at: 'after the first step()', ...snap(b) })
      })
      await new Promise((resolve) => {
        let sync = true
        b.finish(function () {
          log.push({ at: 'finish callback', args: arguments.length, self: this === b, sync, ...snap(b) })
          setImmediate(resolve)
        })
        sync = false
        log.push({ at: 'after finish()', ...snap(b) })
      })
      log.push({ at: 'after the finish callback', ...snap(b) })
      log.push({ at: 'close', err: errObs(await call(db, 'close').then(() => null, (e) => e)) })
      const copy = await contentOf(dst)
      copies[impl === IMPLS.sqlite3 ? 'sqlite3' : 'ours'] = copy
      log.push({ at: 'the copy', copyMatchesSource: copy.n === source.n && copy.digest === source.digest, integrity: copy.integrity, n: copy.n })
    })

    // node-sqlite3 shows what docs/node-sqlite3.md#backup says.
    const r = out.sqlite3
    const steps = r.filter((e) => e.at === 'step callback')
    expect(steps.length).toBeGreaterThan(3)
    expect(steps.every((s) => s.err === null && s.self && s.args === 2 && !s.sync && !s.idle)).toBe(true)
    expect(steps.map((s) => s.done)).toEqual([...steps.slice(1).map(() => false), true])
    expect(steps.map((s) => s.completed)).toEqual([...steps.slice(1).map(() => false), true])
    for (let i = 1; i < steps.length; i++) expect(steps[i].remaining).toBeLessThan(steps[i - 1].remaining)
    expect(steps[steps.length - 1].remaining).toBe(0)
    expect(new Set(steps.map((s) => s.pageCount)).size).toBe(1)
    expect(r.find((e) => e.at === 'after backup()')).toMatchObject({ instance: true, retryErrors: [real.BUSY, real.LOCKED], remaining: -1, pageCount: -1, idle: false })
    expect(r.find((e) => e.at === 'finish callback')).toMatchObject({ args: 0, self: true, completed: true, failed: false })
    expect(r[r.length - 1]).toEqual({ at: 'the copy', copyMatchesSource: true, integrity: 'ok', n: ROWS })

    expectSameAsReal(out)
    // Same data, same copy.
    expect(copies.ours).toEqual(copies.sqlite3)
  })

  test('the Backup\'s own read-only properties filename, sourceName, destName, filenameIsDest', async () => {
    const out = await sideBySide(async (impl, dir, log) => {
      const db = await impl.open(path.join(dir, 'src.db'))
      await call(db, 'exec', 'CREATE TABLE t(x)')
      const dst = path.join(dir, 'copy.db')
      const b = trackBackup(db.backup(dst))
      for (const name of ['filename', 'sourceName', 'destName', 'filenameIsDest']) {
        const d = Object.getOwnPropertyDescriptor(b, name)
        log.push({ name, own: d !== undefined, value: name === 'filename' ? d && d.value === dst : d && d.value, writable: d && d.writable, enumerable: d && d.enumerable, configurable: d && d.configurable })
      }
      // Assigning does not change them (sloppy-mode assignment is ignored, strict mode throws).
      log.push({ assign: thrown(() => { b.filename = 'other' }).name, still: b.filename === dst })
      log.push({ keys: Object.keys(b) })
      await new Promise((resolve) => b.finish(resolve))
    })
    expect(out.sqlite3.slice(0, 4).every((p) => p.own && p.value !== undefined && p.writable === false)).toBe(true)
    expectSameAsReal(out)
  })

  test('calls after finish fail with `SQLITE_MISUSE: Backup is already finished` (callback, else \'error\')', async () => {
    const out = await sideBySide(async (impl, dir, log) => {
      const db = await impl.open(path.join(dir, 'src.db'))
      await call(db, 'exec', FILL)
      const b = trackBackup(db.backup(path.join(dir, 'copy.db')))
      await new Promise((resolve) => b.step(-1, (err, done) => { log.push({ at: 'step(-1)', err: errObs(err), done }); resolve() }))
      await new Promise((resolve) => b.finish(resolve))
      log.push({ at: 'finished', ...snap(b) })

      const misuse = (label, invoke) => new Promise((resolve) => {
        let sync = true
        invoke(function (err) {
          log.push({ at: label, args: arguments.length, err: errObs(err), self: this === b, sync })
          resolve()
        })
        sync = false
        setTimeout(resolve, 500) // a callback that never comes shows as a missing entry
      })
      await misuse('step after finish', (cb) => log.push({ returns: b.step(1, cb) === b }))
      await misuse('finish after finish', (cb) => log.push({ returns: b.finish(cb) === b }))
      // Without a callback the error is emitted on the Backup.
      b.on('error', function (err) { log.push({ at: 'error event', err: errObs(err), self: this === b }) })
      b.step(1)
      b.finish()
      await new Promise((resolve) => setTimeout(resolve, 50))
      log.push({ at: 'end', ...snap(b) })
    })
    const r = out.sqlite3
    const misuse = { name: 'Error', message: 'SQLITE_MISUSE: Backup is already finished', errno: real.MISUSE, code: 'SQLITE_MISUSE' }
    expect(r.find((e) => e.at === 'step after finish')).toMatchObject({ err: misuse, self: true })
    expect(r.find((e) => e.at === 'finish after finish')).toMatchObject({ err: misuse, self: true })
    expect(r.filter((e) => e.at === 'error event')).toEqual([{ at: 'error event', err: misuse, self: true }, { at: 'error event', err: misuse, self: true }])
    expectSameAsReal(out)
  })

  test('close() with a live backup fails with SQLITE_BUSY and the db stays usable; after finish it closes', async () => {
    const out = await sideBySide(async (impl, dir, log) => {
      const db = await impl.open(path.join(dir, 'src.db'))
      await call(db, 'exec', FILL)
      const b = trackBackup(db.backup(path.join(dir, 'copy.db')))
      await new Promise((resolve) => b.step(1, (err, done) => { log.push({ at: 'step(1)', err: errObs(err), done, ...snap(b) }); resolve() }))
      await new Promise((resolve) => db.close(function (err) {
        log.push({ at: 'close with a live backup', err: errObs(err), self: this === db, open: db.open })
        resolve()
      }))
      log.push({ at: 'query after the failed close', row: await call(db, 'get', 'SELECT count(*) AS n FROM t').catch(errObs) })
      await new Promise((resolve) => b.finish(function () { log.push({ at: 'finish', args: arguments.length, ...snap(b) }); resolve() }))
      await new Promise((resolve) => db.close(function (err) { log.push({ at: 'close after finish', err: errObs(err), open: db.open }); resolve() }))

      // A backup that completed (DONE) but is not finished yet does not hold the database.
      const db2 = await impl.open(path.join(dir, 'src2.db'))
      await call(db2, 'exec', FILL)
      const b2 = trackBackup(db2.backup(path.join(dir, 'copy2.db')))
      await new Promise((resolve) => b2.step(-1, (err, done) => { log.push({ at: 'step(-1)', err: errObs(err), done }); resolve() }))
      await new Promise((resolve) => db2.close((err) => { log.push({ at: 'close with a completed, unfinished backup', err: errObs(err) }); resolve() }))
      await new Promise((resolve) => {
        b2.finish(function () { log.push({ at: 'finish after close', args: arguments.length, ...snap(b2) }); resolve() })
        setTimeout(resolve, 1000)
      })
    })
    const r = out.sqlite3
    expect(r.find((e) => e.at === 'close with a live backup')).toEqual({
      at: 'close with a live backup',
      err: { name: 'Error', message: 'SQLITE_BUSY: unable to close due to unfinalized statements or unfinished backups', errno: real.BUSY, code: 'SQLITE_BUSY' },
      self: true,
      open: true,
    })
    expect(r.find((e) => e.at === 'query after the failed close').row).toEqual({ n: ROWS })
    expect(r.find((e) => e.at === 'finish')).toMatchObject({ completed: false, failed: true })
    expect(r.find((e) => e.at === 'close after finish')).toEqual({ at: 'close after finish', err: null, open: false })
    expectSameAsReal(out)
  })

  test('constructor and argument TypeErrors; nothing is created', async () => {
    // node-sqlite3 defines these (src/backup.cc) but crashes (SIGSEGV) on most of them: its
    // ObjectWrap destructor runs on the half-built Backup. Each case runs against it in a child
    // process of its own: where it throws, ours must throw the same; where it crashes, ours must
    // throw what backup.cc throws.
    const dir = freshDir('typeerrors')
    const f = path.join(dir, 'never.db')
    const cases = {
      'new Backup()': ['new Backup()', 'Database object expected'],
      'new Backup({})': ['new Backup({})', 'Database object expected'],
      'new Backup(<the other module\'s Database>, …)': ['new Backup(foreign, f, "main", "main", true)', 'Database object expected'],
      'new Backup(db)': ['new Backup(db)', 'Filename expected'],
      'new Backup(db, 1, …)': ['new Backup(db, 1, "main", "main", true)', 'Filename expected'],
      'new Backup(db, f)': ['new Backup(db, f)', 'Source database name expected'],
      'new Backup(db, f, 1, …)': ['new Backup(db, f, 1, "main", true)', 'Source database name expected'],
      'new Backup(db, f, "main")': ['new Backup(db, f, "main")', 'Destination database name expected'],
      'new Backup(db, f, "main", null, true)': ['new Backup(db, f, "main", null, true)', 'Destination database name expected'],
      'new Backup(db, f, "main", "main")': ['new Backup(db, f, "main", "main")', 'Direction flag expected'],
      'new Backup(db, f, "main", "main", "true")': ['new Backup(db, f, "main", "main", "true")', 'Direction flag expected'],
      'new Backup(db, f, "main", "main", 1)': ['new Backup(db, f, "main", "main", 1)', 'Direction flag expected'],
      'new Backup(db, f, "main", "main", true, 5)': ['new Backup(db, f, "main", "main", true, 5)', 'Callback expected'],
      'new Backup(db, f, "main", "main", true, {})': ['new Backup(db, f, "main", "main", true, {})', 'Callback expected'],
      'db.backup()': ['db.backup()', 'Filename expected'],
      'db.backup(42)': ['db.backup(42)', 'Filename expected'],
      'db.backup(f, "not a function")': ['db.backup(f, "not a function")', 'Callback expected'],
      'db.backup(f, "main", "main")': ['db.backup(f, "main", "main")', 'Direction flag expected'],
      'db.backup(f, "main", "main", "yes")': ['db.backup(f, "main", "main", "yes")', 'Direction flag expected'],
      'db.backup(f, "main", "main", true, 7)': ['db.backup(f, "main", "main", true, 7)', 'Callback expected'],
      'Backup(db, …) without new': ['Backup(db, f, "main", "main", true)', null],
    }
    const probe = (code) => new Promise((resolve) => {
      const script = `
        const real = require('sqlite3')
        const ours = require(${JSON.stringify(path.join(__dirname, '..'))})
        const db = new real.Database(':memory:')
        const foreign = new ours.Database(':memory:')
        const { Backup } = real
        const f = ${JSON.stringify(f)}
        try { ${code}; console.log(JSON.stringify('no throw')) } catch (e) {
          console.log(JSON.stringify({ name: e.constructor.name, message: e.message }))
        }
        process.exit(0)`
      const child = spawn(process.execPath, ['-e', script], { cwd: path.join(__dirname, '..'), stdio: ['ignore', 'pipe', 'ignore'] })
      let out = ''
      child.stdout.on('data', (d) => (out += d))
      child.on('exit', (code, signal) => resolve(signal ? `crashed (${signal})` : JSON.parse(out.trim() || '"no output"')))
    })
    const realOut = Object.fromEntries(await Promise.all(Object.entries(cases).map(async ([label, [code]]) => [label, await probe(code)])))
    // The probe is meaningful: node-sqlite3 either throws or crashes, never goes on.
    for (const got of Object.values(realOut)) expect(typeof got === 'object' || String(got).startsWith('crashed')).toBe(true)

    const db = await IMPLS['ours (standalone)'].open(path.join(dir, 'src.db'))
    const foreign = await IMPLS.sqlite3.open(path.join(dir, 'foreign.db'))
    const { Backup } = ours
    const ourOut = {}
    const expected = {}
    for (const [label, [code, message]] of Object.entries(cases)) {
      // eslint-disable-next-line no-new-func -- the snippet the probe above ran against node-sqlite3
      const fn = new Function('Backup', 'db', 'foreign', 'f', code)
      const e = thrown(() => fn(Backup, db, foreign, f))
      ourOut[label] = e === 'no throw' ? e : { name: e.name, message: e.message }
      expected[label] = typeof realOut[label] === 'object' ? realOut[label] : { name: 'TypeError', message }
    }
    expect(ourOut).toEqual(expected)

    const b = trackBackup(db.backup(path.join(dir, 'copy.db')))
    const methodCases = {
      'step()': () => b.step(),
      'step("1")': () => b.step('1'),
      'step(1.5)': () => b.step(1.5),
      'step(1, 5)': () => b.step(1, 5),
      'finish(5)': () => b.finish(5),
    }
    const methodsOurs = {}
    for (const [label, fn] of Object.entries(methodCases)) methodsOurs[label] = thrown(fn)
    await new Promise((resolve) => b.finish(resolve))
    // node-sqlite3 throws these without crashing: compare in this process.
    const rdb = await IMPLS.sqlite3.open(path.join(dir, 'src-real.db'))
    const rb = trackBackup(rdb.backup(path.join(dir, 'copy-real.db')))
    const rbCases = {
      'step()': () => rb.step(),
      'step("1")': () => rb.step('1'),
      'step(1.5)': () => rb.step(1.5),
      'step(1, 5)': () => rb.step(1, 5),
      'finish(5)': () => rb.finish(5),
    }
    const methodsReal = {}
    for (const [label, fn] of Object.entries(rbCases)) methodsReal[label] = thrown(fn)
    await new Promise((resolve) => rb.finish(resolve))
    expect(methodsReal['step()']).toMatchObject({ name: 'TypeError', message: 'Argument 0 must be an integer' })
    expect(methodsOurs).toEqual(methodsReal)
    expect(fs.existsSync(f)).toBe(false)
  })

  test('the 5-argument form with filenameIsDest = false restores a file INTO the database (main and an attached schema)', async () => {
    const seedDir = freshDir('seed')
    const seed = path.join(seedDir, 'seed.db')
    const s = await IMPLS.sqlite3.open(seed)
    await call(s, 'exec', FILL + "; CREATE TABLE seed(x); INSERT INTO seed VALUES ('restored')")
    await call(s, 'close')
    const seedBefore = fs.readFileSync(seed)

    const out = await sideBySide(async (impl, dir, log) => {
      const db = await impl.open(path.join(dir, 'live.db'))
      await call(db, 'exec', "CREATE TABLE old(y); INSERT INTO old VALUES ('overwritten'); ATTACH ':memory:' AS aux; CREATE TABLE aux.z(q)")
      let b
      await new Promise((resolve) => {
        b = trackBackup(db.backup(seed, 'main', 'main', false, function (err) {
          log.push({ at: 'init callback', err: errObs(err), self: this === b })
          resolve()
        }))
      })
      log.push({ props: [b.filename === seed, b.sourceName, b.destName, b.filenameIsDest], retryErrors: b.retryErrors })
      await new Promise((resolve) => b.step(-1, (err, done) => { log.push({ at: 'step(-1)', err: errObs(err), done, ...snap(b) }); resolve() }))
      await new Promise((resolve) => b.finish(resolve))
      log.push({ at: 'main after restore', tables: await call(db, 'all', "SELECT name FROM main.sqlite_master WHERE type = 'table' ORDER BY name") })
      log.push({ at: 'seed rows', rows: await call(db, 'all', 'SELECT x FROM seed') })
      log.push({ at: 't', ...(await digestVia(db)) })

      // sourceName is the file's schema, destName the database's: restore into `aux`.
      const b2 = trackBackup(db.backup(seed, 'main', 'aux', false))
      await new Promise((resolve) => b2.step(-1, (err, done) => { log.push({ at: 'step(-1) into aux', err: errObs(err), done }); resolve() }))
      await new Promise((resolve) => b2.finish(resolve))
      log.push({ at: 'aux after restore', tables: await call(db, 'all', "SELECT name FROM aux.sqlite_master WHERE type = 'table' ORDER BY name") })
      log.push({ at: 'main still', tables: await call(db, 'all', "SELECT name FROM main.sqlite_master WHERE type = 'table' ORDER BY name") })
      await call(db, 'close')
      log.push({ seedUnchanged: fs.readFileSync(seed).equals(seedBefore) })
    })
    const r = out.sqlite3
    expect(r.find((e) => e.at === 'main after restore').tables).toEqual([{ name: 'seed' }, { name: 't' }])
    expect(r.find((e) => e.at === 'seed rows').rows).toEqual([{ x: 'restored' }])
    expect(r.find((e) => e.at === 'aux after restore').tables).toEqual([{ name: 'seed' }, { name: 't' }])
    expect(r[r.length - 1]).toEqual({ seedUnchanged: true })
    expectSameAsReal(out)
  })

  test('a backup whose file cannot be opened: the error, then queued calls are dropped', async () => {
    const out = await sideBySide(async (impl, dir, log) => {
      const db = await impl.open(path.join(dir, 'src.db'))
      const missing = path.join(dir, 'no-such-dir', 'copy.db')
      let b
      await new Promise((resolve) => {
        b = trackBackup(db.backup(missing, function (err) {
          log.push({ at: 'init callback', err: errObs(err), self: this === b, ...snap(b) })
          setImmediate(resolve)
        }))
      })
      log.push({ at: 'after the init callback', ...snap(b) })
      b.step(1, (err) => log.push({ at: 'step callback', err: errObs(err) }))
      b.finish(() => log.push({ at: 'finish callback' }))
      await new Promise((resolve) => setTimeout(resolve, 200))
      // Without a callback the open error is emitted on the Backup.
      await new Promise((resolve) => {
        const b2 = trackBackup(db.backup(missing))
        b2.on('error', function (err) { log.push({ at: 'error event', err: errObs(err), self: this === b2 }); resolve() })
        setTimeout(resolve, 1000)
      })
      log.push({ at: 'close', err: errObs(await call(db, 'close').then(() => null, (e) => e)) })
    })
    expect(out.sqlite3[0]).toMatchObject({ at: 'init callback', err: { code: 'SQLITE_CANTOPEN' }, self: true })
    expectSameAsReal(out)
  })
})

// ---------------------------------------------------------------------------------------------
// 4. retryErrors

describe('retryErrors', () => {
  test('defaults to [BUSY, LOCKED]; a non-array throws `retryErrors must be an array` and changes nothing', async () => {
    const out = await sideBySide(async (impl, dir, log) => {
      const db = await impl.open(path.join(dir, 'src.db'))
      const b = trackBackup(db.backup(path.join(dir, 'copy.db')))
      log.push({ default: b.retryErrors })
      for (const [label, value] of [['5', 5], ['"5,6"', '5,6'], ['null', null], ['undefined', undefined], ['{ length: 1, 0: 5 }', { length: 1, 0: 5 }], ['new Set([5])', new Set([5])]]) {
        log.push({ [label]: thrown(() => { b.retryErrors = value }), after: b.retryErrors })
      }
      const mine = [impl.mod.LOCKED]
      log.push({ setArray: thrown(() => { b.retryErrors = mine }), same: b.retryErrors === mine })
      log.push({ setEmpty: thrown(() => { b.retryErrors = [] }), after: b.retryErrors })
      await new Promise((resolve) => b.finish(resolve))
    })
    expect(out.sqlite3[0]).toEqual({ default: [real.BUSY, real.LOCKED] })
    expect(out.sqlite3[1]).toEqual({ 5: { name: 'Error', message: 'retryErrors must be an array', errno: undefined, code: undefined }, after: [real.BUSY, real.LOCKED] })
    expectSameAsReal(out)
  })

  test('a destination locked by another process: BUSY is retried by default and with [], ends the backup with [LOCKED]', async () => {
    const variants = [['default', undefined], ['[]', []], ['[LOCKED]', [real.LOCKED]]]
    // A short busy timeout keeps this package's waits short; node-sqlite3's backup connection has none.
    const impls = {
      sqlite3: IMPLS.sqlite3,
      'ours (master)': { mod: ours, open: (f) => IMPLS['ours (master)'].open(f, { busyTimeout: 100 }) },
      'ours (standalone)': { mod: ours, open: (f) => IMPLS['ours (standalone)'].open(f, { busyTimeout: 100 }) },
    }
    const out = {}
    for (const [name, impl] of Object.entries(impls)) {
      out[name] = await observe(impl, async (impl, dir, log) => {
        const db = await impl.open(path.join(dir, 'src.db'))
        await call(db, 'exec', FILL)
        for (const [label, retry] of variants) {
          const dst = path.join(dir, `copy-${label}.db`)
          const lock = await lockFile(dst)
          const b = trackBackup(db.backup(dst))
          if (retry !== undefined) b.retryErrors = retry
          await new Promise((resolve) => b.step(-1, (err, done) => { log.push({ label, at: 'step while locked', err: errObs(err), done, ...snap(b) }); resolve() }))
          await lock.release()
          await new Promise((resolve) => b.step(-1, (err, done) => { log.push({ label, at: 'step after release', err: errObs(err), done, ...snap(b) }); resolve() }))
          await new Promise((resolve) => b.finish(() => { log.push({ label, at: 'finish', ...snap(b) }); resolve() }))
          if (b.completed) log.push({ label, copy: (await contentOf(dst)).n })
        }
      }, 20000)
    }
    const r = out.sqlite3
    const busy = { name: 'Error', message: 'SQLITE_BUSY: database is locked', errno: real.BUSY, code: 'SQLITE_BUSY' }
    expect(r.filter((e) => e.at === 'step while locked').map((e) => [e.label, e.err, e.failed])).toEqual([
      ['default', busy, false], ['[]', busy, false], ['[LOCKED]', busy, true],
    ])
    expect(r.filter((e) => e.at === 'finish').map((e) => [e.label, e.completed, e.failed])).toEqual([
      ['default', true, false], ['[]', true, false], ['[LOCKED]', false, true],
    ])
    expectSameAsReal(out)
  })
})

// ---------------------------------------------------------------------------------------------
// 2. cluster client: the master runs the client's backup

/** A master process (cwd `master/`) holding `data/app.db` with ROWS rows, and client processes. */
async function clusterSetup(label) {
  const root = freshDir(label)
  const dirs = {}
  for (const name of ['master', 'client', 'other', 'data']) {
    dirs[name] = path.join(root, name)
    fs.mkdirSync(dirs[name])
  }
  const file = path.join(dirs.data, 'app.db')
  const master = agent(dirs.master)
  const m = await master.call('open', { filename: file, serve: true })
  expect(m.cluster.role).toBe('master')
  await master.call('exec', FILL)
  const client = agent(dirs.client)
  const other = agent(dirs.other)
  for (const c of [client, other]) {
    const info = await c.call('open', { filename: file, connect: true })
    expect(info.cluster).toMatchObject({ role: 'client', masterPid: master.pid })
  }
  return { root, dirs, file, master, client, other }
}

describe('cluster client', () => {
  test('a client backs up step by step to a path relative to ITS cwd; the master serves others meanwhile', async () => {
    const { dirs, master, client, other } = await clusterSetup('client')
    fs.mkdirSync(path.join(dirs.client, 'out'))
    const before = await master.call('all', 'SELECT id, v, n FROM t ORDER BY id')
    const digest = crypto.createHash('sha256').update(JSON.stringify(before)).digest('hex')

    const init = await client.call('backupStart', path.join('out', 'copy.db'))
    expect(init).toEqual({ self: true, filename: path.join('out', 'copy.db'), idle: true, completed: false, failed: false, remaining: -1, pageCount: -1 })

    const steps = []
    let inserted = 0
    for (let i = 0; i < 200; i++) {
      const s = await client.call('backupStep', 5)
      steps.push(s)
      if (s.err || s.done) break
      // Between two steps of the backup, the master serves another client and itself.
      const ins = await other.call('run', 'INSERT INTO t(v, n) VALUES (?, ?)', [`during-${i}`, i])
      expect(ins.changes).toBe(1)
      inserted++
      expect((await other.call('get', 'SELECT count(*) AS c FROM t')).c).toBe(ROWS + inserted)
      expect((await master.call('get', 'SELECT v FROM t WHERE id = 1')).v).toBe(before[0].v)
    }
    expect(steps.length).toBeGreaterThan(2)
    expect(inserted).toBe(steps.length - 1)
    for (const s of steps) expect(s).toMatchObject({ err: null, self: true, idle: false, failed: false })
    expect(steps.map((s) => s.done)).toEqual([...steps.slice(1).map(() => false), true])
    expect(steps[steps.length - 1]).toMatchObject({ completed: true, remaining: 0 })
    for (let i = 1; i < steps.length; i++) expect(steps[i].remaining).toBeLessThan(steps[i - 1].remaining)
    expect(steps.every((s) => s.pageCount > 0)).toBe(true)

    expect(await client.call('backupFinish')).toMatchObject({ args: 0, self: true, completed: true, failed: false })

    // The copy is where the client meant it, not in the master's cwd (nor anywhere else).
    const copy = path.join(dirs.client, 'out', 'copy.db')
    expect(fs.existsSync(copy)).toBe(true)
    expect(fs.readdirSync(dirs.master)).toEqual([])
    expect(fs.readdirSync(dirs.other)).toEqual([])
    expect(fs.readdirSync(path.join(dirs.client, 'out'))).toEqual(['copy.db'])
    // It holds the data: every original row, intact (rows inserted during the backup through the
    // same connection may be in it too).
    const content = await contentOf(copy, `WHERE id <= ${ROWS}`)
    expect(content).toEqual({ integrity: 'ok', n: ROWS, digest })
    const all = await contentOf(copy)
    expect(all.n).toBeGreaterThanOrEqual(ROWS)
    expect(all.n).toBeLessThanOrEqual(ROWS + inserted)

    // The master still serves everyone after the backup.
    await other.call('run', "INSERT INTO t(v) VALUES ('after')")
    expect((await client.call('get', 'SELECT count(*) AS c FROM t')).c).toBe(ROWS + inserted + 1)
  })

  test('a client\'s close() with a live backup fails with SQLITE_BUSY; a killed client\'s backup does not hold the master', async () => {
    const { master, client, other } = await clusterSetup('client-close')
    await client.call('backupStart', 'copy.db')
    expect(await client.call('backupStep', 1)).toMatchObject({ err: null, done: false })
    await expect(client.call('close')).rejects.toMatchObject({
      message: 'SQLITE_BUSY: unable to close due to unfinalized statements or unfinished backups',
      code: 'SQLITE_BUSY',
    })
    expect((await client.call('get', 'SELECT count(*) AS c FROM t')).c).toBe(ROWS)
    expect(await client.call('backupFinish')).toMatchObject({ completed: false, failed: true })
    await expect(client.call('close')).resolves.toBe(null)

    // A client killed in the middle of a backup: the master drops it and can still close.
    await other.call('backupStart', 'copy.db')
    expect(await other.call('backupStep', 1)).toMatchObject({ err: null, done: false })
    other.child.kill('SIGKILL')
    await other.exited
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect((await master.call('run', "INSERT INTO t(v) VALUES ('x')")).changes).toBe(1)
    await expect(master.call('close')).resolves.toBe(null)
  })

  test('a client\'s step waiting on a locked destination does not stall the master\'s other clients', async () => {
    const { dirs, client, other } = await clusterSetup('client-locked')
    const dst = path.join(dirs.client, 'copy.db')
    const lock = await lockFile(dst)
    await client.call('backupStart', 'copy.db')
    const stepping = client.call('backupStep', -1)
    await new Promise((resolve) => setTimeout(resolve, 100))
    // node-sqlite3's backup connection has no busy handler (sqlite3_open): a locked destination
    // is SQLITE_BUSY at once. However the step waits, the master must keep serving others.
    const t0 = Date.now()
    expect((await other.call('get', 'SELECT count(*) AS c FROM t')).c).toBe(ROWS)
    const waited = Date.now() - t0
    const locked = await stepping
    await lock.release()
    expect(locked).toMatchObject({ err: { code: 'SQLITE_BUSY' }, failed: false, completed: false })
    expect(await client.call('backupStep', -1)).toMatchObject({ err: null, done: true, completed: true })
    await client.call('backupFinish')
    expect((await contentOf(dst)).n).toBe(ROWS)
    expect(waited).toBeLessThan(1000)
  })
})

// ---------------------------------------------------------------------------------------------
// 3. encrypted databases

/** The first 16 bytes of a file as latin1 text. */
const header = (file) => fs.readFileSync(file).subarray(0, 16).toString('latin1')

/** Backs `db` up into `dst` in one step. */
async function backupAll(db, dst) {
  const b = trackBackup(db.backup(dst))
  const step = await new Promise((resolve) => b.step(-1, (err, done) => resolve({ err: errObs(err), done })))
  await new Promise((resolve) => b.finish(resolve))
  return { ...step, completed: b.completed, failed: b.failed }
}

/** What opening `file` with `key` (or none) and reading `secrets` gives. */
async function readWith(file, key) {
  try {
    const db = trackDb(await ours.create({ filename: file, standalone: true, ...(key === undefined ? {} : { key }) }))
    return await call(db, 'all', 'SELECT v FROM secrets')
  } catch (e) {
    return { code: e.code }
  }
}

describe('encrypted', () => {
  test('a database created with create({ key }) is backed up encrypted with the same key', async () => {
    const dir = freshDir('cipher')
    const file = path.join(dir, 'enc.db')
    const copy = path.join(dir, 'copy.db')
    const db = trackDb(await ours.create({ filename: file, key: 'k' }))
    await call(db, 'exec', "CREATE TABLE secrets(v TEXT); INSERT INTO secrets VALUES ('the plans')")
    expect(header(file)).not.toBe(SQLITE_HEADER)

    expect(await backupAll(db, copy)).toEqual({ err: null, done: true, completed: true, failed: false })
    expect(header(copy)).not.toBe(SQLITE_HEADER)
    expect(fs.readFileSync(copy).includes(Buffer.from('the plans'))).toBe(false)
    expect(await readWith(copy, 'k')).toEqual([{ v: 'the plans' }])
    expect(await readWith(copy)).toEqual({ code: 'SQLITE_NOTADB' })
    expect(await readWith(copy, 'another key')).toEqual({ code: 'SQLITE_NOTADB' })
    // node-sqlite3 (no SQLCipher) cannot read it either.
    const plain = await new Promise((resolve, reject) => {
      const d = new real.Database(copy, real.OPEN_READONLY, (err) => (err ? reject(err) : resolve(d)))
    })
    const err = await call(plain, 'all', 'SELECT v FROM secrets').catch((e) => e)
    await new Promise((resolve) => plain.close(resolve))
    expect(err).toMatchObject({ code: 'SQLITE_NOTADB' })

    // The encrypted copy restores into another database keyed alike (filenameIsDest = false).
    const restored = trackDb(await ours.create({ filename: path.join(dir, 'restored.db'), key: 'k', standalone: true }))
    const b = trackBackup(restored.backup(copy, 'main', 'main', false))
    expect(await new Promise((resolve) => b.step(-1, (e, done) => resolve({ err: errObs(e), done })))).toEqual({ err: null, done: true })
    await new Promise((resolve) => b.finish(resolve))
    expect(await call(restored, 'all', 'SELECT v FROM secrets')).toEqual([{ v: 'the plans' }])
    expect(header(path.join(dir, 'restored.db'))).not.toBe(SQLITE_HEADER)
  })

  test('a database keyed with `PRAGMA key = …` is backed up encrypted with that key', async () => {
    const dir = freshDir('pragma-key')
    const file = path.join(dir, 'enc.db')
    const copy = path.join(dir, 'copy.db')
    const db = trackDb(await ours.create({ filename: file, standalone: true }))
    await call(db, 'exec', "PRAGMA key = 'k2'")
    await call(db, 'exec', "CREATE TABLE secrets(v TEXT); INSERT INTO secrets VALUES ('pragma plans')")
    expect(header(file)).not.toBe(SQLITE_HEADER)

    expect(await backupAll(db, copy)).toEqual({ err: null, done: true, completed: true, failed: false })
    expect(header(copy)).not.toBe(SQLITE_HEADER)
    expect(await readWith(copy, 'k2')).toEqual([{ v: 'pragma plans' }])
    expect(await readWith(copy)).toEqual({ code: 'SQLITE_NOTADB' })
    expect(await readWith(copy, 'k')).toEqual({ code: 'SQLITE_NOTADB' })
  })
})
