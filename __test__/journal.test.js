'use strict'
// WAL by default (README, "WAL by default"): a file this package opens for writing goes to WAL
// mode unless the app chose a journal mode (`journalMode`), so that readers and the writer do
// not wait for each other. Other programs (the real node-sqlite3 here) keep using the file.

const fs = require('fs')
const os = require('os')
const path = require('path')
const ours = require('..')
const sqlite3 = require('sqlite3')

let dir
const opened = []
beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-journal-')) })
afterEach(async () => {
  await Promise.all(opened.splice(0).map((db) => new Promise((resolve) => db.close(() => resolve()))))
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

let n = 0
const fileFor = (name) => path.join(dir, `${name}-${++n}.db`)

function track(db) {
  opened.push(db)
  return db
}

function openReal(file, mode) {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(file, mode ?? (sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE), (err) => (err ? reject(err) : resolve(db)))
    track(db)
  })
}

function call(db, method, sql, params = []) {
  return new Promise((resolve, reject) => {
    db[method](sql, params, function (err, result) { err ? reject(err) : resolve(result ?? this) })
  })
}

const journalMode = async (db) => (await call(db, 'get', 'PRAGMA journal_mode')).journal_mode

test('a new file goes to WAL mode; node-sqlite3 reads and writes it beside us', async () => {
  const file = fileFor('new')
  const db = track(await ours.create({ filename: file, standalone: true }))
  await call(db, 'run', 'CREATE TABLE t(x)')
  expect(await journalMode(db)).toBe('wal')
  expect(fs.existsSync(`${file}-wal`)).toBe(true)

  const real = await openReal(file)
  expect(await journalMode(real)).toBe('wal') // the mode is the file's
  await call(real, 'run', 'INSERT INTO t VALUES (1)')
  await call(db, 'run', 'INSERT INTO t VALUES (2)')
  expect(await call(real, 'all', 'SELECT x FROM t ORDER BY x')).toEqual([{ x: 1 }, { x: 2 }])
  expect(await call(db, 'all', 'SELECT x FROM t ORDER BY x')).toEqual([{ x: 1 }, { x: 2 }])
})

test('journalMode is the mode at every open, even of a file that was in WAL mode', async () => {
  const file = fileFor('chosen')
  const first = await ours.create({ filename: file, standalone: true })
  await call(first, 'run', 'CREATE TABLE t(x)')
  expect(await journalMode(first)).toBe('wal')
  await new Promise((resolve) => first.close(resolve))

  const db = track(await ours.create({ filename: file, standalone: true, journalMode: 'DELETE' }))
  expect(await journalMode(db)).toBe('delete')
  await call(db, 'run', 'INSERT INTO t VALUES (1)')
  expect(fs.existsSync(`${file}-wal`)).toBe(false)
})

test('a read-only open and an in-memory database are left in their mode', async () => {
  const file = fileFor('readonly')
  const real = await openReal(file)
  await call(real, 'run', 'CREATE TABLE t(x)')
  const reader = track(await ours.create({ filename: file, standalone: true, mode: ours.OPEN_READONLY }))
  expect(await call(reader, 'all', 'SELECT * FROM t')).toEqual([])
  expect(await journalMode(real)).toBe('delete')

  const memory = track(await ours.create({ filename: ':memory:' }))
  expect(await journalMode(memory)).toBe('memory')
})

test('a new file keyed by PRAGMA key after the open (the ORMs\' route) is encrypted, then in WAL mode', async () => {
  const file = fileFor('pragma-key')
  const db = track(new ours.Database(file))
  await call(db, 'run', "PRAGMA key = 'secret'")
  await call(db, 'run', 'CREATE TABLE t(x)')
  expect(await journalMode(db)).toBe('wal')
  const header = fs.readFileSync(file).subarray(0, 16).toString('latin1')
  expect(header).not.toBe('SQLite format 3\0')

  const wrong = track(new ours.Database(file))
  await call(wrong, 'run', "PRAGMA key = 'wrong'")
  await expect(call(wrong, 'all', 'SELECT * FROM t')).rejects.toMatchObject({ code: 'SQLITE_NOTADB' })
})

test('an unknown journalMode is a TypeError naming the option and the modes', async () => {
  await expect(ours.create({ filename: fileFor('bad'), journalMode: 'fast' })).rejects.toThrow(
    new TypeError("sqlite3-cluster: option `journalMode` must be one of 'delete', 'truncate', 'persist', 'memory', 'wal', 'off' (got \"fast\")")
  )
})
