'use strict'
// Connection settings of a Database (README, "Connection settings: per Database or per file").
// With node-sqlite3 every Database is a connection of its own, so the pragmas ORMs send on their
// connections (`foreign_keys`, `recursive_triggers`, `case_sensitive_like`, `query_only`) change
// nothing for the app's other Databases. Here Databases share the master's connection: the same
// scenario runs on two real node-sqlite3 connections and on two Databases of this package (in one
// process, and in two processes), and must give the same answers. Per-file settings are checked
// for what the README says of them.

const fs = require('fs')
const os = require('os')
const path = require('path')
const { spawn } = require('child_process')
const ours = require('..')
const sqlite3 = require('sqlite3')

let dir
const opened = []
const children = new Set()
beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-settings-')) })
afterEach(async () => {
  for (const child of children) child.kill('SIGKILL')
  children.clear()
  await Promise.all(opened.splice(0).map((db) => new Promise((resolve) => db.close(() => resolve()))))
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

let n = 0
const fileFor = (name) => path.join(dir, `${name}-${++n}.db`)

function open(module, file) {
  return new Promise((resolve, reject) => {
    const db = new module.Database(file, (err) => (err ? reject(err) : resolve(db)))
    opened.push(db)
  })
}

/** `{ ok: result }` or `{ err: code }`: what a statement did, comparable across packages. */
function outcome(db, method, sql, params = []) {
  return new Promise((resolve) => {
    db[method](sql, params, (err, result) => resolve(err ? { err: err.code } : { ok: result === undefined ? null : result }))
  })
}

/** A process holding a Database of `file` (this package), driven over IPC. */
function child(file) {
  const script = `
    const sqlite = require(${JSON.stringify(path.join(__dirname, '..'))})
    const db = new sqlite.Database(process.argv[1], (err) => process.send({ open: err ? err.code : db.cluster.role }))
    process.on('message', ({ id, method, sql, params }) => {
      db[method](sql, params, (err, result) => process.send({ id, result: err ? { err: err.code } : { ok: result === undefined ? null : result } }))
    })
    process.on('disconnect', () => db.close())
  `
  const proc = spawn(process.execPath, ['-e', script, file], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  children.add(proc)
  let next = 1
  const waiting = new Map()
  let opened
  const ready = new Promise((resolve) => { opened = resolve })
  proc.on('message', (m) => {
    if (m.open !== undefined) return opened(m.open)
    waiting.get(m.id)(m.result)
    waiting.delete(m.id)
  })
  return {
    ready,
    run(method, sql, params = []) {
      const id = next++
      return new Promise((resolve) => {
        waiting.set(id, resolve)
        proc.send({ id, method, sql, params })
      })
    },
  }
}

const SCHEMA = `
  CREATE TABLE parent (id INTEGER PRIMARY KEY);
  CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent(id));
  CREATE TABLE words (w TEXT);
  INSERT INTO words VALUES ('Apple'), ('apple');
  CREATE TABLE hits (n INTEGER);
  CREATE TRIGGER again AFTER INSERT ON hits WHEN new.n < 3 BEGIN INSERT INTO hits VALUES (new.n + 1); END;
`

/**
 * The scenario: `a` turns the per-Database pragmas on, `b` never does; each then runs
 * statements whose outcome depends on them. `run(db, method, sql)` runs one statement.
 */
async function scenario(a, b, run) {
  const log = []
  const step = async (who, db, method, sql) => log.push([who, sql, await run(db, method, sql)])
  await step('a', a, 'run', 'PRAGMA foreign_keys = ON')
  await step('a', a, 'run', 'PRAGMA recursive_triggers = ON')
  await step('a', a, 'run', 'PRAGMA case_sensitive_like = ON')
  for (const [who, db] of [['a', a], ['b', b], ['a', a]]) {
    await step(who, db, 'get', 'PRAGMA foreign_keys')
    await step(who, db, 'get', 'PRAGMA recursive_triggers')
    await step(who, db, 'all', "SELECT w FROM words WHERE w LIKE 'a%' ORDER BY w")
    await step(who, db, 'run', 'INSERT INTO child (parent) VALUES (42)')
    await step(who, db, 'run', 'DELETE FROM hits')
    await step(who, db, 'run', 'INSERT INTO hits VALUES (1)')
    await step(who, db, 'get', 'SELECT count(*) AS n FROM hits')
  }
  // TypeORM's synchronize() turns foreign keys off and on again around its schema changes.
  await step('a', a, 'run', 'PRAGMA foreign_keys = OFF')
  await step('b', b, 'run', 'PRAGMA foreign_keys = ON')
  await step('a', a, 'run', 'INSERT INTO child (parent) VALUES (43)')
  await step('b', b, 'run', 'INSERT INTO child (parent) VALUES (44)')
  await step('a', a, 'run', 'PRAGMA query_only = ON')
  await step('a', a, 'run', 'INSERT INTO words VALUES (\'x\')')
  await step('b', b, 'run', 'INSERT INTO words VALUES (\'y\')')
  await step('b', b, 'get', 'PRAGMA query_only')
  return log
}

async function prepared(module, file) {
  const setup = await open(module, file)
  await new Promise((resolve, reject) => setup.exec(SCHEMA, (err) => (err ? reject(err) : resolve())))
  return setup
}

describe('per-Database pragmas behave as on connections of their own', () => {
  test('two Databases in one process: foreign_keys, recursive_triggers, case_sensitive_like, query_only', async () => {
    const realFile = fileFor('real')
    await prepared(sqlite3, realFile)
    const expected = await scenario(await open(sqlite3, realFile), await open(sqlite3, realFile), outcome)
    // The scenario means something: the two real connections disagree where the settings do.
    expect(expected.find(([who, sql]) => who === 'b' && sql === 'PRAGMA foreign_keys')[2]).toEqual({ ok: { foreign_keys: 0 } })
    expect(expected.find(([who, sql]) => who === 'a' && sql === 'PRAGMA foreign_keys')[2]).toEqual({ ok: { foreign_keys: 1 } })

    const file = fileFor('ours')
    await prepared(ours, file)
    const a = await open(ours, file)
    const b = await open(ours, file)
    expect([a.cluster.role, b.cluster.role]).toEqual(['master', 'master'])
    expect(await scenario(a, b, outcome)).toEqual(expected)
  })

  test('a master and a client process: the same answers', async () => {
    const realFile = fileFor('real2')
    await prepared(sqlite3, realFile)
    const expected = await scenario(await open(sqlite3, realFile), await open(sqlite3, realFile), outcome)

    const file = fileFor('ours2')
    const a = await prepared(ours, file)
    expect(a.cluster.role).toBe('master')
    const b = child(file)
    expect(await b.ready).toBe('client')
    const run = (db, method, sql) => (db === b ? b.run(method, sql) : outcome(db, method, sql))
    expect(await scenario(a, b, run)).toEqual(expected)
  })
})

describe('per-file settings', () => {
  test('journal_mode is the file\'s: WAL set by one Database is what the others (and other programs) see', async () => {
    const file = fileFor('wal')
    const a = await open(ours, file)
    const b = await open(ours, file)
    expect(await outcome(a, 'get', 'PRAGMA journal_mode = WAL')).toEqual({ ok: { journal_mode: 'wal' } })
    expect(await outcome(b, 'get', 'PRAGMA journal_mode')).toEqual({ ok: { journal_mode: 'wal' } })
    const real = await open(sqlite3, file)
    expect(await outcome(real, 'get', 'PRAGMA journal_mode')).toEqual({ ok: { journal_mode: 'wal' } })
  })

  test('busy_timeout is the master connection\'s: one Database sets it for the file', async () => {
    const file = fileFor('busy')
    const a = await open(ours, file)
    const b = await open(ours, file)
    await outcome(a, 'run', 'PRAGMA busy_timeout = 1234')
    expect(await outcome(b, 'get', 'PRAGMA busy_timeout')).toEqual({ ok: { timeout: 1234 } })
  })
})

describe('after failover', () => {
  test('a client that took over keeps its per-Database pragmas (they are replayed on the new master)', async () => {
    const file = fileFor('failover')
    const masterScript = `
      const sqlite = require(${JSON.stringify(path.join(__dirname, '..'))})
      const db = new sqlite.Database(process.argv[1], () => db.exec(${JSON.stringify(SCHEMA)}, () => process.send('ready')))
      process.on('message', () => {}) // keeps the IPC channel, and so the process, alive
    `
    const master = spawn(process.execPath, ['-e', masterScript, file], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    children.add(master)
    await new Promise((resolve) => master.once('message', resolve))
    const b = await open(ours, file)
    expect(b.cluster.role).toBe('client')
    await outcome(b, 'run', 'PRAGMA foreign_keys = ON')
    await outcome(b, 'run', 'PRAGMA case_sensitive_like = ON')
    const roleChanged = new Promise((resolve) => b.once('role', resolve))
    master.kill('SIGKILL')
    expect(await roleChanged).toBe('master')
    expect(await outcome(b, 'get', 'PRAGMA foreign_keys')).toEqual({ ok: { foreign_keys: 1 } })
    expect(await outcome(b, 'all', "SELECT w FROM words WHERE w LIKE 'a%'")).toEqual({ ok: [{ w: 'apple' }] })
    expect(await outcome(b, 'run', 'INSERT INTO child (parent) VALUES (42)')).toEqual({ err: 'SQLITE_CONSTRAINT' })
  })
})
