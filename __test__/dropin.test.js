'use strict'
// The package installed *as* `sqlite3` (docs/api.md; docs/node-sqlite3.md#the-module, #opening, #the-cache):
// the module's shape, `new Database()` joining the cluster of its file, `driver(options)`,
// `cached`, `PRAGMA key` as the ORMs' route to SQLCipher, the socket path fallback for deep
// folders and 1.x's `null` options. Real processes (dropin/agent.js) wherever a second process
// matters; node-sqlite3 itself (the `sqlite3` devDependency) where it defines the behaviour.

const fs = require('fs')
const os = require('os')
const path = require('path')
const { fork, spawn } = require('child_process')

const real = require('sqlite3')
const ours = require(path.join(__dirname, '..'))

const AGENT = path.join(__dirname, 'dropin', 'agent.js')
const MANY = path.join(__dirname, 'dropin', 'many.js')
const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1')
const RAW_KEY = '2f6c0a5e9b1d4c3e8a7f6b5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a291'

jest.setTimeout(30000)

// ---------------------------------------------------------------------------------------------
// processes, files and cleanup

const live = new Set()
const openDbs = new Set()
const dirs = []

class Agent {
  /** A dropin/agent.js process; `cwd` and `env` (merged over this process's) as given. */
  constructor({ cwd, env } = {}) {
    const childEnv = { ...process.env, ...env }
    for (const [name, value] of Object.entries(childEnv)) if (value === undefined) delete childEnv[name]
    this.child = fork(AGENT, [], { cwd, env: childEnv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    live.add(this.child)
    this.pid = this.child.pid
    this.waiting = new Map()
    this.nextId = 1
    this.child.on('exit', (code, signal) => {
      live.delete(this.child)
      for (const { reject } of this.waiting.values()) reject(new Error(`agent ${this.pid} exited (${signal || code})`))
      this.waiting.clear()
    })
    this.ready = new Promise((resolve) => {
      this.child.on('message', (m) => {
        if (m.event === 'ready') return resolve()
        const pending = this.waiting.get(m.id)
        if (!pending) return
        this.waiting.delete(m.id)
        if (m.ok) pending.resolve(m.result)
        else pending.reject(Object.assign(new Error(m.error.message), m.error))
      })
    })
  }

  async call(op, ...args) {
    await this.ready
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject })
      this.child.send({ id, op, args })
    })
  }

  /** The error `op` fails with, as `{ name, message, code, errno }`, or 'no error'. */
  failure(op, ...args) {
    return this.call(op, ...args).then(() => 'no error', (e) => ({ name: e.name, message: e.message, code: e.code, errno: e.errno }))
  }

  /** `query(method, sql, params)` in the agent. */
  q(method, sql, params) {
    return this.call('query', method, sql, params ?? []) // (undefined would cross IPC as null)
  }
}

const agent = (opts) => new Agent(opts)

/** Runs a node script to completion: `{ code, signal, stdout, stderr, ms }`. */
function runScript(file, args, timeoutMs) {
  return new Promise((resolve) => {
    const started = Date.now()
    const child = spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    live.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      live.delete(child)
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started })
    })
  })
}

