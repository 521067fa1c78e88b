'use strict'
// The implementations under test. Each has the same small surface so workloads (and the each()
// child process) can open any of them:
//
//   { key, label, kind, open(filename) -> Promise<db>, close(db) -> Promise, version(db) -> Promise<string> }
//
// kind 'callback': db has node-sqlite3's callback API (run/get/all/each/prepare/exec/close).
// kind 'sync':     db is a better-sqlite3 Database (synchronous ceiling).
//
// Every connection is put in WAL mode with synchronous=NORMAL so all peers write the same way.
// More implementations (e.g. sqlite3-cluster in client mode) can be appended to IMPLS; the
// first entry is the subject whose ratios are printed.

const path = require('path')

const ROOT = path.join(__dirname, '..')
const PRAGMAS = 'PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;'

function execP(db, sql) {
  return new Promise((resolve, reject) => db.exec(sql, (err) => (err ? reject(err) : resolve())))
}

function closeCallbackDb(db) {
  return new Promise((resolve, reject) => db.close((err) => (err ? reject(err) : resolve())))
}

function getP(db, sql, ...params) {
  return new Promise((resolve, reject) => db.get(sql, ...params, (err, row) => (err ? reject(err) : resolve(row))))
}

const cluster = {
  key: 'cluster',
  label: 'sqlite3-cluster',
  kind: 'callback',
  async open(filename) {
    const sqlite = require(ROOT)
    const db = await sqlite.create({ filename, standalone: true })
    await execP(db, PRAGMAS)
    return db
  },
  close: closeCallbackDb,
  async version(db) {
    return (await getP(db, 'SELECT sqlite_version() AS v')).v
  },
}

const nodeSqlite3 = {
  key: 'sqlite3',
  label: 'node-sqlite3',
  kind: 'callback',
  async open(filename) {
    const sqlite3 = require(path.join(ROOT, 'node_modules', 'sqlite3'))
    const db = await new Promise((resolve, reject) => {
      const d = new sqlite3.Database(filename, (err) => (err ? reject(err) : resolve(d)))
    })
    await execP(db, PRAGMAS)
    return db
  },
  close: closeCallbackDb,
  async version(db) {
    return (await getP(db, 'SELECT sqlite_version() AS v')).v
  },
}

const better = {
  key: 'better',
  label: 'better-sqlite3',
  kind: 'sync',
  async open(filename) {
    const Database = require(path.join(ROOT, 'node_modules', 'better-sqlite3'))
    const db = new Database(filename)
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    return db
  },
  async close(db) {
    db.close()
  },
  async version(db) {
    return db.prepare('SELECT sqlite_version() AS v').get().v
  },
}

const IMPLS = [cluster, nodeSqlite3, better]
const byKey = (key) => {
  const impl = IMPLS.find((i) => i.key === key)
  if (!impl) throw new Error(`unknown implementation ${key}`)
  return impl
}

module.exports = { IMPLS, byKey, execP, getP, closeCallbackDb }
