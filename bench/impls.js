'use strict'
// The implementations under test. Each has the same small surface so workloads (and the each()
// child process) can open any of them:
//
//   { key, label, kind, open(filename) -> Promise<db>, close(db) -> Promise, version(db) -> Promise<string> }
//
// kind 'callback': db has node-sqlite3's callback API (run/get/all/each/prepare/exec/close).
// kind 'sync':     db is a better-sqlite3 Database (synchronous ceiling).
//
// Client implementations (`master` set) start a master process (bench/master-child.js) on the
// file in open() and stop it in close(); the measuring process is a client. `connect(filename)`
// opens only the client side (fan-in workers, whose master the workload starts).
// `serialize: false` marks an implementation without db.serialize() (1.x clients throw).
// `rounds: true` marks the implementations measured in rounds against each other (bench/run.js,
// `measuringOrder`).
//
// Every connection is put in WAL mode with synchronous=NORMAL so all peers write the same way
// (for client implementations, the master's connection is the one that matters).

const path = require('path')
const { startMaster } = require('./procs')

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

// The master process behind each client Database, stopped by close().
const masters = new WeakMap()

async function openWithMaster(impl, filename) {
  const master = await startMaster(impl.master, filename)
  try {
    const db = await impl.connect(filename)
    masters.set(db, master)
    return db
  } catch (err) {
    await master.stop()
    throw err
  }
}

async function stopMaster(db) {
  const master = masters.get(db)
  masters.delete(db)
  if (master) await master.stop()
}

const clusterClient = {
  key: 'cluster-client',
  label: 'sqlite3-cluster (client)',
  kind: 'callback',
  master: 'cluster',
  open(filename) {
    return openWithMaster(clusterClient, filename)
  },
  connect(filename) {
    return require(ROOT).create({ filename, connect: true })
  },
  async close(db) {
    try {
      await closeCallbackDb(db)
    } finally {
      await stopMaster(db)
    }
  },
  async version(db) {
    return (await getP(db, 'SELECT sqlite_version() AS v')).v
  },
}

const v1Client = {
  key: 'v1-client',
  label: '1.x (client)',
  kind: 'callback',
  master: 'v1',
  serialize: false,
  open(filename) {
    return openWithMaster(v1Client, filename)
  },
  connect(filename) {
    return require('./v1').connect(filename)
  },
  async close(db) {
    try {
      await require('./v1').disconnect(db)
    } finally {
      await stopMaster(db)
    }
  },
  async version(db) {
    return (await getP(db, 'SELECT sqlite_version() AS v')).v
  },
}

const dqlite = {
  key: 'dqlite',
  label: 'dqlite (3 nodes)',
  kind: 'callback',
  rounds: true,
  // A Database on a 3-node dqlite cluster on this machine (bench/dqlite.js); nothing to set:
  // dqlite chooses its journal.
  open(filename) {
    return require('./dqlite').open(filename)
  },
  close: closeCallbackDb,
  async version(db) {
    return `dqlite 1.11, SQLite ${(await getP(db, 'SELECT sqlite_version() AS v')).v}`
  },
}

const dqliteJs = {
  key: 'dqlite-js',
  label: 'minimal JS client (dqlite)',
  kind: 'callback',
  rounds: true,
  // The anchor peer of the dqlite column: a minimal JavaScript client of dqlite's wire protocol
  // (bench/dqlite-js.js) on the same cluster and the same copy of the file's tables.
  async open(filename) {
    const dqlite = require('./dqlite')
    const name = await dqlite.copied(filename)
    return require('./dqlite-js').connect(await dqlite.seeds(), name, { busyTimeout: 10000 })
  },
  close: closeCallbackDb,
  async version(db) {
    return `dqlite 1.11, SQLite ${(await getP(db, 'SELECT sqlite_version() AS v')).v}`
  },
}

// dqlite runs only where its node program was built (npm run build:dqlite-node).
const dqliteBuilt = require('../__test__/fixtures/dqlite-cluster').built
const IMPLS = [cluster, nodeSqlite3, better, clusterClient, v1Client, ...(dqliteBuilt ? [dqlite, dqliteJs] : [])]
const byKey = (key) => {
  const impl = IMPLS.find((i) => i.key === key)
  if (!impl) throw new Error(`unknown implementation ${key}`)
  return impl
}

module.exports = { IMPLS, byKey, execP, getP, closeCallbackDb, PRAGMAS }