function tmpDir(label) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sqlite3-cluster-dropin-${label}-`))
  dirs.push(dir)
  return fs.realpathSync(dir)
}

function track(db) {
  openDbs.add(db)
  return db
}

function closeQuietly(db) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 3000)
    const done = () => { clearTimeout(timer); resolve() }
    try {
      if (!db.open) return done()
      db.on('error', () => {})
      db.close(done)
    } catch {
      done()
    }
  })
}

afterEach(async () => {
  // This process's Databases first (some are clients of the agents' masters), then the agents.
  for (const db of openDbs) await closeQuietly(db)
  openDbs.clear()
  const children = [...live]
  for (const child of children) {
    try {
      child.kill('SIGKILL')
    } catch {
      // the child has already exited
    }
  }
  await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null
    ? null : new Promise((resolve) => c.once('exit', resolve)))))
})

afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
})

// ---------------------------------------------------------------------------------------------
// helpers in this process

/** Opens `new Database(...args)` of `mod`; resolves with `{ db, err, self }` from the callback. */
function openIn(Database, ...args) {
  return new Promise((resolve) => {
    const db = track(new Database(...args, function (err) {
      resolve({ db, err, self: this === db })
    }))
  })
}

function call(db, method, sql, params = []) {
  return new Promise((resolve, reject) => db[method](sql, params, function (err, result) {
    if (err) reject(err)
    else resolve(method === 'run' ? { lastID: this.lastID, changes: this.changes } : result)
  }))
}

function close(db) {
  return new Promise((resolve, reject) => db.close((e) => (e ? reject(e) : resolve())))
}

/** `{ name, message, errno, code }` of an error (null/undefined as is). */
function errObs(e) {
  if (e === null || e === undefined) return e
  return { name: e.constructor && e.constructor.name, message: e.message, errno: e.errno, code: e.code }
}

/** The rejection of `promise` as errObs, or 'no error'. */
function rejection(promise) {
  return promise.then(() => 'no error', errObs)
}

function header(file) {
  const fd = fs.openSync(file, 'r')
  try {
    const buf = Buffer.alloc(16)
    fs.readSync(fd, buf, 0, 16, 0)
    return buf
  } finally {
    fs.closeSync(fd)
  }
}

const NOTADB = { code: 'SQLITE_NOTADB', errno: 26, message: expect.stringMatching(/^SQLITE_NOTADB: file is not a database/) }

// ---------------------------------------------------------------------------------------------

describe('the module has the shape of the sqlite3 module', () => {
  // What node-sqlite3 exports besides constants; `path` (the .node file) and `Backup` aside.
  const NON_CONSTANTS = new Set(['Database', 'Statement', 'Backup', 'path', 'cached', 'verbose'])
  const constantNames = Object.keys(real).filter((k) => !NON_CONSTANTS.has(k))
  const FIXED = constantNames.filter((k) => !['VERSION', 'SOURCE_ID', 'VERSION_NUMBER'].includes(k))

  test('every constant of node-sqlite3 with the same value (OPEN_*, result codes, LIMIT_*)', () => {
    // The scenario is meaningful: node-sqlite3 has the 7 open flags, 27 result codes, 12 limits.
    expect(FIXED.filter((k) => k.startsWith('OPEN_'))).toHaveLength(7)
    expect(FIXED.filter((k) => k.startsWith('LIMIT_'))).toHaveLength(12)
    expect(FIXED.filter((k) => !k.startsWith('OPEN_') && !k.startsWith('LIMIT_'))).toHaveLength(27)
    for (const name of FIXED) {
      expect([name, ours[name]]).toEqual([name, real[name]])
    }
    // The linked SQLite's version: same kinds of value, and consistent with each other.
    expect(typeof ours.VERSION).toBe('string')
    expect(typeof ours.SOURCE_ID).toBe('string')
    expect(typeof ours.VERSION_NUMBER).toBe('number')
    const [maj, min, patch] = ours.VERSION.split('.').map(Number)
    expect(ours.VERSION_NUMBER).toBe(maj * 1000000 + min * 1000 + patch)
  })

  test('Database, Statement, verbose() returning the module, cached; plus create, driver, escape, sanitize', async () => {
    expect(typeof ours.Database).toBe('function')
    expect(typeof ours.Statement).toBe('function')
    expect(ours.verbose()).toBe(ours)
    expect(typeof ours.cached.Database).toBe('function')
    expect(typeof ours.cached.objects).toBe('object')
    for (const name of ['create', 'driver', 'escape', 'sanitize']) expect(typeof ours[name]).toBe('function')
    expect(ours.escape("it's 'quoted'")).toBe("it''s ''quoted''")
    expect(ours.sanitize("a'b'c")).toBe("a''b''c")

    // Calling the classes without `new` fails as node-sqlite3's do.
    const noNew = (mod) => [() => mod.Database(':memory:'), () => mod.Statement()].map((f) => {
      try { f() } catch (e) { return errObs(e) }
      return 'no throw'
    })
    expect(noNew(ours)).toEqual(noNew(real))
    expect(noNew(real)[0]).toMatchObject({ name: 'TypeError' })

    // A Database from the module works like node-sqlite3's (callback, then queries).
    const { db, err, self } = await openIn(ours.Database, ':memory:')
    expect([err, self]).toEqual([null, true])
    expect(await call(db, 'get', 'SELECT 1 + 1 AS two')).toEqual({ two: 2 })
    const statement = db.prepare('SELECT ? AS x')
    expect(statement).toBeInstanceOf(ours.Statement)
    await new Promise((resolve) => statement.finalize(resolve))
  })
})

describe('new Database() joins the cluster of its file (auto mode, like create())', () => {
  test('the first process is master; processes naming the file by a symlinked folder or a relative path are its clients', async () => {
    const dir = tmpDir('join')
    fs.mkdirSync(path.join(dir, 'data'))
    fs.symlinkSync(path.join(dir, 'data'), path.join(dir, 'link'))
    const file = path.join(dir, 'data', 'app.db')

    const a = agent()
    const first = await a.call('open', { filename: file })
    expect(first).toEqual({ role: 'master', sock: path.join(dir, 'data', '.app.db.cluster', 'sock'), masterPid: a.pid })
    await a.call('exec', 'CREATE TABLE t(who TEXT); INSERT INTO t VALUES (\'a\')')

    // Through the symlink, from another working directory.
    const b = agent({ cwd: os.tmpdir() })
    const second = await b.call('open', { filename: path.join(dir, 'link', 'app.db') })
    // Relative to its own working directory.
    const c = agent({ cwd: path.join(dir, 'link') })
    const third = await c.call('open', { filename: 'app.db' })
    for (const joined of [second, third]) expect(joined).toEqual({ ...first, role: 'client' })

    expect(await b.q('all', 'SELECT who FROM t')).toEqual([{ who: 'a' }])
    await b.q('run', 'INSERT INTO t VALUES (?)', ['b'])
    await c.q('run', 'INSERT INTO t VALUES (?)', ['c'])
    expect(await a.q('all', 'SELECT who FROM t ORDER BY who')).toEqual([{ who: 'a' }, { who: 'b' }, { who: 'c' }])
    expect(await c.q('get', 'SELECT count(*) AS n FROM t')).toEqual({ n: 3 })
    // One master, one file: no second database appeared beside a symlink or the other cwd.
    expect(fs.readdirSync(path.join(dir, 'data')).filter((n) => n.endsWith('.db'))).toEqual(['app.db'])
  })

  test('in this process: new Database(file, cb) → master, cb(null) with this === db; :memory: and "" are standalone', async () => {
    const file = path.join(tmpDir('roles'), 'one.db')
    const opened = await openIn(ours.Database, file)
    expect([opened.err, opened.self]).toEqual([null, true])
    expect(opened.db.cluster).toMatchObject({ role: 'master', masterPid: process.pid })
    for (const name of [':memory:', '']) {
      const { db, err } = await openIn(ours.Database, name)
      expect(err).toBe(null)
      expect(db.cluster).toEqual({ role: 'standalone', sock: null, masterPid: null })
      await call(db, 'run', 'CREATE TABLE t(x)')
    }
    // With a mode, as node-sqlite3 takes it.
    const withMode = await openIn(ours.Database, file, ours.OPEN_READWRITE)
    expect([withMode.err, withMode.db.mode, withMode.db.cluster.role]).toEqual([null, ours.OPEN_READWRITE, 'master'])
  })

  test('a file in a folder that does not exist fails as with node-sqlite3 (callback, and the error event)', async () => {
    const missing = path.join(tmpDir('missing'), 'no', 'such', 'folder', 'x.db')
    const viaCallback = async (mod) => errObs((await openIn(mod.Database, missing)).err)
    const viaEvent = (mod) => new Promise((resolve) => {
      const db = track(new mod.Database(missing))
      db.on('error', (e) => resolve(errObs(e)))
    })
    const expected = { name: 'Error', message: 'SQLITE_CANTOPEN: unable to open database file', errno: 14, code: 'SQLITE_CANTOPEN' }
    expect(await viaCallback(real)).toEqual(expected)
    expect(await viaCallback(ours)).toEqual(expected)
    expect(await viaEvent(real)).toEqual(expected)
    expect(await viaEvent(ours)).toEqual(expected)
    expect(fs.existsSync(path.dirname(missing))).toBe(false)
  })

  test('instanceof: Databases from create(), new Database and driver().Database are instances of every module\'s Database', async () => {
    const drv = ours.driver({ standalone: true })
    const other = ours.driver({})
    const made = [
      track(await ours.create({ filename: ':memory:' })),
      (await openIn(ours.Database, ':memory:')).db,
      (await openIn(drv.Database, ':memory:')).db,
      (await openIn(other.Database, ':memory:')).db,
      (await openIn(ours.cached.Database, ':memory:')).db,
    ]
    for (const db of made) {
      for (const mod of [ours, drv, other]) expect(db).toBeInstanceOf(mod.Database)
    }
    // Subclasses work, as with node-sqlite3's class.
    class Mine extends drv.Database {}
    const { db, err } = await openIn(Mine, ':memory:')
    expect(err).toBe(null)
    expect(db).toBeInstanceOf(Mine)
    expect(db).toBeInstanceOf(ours.Database)
    expect(await call(db, 'get', 'SELECT 7 AS x')).toEqual({ x: 7 })
  })

  test('200 Databases of one file in one process, opened and closed one after another and all at once; the process then exits by itself', async () => {
    const file = path.join(tmpDir('many'), 'many.db')
    const out = await runScript(MANY, [file, '200'], 20000)
    expect(out.stderr).toBe('')
    expect({ code: out.code, signal: out.signal }).toEqual({ code: 0, signal: null })
    const summary = JSON.parse(out.stdout)
    expect(summary.roles).toEqual({ master: 601 })
    expect(summary.rows).toEqual([1, 2, 3].map((phase) => ({ phase, n: 200, d: 200 })))
    if (process.env.DROPIN_VERBOSE) console.log('200 Databases:', summary.ms, 'total', out.ms, 'ms')
  })
})

describe('driver(options)', () => {
  test('driver({ key }): its Databases create an encrypted file that the same driver reads in another process', async () => {
    const file = path.join(tmpDir('drvkey'), 'secret.db')
    const drv = ours.driver({ key: 'k' })
    const { db, err } = await openIn(drv.Database, file)
    expect(err).toBe(null)
    expect(db.cluster.role).toBe('master')
    await call(db, 'run', 'CREATE TABLE t(v TEXT)')
    await call(db, 'run', 'INSERT INTO t VALUES (?)', ['marker-1234'])
    await close(db)
    expect(header(file).equals(SQLITE_HEADER)).toBe(false)
    expect(fs.readFileSync(file).includes('marker-1234')).toBe(false)

    // node-sqlite3 cannot read it; another process with the same driver options can.
    const plain = await openIn(real.Database, file)
    expect(plain.err).toBe(null)
    expect(await rejection(call(plain.db, 'all', 'SELECT v FROM t'))).toMatchObject(NOTADB)
    const a = agent()
    expect((await a.call('open', { filename: file, via: 'driver', options: { key: 'k' } })).role).toBe('master')
    expect(await a.q('all', 'SELECT v FROM t')).toEqual([{ v: 'marker-1234' }])
    const b = agent()
    expect((await b.call('open', { filename: file, via: 'driver', options: { key: 'k' } })).role).toBe('client')
    expect(await b.q('all', 'SELECT v FROM t')).toEqual([{ v: 'marker-1234' }])
  })

  test('driver({ standalone: true }) and driver({ busyTimeout }) apply to each Database', async () => {
    const dir = tmpDir('drvopts')
    const drv = ours.driver({ standalone: true })
    const { db, err } = await openIn(drv.Database, path.join(dir, 'alone.db'))
    expect(err).toBe(null)
    expect(db.cluster).toEqual({ role: 'standalone', sock: null, masterPid: null })
    expect(fs.existsSync(path.join(dir, '.alone.db.cluster'))).toBe(false)

    const a = agent()
    expect((await a.call('open', { filename: path.join(dir, 'bt.db'), via: 'driver', options: { busyTimeout: 250 } })).role).toBe('master')
    expect(await a.q('get', 'PRAGMA busy_timeout')).toEqual({ timeout: 250 })
  })

  test('a driver module has the sqlite3 module\'s shape; verbose() returns it', () => {
    const drv = ours.driver({ key: 'k' })
    expect(drv.verbose()).toBe(drv)
    for (const name of Object.keys(real).filter((k) => !['Backup', 'path'].includes(k))) {
      expect([name, typeof drv[name]]).toEqual([name, typeof real[name]])
      if (typeof real[name] !== 'function' && typeof real[name] !== 'object') expect(drv[name]).toBe(ours[name])
    }
    expect(typeof drv.cached.Database).toBe('function')
    expect(drv.cached).not.toBe(ours.cached)
  })

  test('invalid options throw a TypeError naming the option when driver() is called', () => {
    const thrownBy = (input) => {
      try {
        ours.driver(input)
      } catch (e) {
        return { name: e.constructor.name, message: e.message }
      }
      return 'no throw'
    }
    expect(thrownBy({ busyTimeout: -1 })).toMatchObject({ name: 'TypeError', message: expect.stringContaining('busyTimeout') })
    expect(thrownBy({ key: 5 })).toMatchObject({ name: 'TypeError', message: expect.stringContaining('key') })
    expect(thrownBy({ filename: 'x' })).toMatchObject({ name: 'TypeError', message: expect.stringContaining('filename') })
    expect(thrownBy(null)).toMatchObject({ name: 'TypeError' })
    expect(thrownBy({ serve: 'yes' })).toMatchObject({ name: 'TypeError', message: expect.stringContaining('serve') })
  })

  test('null options mean "not set": driver({ key: null, serve: null }) opens plain files in auto mode', async () => {
    const file = path.join(tmpDir('drvnull'), 'plain.db')
    const drv = ours.driver({ key: null, serve: null })
    const { db, err } = await openIn(drv.Database, file)
    expect(err).toBe(null)
    expect(db.cluster.role).toBe('master')
    await call(db, 'run', 'CREATE TABLE t(x)')
    await close(db)
    expect(header(file).equals(SQLITE_HEADER)).toBe(true)
  })
})

describe('cached.Database, side by side with node-sqlite3', () => {
  /** The observable behaviour of `mod.cached` on a fresh file in `dir`. */
  function scenario(mod, dir) {
    const file = path.join(dir, 'cached.db')
    const relative = path.relative(process.cwd(), file)
    const log = []
    return new Promise((resolve) => {
      let sync = true
      const first = mod.cached.Database(relative, function (err) { log.push(['first cb', err, this === first, sync]) })
      track(first)
      first.on('open', () => log.push(['open event']))
      // Before the open: same object, callback on 'open'.
      const second = mod.cached.Database(file, function (err) {
        log.push(['second cb', err, this === first, arguments.length, sync])
        // Once open: same object, callback on the next tick (before promise jobs and timers).
        let later = true
        const third = new mod.cached.Database(file, mod.OPEN_READWRITE, function (err2) {
          log.push(['third cb', err2, this === first, later])
        })
        log.push(['third returned', third === first])
        later = false
        Promise.resolve().then(() => log.push(['promise job']))
        setTimeout(() => {
          log.push(['objects', Object.keys(mod.cached.objects).filter((k) => k.startsWith(dir)).map((k) => path.relative(dir, k)),
            mod.cached.objects[file] === first])
          // :memory: and '' are never cached.
          const m1 = track(mod.cached.Database(':memory:'))
          const m2 = track(new mod.cached.Database(':memory:'))
          const e1 = track(mod.cached.Database(''))
          log.push(['memory', m1 === m2, m1 instanceof mod.Database, e1 instanceof mod.Database, e1 === track(mod.cached.Database('')),
            ':memory:' in mod.cached.objects, '' in mod.cached.objects])
          // Closed ones are not evicted: the same closed object comes back, its callback never runs.
          first.close(() => {
            const after = mod.cached.Database(file, () => log.push(['callback of a closed one']))
            log.push(['after close', after === first, after.open])
            setTimeout(() => resolve(log), 50)
          })
        }, 10)
      })
      log.push(['second returned', second === first, first instanceof mod.Database, first.filename === file])
      sync = false
    })
  }

  test('one object per resolved filename, callbacks (null) with this === db, :memory: never cached', async () => {
    const [theirs, mine] = [await scenario(real, tmpDir('cached-real')), await scenario(ours, tmpDir('cached-ours'))]
    // The scenario shows what docs/node-sqlite3.md#the-cache says, in node-sqlite3 itself.
    expect(theirs).toContainEqual(['second returned', true, true, true])
    expect(theirs).toContainEqual(['third cb', null, true, false])
    expect(mine).toEqual(theirs)
  })
})

describe('PRAGMA key as the first statement of a Database opened without a key', () => {
  const FORMS = [
    ["PRAGMA key = 'pass'", 'pass'],
    ['PRAGMA key = "pass"', 'pass'],
    ["PRAGMA KEY='it''s'", "it's"],
    [`PRAGMA key = "x'${RAW_KEY}'"`, RAW_KEY],
  ]

  test.each(FORMS)('%s keys a new file; a new process reads it back with the pragma and with create({ key })', async (pragma, key) => {
    const file = path.join(tmpDir('pragma'), 'keyed.db')
    const a = agent()
    expect((await a.call('open', { filename: file })).role).toBe('master')
    expect(await a.q('run', pragma)).toEqual({ lastID: 0, changes: 0 })
    await a.call('exec', "CREATE TABLE t(v TEXT); INSERT INTO t VALUES ('marker-5678')")
    await a.call('close')
    expect(header(file).equals(SQLITE_HEADER)).toBe(false)
    expect(fs.readFileSync(file).includes('marker-5678')).toBe(false)

    const b = agent()
    expect((await b.call('open', { filename: file })).role).toBe('master')
    expect(await b.q('all', pragma)).toEqual([])
    expect(await b.q('all', 'SELECT v FROM t')).toEqual([{ v: 'marker-5678' }])
    await b.call('close')
    // The pragma's key is the option's key: a passphrase, or (x'…') the same raw key.
    expect((await b.call('open', { filename: file, via: 'create', options: { key } })).role).toBe('master')
    expect(await b.q('get', 'SELECT v FROM t')).toEqual({ v: 'marker-5678' })
    expect(await b.call('problems')).toEqual([])
  })

  test('exec() of a script that starts with PRAGMA key keys the Database, then runs the rest', async () => {
    const file = path.join(tmpDir('pragma-exec'), 'keyed.db')
    const { db } = await openIn(ours.Database, file)
    await new Promise((resolve, reject) => db.exec("PRAGMA key = 'k;2'; CREATE TABLE t(v TEXT); INSERT INTO t VALUES ('marker-9')",
      (err) => (err ? reject(err) : resolve())))
    await close(db)
    expect(header(file).equals(SQLITE_HEADER)).toBe(false)
    const again = track(await ours.create({ filename: file, key: 'k;2' }))
    expect(await call(again, 'all', 'SELECT v FROM t')).toEqual([{ v: 'marker-9' }])
  })

  /** An encrypted file (key 'right') with a table t of one row, made by a process now gone. */
  async function encrypted(label) {
    const file = path.join(tmpDir(label), 'enc.db')
    const maker = agent()
    await maker.call('open', { filename: file, via: 'create', options: { key: 'right' } })
    await maker.call('exec', "CREATE TABLE t(v TEXT); INSERT INTO t VALUES ('ok')")
    await maker.call('close')
    maker.child.kill('SIGKILL')
    return file
  }

  test('wrong key: the pragma succeeds, a setup pragma without callback raises nothing, every read fails SQLITE_NOTADB', async () => {
    const file = await encrypted('wrongkey')
    const w = agent()
    expect((await w.call('open', { filename: file })).role).toBe('master')
    expect(await w.q('run', "PRAGMA key = 'wrong'")).toEqual({ lastID: 0, changes: 0 })
    await w.call('fire', 'PRAGMA foreign_keys = ON')
    expect(await w.failure('query', 'all', 'SELECT v FROM t')).toMatchObject(NOTADB)
    expect(await w.failure('query', 'get', 'SELECT count(*) FROM t')).toMatchObject(NOTADB)
    expect(await w.failure('query', 'run', "INSERT INTO t VALUES ('x')")).toMatchObject(NOTADB)
    expect(await w.failure('query', 'all', 'SELECT v FROM t')).toMatchObject(NOTADB)
    expect(await w.call('problems')).toEqual([])
    await w.call('close')

    // The right key still opens it (nothing was written with the wrong one).
    const r = agent()
    await r.call('open', { filename: file })
    await r.q('run', "PRAGMA key = 'right'")
    expect(await r.q('all', 'SELECT v FROM t')).toEqual([{ v: 'ok' }])
  })

  test('in client processes: the right key reads, a wrong key gets SQLITE_NOTADB, the master is unaffected', async () => {
    const file = await encrypted('clientkey')
    const m = agent()
    expect((await m.call('open', { filename: file, via: 'create', options: { key: 'right' } })).role).toBe('master')

    const good = agent()
    const bad = agent()
    expect(await good.call('open', { filename: file })).toMatchObject({ role: 'client', masterPid: m.pid })
    expect(await bad.call('open', { filename: file })).toMatchObject({ role: 'client', masterPid: m.pid })

    expect(await good.q('run', "PRAGMA key = 'right'")).toEqual({ lastID: 0, changes: 0 })
    await good.call('fire', 'PRAGMA foreign_keys = ON')
    expect(await good.q('all', 'SELECT v FROM t')).toEqual([{ v: 'ok' }])

    expect(await bad.q('run', "PRAGMA key = 'wrong'")).toEqual({ lastID: 0, changes: 0 })
    await bad.call('fire', 'PRAGMA foreign_keys = ON')
    expect(await bad.failure('query', 'all', 'SELECT v FROM t')).toMatchObject(NOTADB)
    expect(await bad.failure('query', 'run', "INSERT INTO t VALUES ('bad')")).toMatchObject(NOTADB)
    expect(await bad.failure('query', 'all', 'SELECT v FROM t')).toMatchObject(NOTADB)

    await good.q('run', "INSERT INTO t VALUES ('good')")
    expect(await m.q('all', 'SELECT v FROM t ORDER BY v')).toEqual([{ v: 'good' }, { v: 'ok' }])
    expect(await good.q('get', 'SELECT count(*) AS n FROM t')).toEqual({ n: 2 })
    for (const p of [m, good, bad]) expect(await p.call('problems')).toEqual([])
  })

  /** What a Database of `mod` opened without a key shows on `file`: the open, then a read. */
  async function keyless(mod, file) {
    const { db, err } = await openIn(mod.Database, file)
    return { open: errObs(err), read: await rejection(call(db, 'all', 'SELECT v FROM t')) }
  }
  const REAL_NOTADB = { name: 'Error', code: 'SQLITE_NOTADB', errno: 26, message: 'SQLITE_NOTADB: file is not a database' }

  test('no key at all, nobody else has the file: create() rejects with SQLITE_NOTADB; new Database(file, cb) opens like node-sqlite3 and fails on reads', async () => {
    const file = await encrypted('nokey')
    expect(await rejection(ours.create({ filename: file }).then(track))).toMatchObject(NOTADB)
    const theirs = await keyless(real, file)
    expect(theirs).toEqual({ open: null, read: REAL_NOTADB })
    expect(await keyless(ours, file)).toEqual(theirs)
  })

  test('no key at all, in this process while it holds the file with its key: the same', async () => {
    const file = await encrypted('nokeyhere')
    const holder = track(await ours.create({ filename: file, key: 'right' }))
    expect(holder.cluster.role).toBe('master')
    expect(await rejection(ours.create({ filename: file }).then(track))).toMatchObject(NOTADB)
    expect(await keyless(ours, file)).toEqual({ open: null, read: { ...REAL_NOTADB, message: expect.stringMatching(/^SQLITE_NOTADB: file is not a database/) } })
    expect(await call(holder, 'all', 'SELECT v FROM t')).toEqual([{ v: 'ok' }])
  })

  // The trust model of the cluster (README, Security model): processes of the same user are
  // served by the master, as 1.x served its workers, which never held the key; `secret` keeps
  // out the others. A client's key is still proved when it gives one (above).
  test('no key at all, in a client of a master that has the key: served like a 1.x worker, and a wrong PRAGMA key still closes it', async () => {
    const file = await encrypted('nokeyclient')
    const m = agent()
    expect((await m.call('open', { filename: file, via: 'create', options: { key: 'right' } })).role).toBe('master')
    const viaNew = agent()
    expect((await viaNew.call('open', { filename: file })).role).toBe('client')
    expect(await viaNew.q('all', 'SELECT v FROM t')).toEqual([{ v: 'ok' }])
    const wrong = agent()
    expect((await wrong.call('open', { filename: file })).role).toBe('client')
    await wrong.q('run', "PRAGMA key = 'wrong'")
    expect(await wrong.failure('query', 'all', 'SELECT v FROM t')).toMatchObject(NOTADB)
    expect(await m.q('all', 'SELECT v FROM t')).toEqual([{ v: 'ok' }])
  })
})

describe('socket path fallback for deep folders', () => {
  /** A folder whose default socket path (`<dir>/.deep.db.cluster/sock`) is over 107 bytes. */
  function deepFolder(root) {
    const deep = path.join(root, 'd'.repeat(60), 'e'.repeat(60))
    fs.mkdirSync(deep, { recursive: true })
    expect(Buffer.byteLength(path.join(deep, '.deep.db.cluster', 'sock'))).toBeGreaterThan(107)
    return deep
  }

  test.each([
    ['$XDG_RUNTIME_DIR', (base) => ({ XDG_RUNTIME_DIR: base })],
    ['os.tmpdir()', (base) => ({ XDG_RUNTIME_DIR: undefined, TMPDIR: base })],
  ])('a deep file gets a socket in a private folder under %s; a second process joins it', async (_, envOf) => {
    const root = tmpDir('deep')
    // A runtime folder with a short path, as /run/user/<uid> or /tmp are.
    const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 's3c-')))
    dirs.push(base)
    const deep = deepFolder(root)
    fs.symlinkSync(deep, path.join(root, 'short'))
    const env = envOf(base)

    const a = agent({ env })
    const first = await a.call('open', { filename: path.join(deep, 'deep.db'), via: 'create' })
    expect(first).toMatchObject({ role: 'master', masterPid: a.pid })
    const folder = path.join(base, `sqlite3-cluster-${process.getuid()}`)
    expect(first.sock.startsWith(folder + path.sep)).toBe(true)
    expect(Buffer.byteLength(first.sock)).toBeLessThanOrEqual(107)
    const st = fs.statSync(folder)
    expect([st.uid, st.mode & 0o777]).toEqual([process.getuid(), 0o700])
    // Nothing in the socket's own folder is reachable by others either.
    expect(fs.statSync(path.dirname(first.sock)).mode & 0o077).toBe(0)
    await a.call('exec', "CREATE TABLE t(v TEXT); INSERT INTO t VALUES ('deep')")

    // Another process, naming the file through a symlink with new Database(), finds the master.
    const b = agent({ env })
    expect(await b.call('open', { filename: path.join(root, 'short', 'deep.db') })).toEqual({ ...first, role: 'client' })
    expect(await b.q('all', 'SELECT v FROM t')).toEqual([{ v: 'deep' }])
    await b.q('run', "INSERT INTO t VALUES ('b')")
    expect(await a.q('get', 'SELECT count(*) AS n FROM t')).toEqual({ n: 2 })
  })

  test('a default socket path of exactly 107 bytes (the limit) is used as it is: master and client', async () => {
    const root = tmpDir('limit')
    const tail = path.join('.b.db.cluster', 'sock')
    const pad = 107 - Buffer.byteLength(path.join(root, 'x', tail)) + 1
    expect(pad).toBeGreaterThan(0) // (a temp folder this deep would need another root)
    const dir = path.join(root, 'p'.repeat(pad))
    fs.mkdirSync(dir)
    const sock = path.join(dir, tail)
    expect(Buffer.byteLength(sock)).toBe(107)

    const a = agent()
    expect(await a.call('open', { filename: path.join(dir, 'b.db'), via: 'create' })).toEqual({ role: 'master', sock, masterPid: a.pid })
    await a.call('exec', 'CREATE TABLE t(x); INSERT INTO t VALUES (1)')
    const b = agent()
    expect(await b.call('open', { filename: path.join(dir, 'b.db') })).toEqual({ role: 'client', sock, masterPid: a.pid })
    expect(await b.q('all', 'SELECT x FROM t')).toEqual([{ x: 1 }])
  })

  test('an explicit sock that is too long is still a TypeError naming `sock`', async () => {
    const deep = deepFolder(tmpDir('longsock'))
    const failure = await rejection(ours.create({ filename: path.join(deep, 'deep.db'), sock: path.join(deep, 'my.sock') }))
    expect(failure).toMatchObject({ name: 'TypeError', message: expect.stringContaining('`sock`') })
  })
})

describe("1.x's null options", () => {
  test('create() with every 1.x option set to null resolves, in auto mode', async () => {
    const file = path.join(tmpDir('nulls'), 'v1.db')
    const db = track(await ours.create({
      filename: file, verbose: null, standalone: null, serve: null, connect: null, key: null, bits: null,
      sock: null, secret: null, busyTimeout: null,
    }))
    expect(db.cluster).toMatchObject({ role: 'master', sock: path.join(path.dirname(file), '.v1.db.cluster', 'sock') })
    await call(db, 'run', 'CREATE TABLE t(x)')
    expect(await call(db, 'get', 'PRAGMA busy_timeout')).toEqual({ timeout: 5000 })
    await close(db)
    expect(header(file).equals(SQLITE_HEADER)).toBe(true)
  })
})
