'use strict'
// Test data, written with better-sqlite3 (fast) into temp files under os.tmpdir(). Every peer
// reads the same read-only file, and gets its own freshly created file for writes.

const fs = require('fs')
const os = require('os')
const path = require('path')

const Database = require(path.join(__dirname, '..', 'node_modules', 'better-sqlite3'))

const ITEMS = 10000 // point reads and all()
const BIG = 100000 // each()
const SCAN_ROWS = 1000000 // the long scan

function makeTempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-bench-'))
}

function removeTempDir(dir) {
  fs.rmSync(dir, { recursive: true, force: true })
}

function fill(db, table, n) {
  db.exec(`CREATE TABLE ${table} (id INTEGER PRIMARY KEY, name TEXT, value REAL)`)
  const insert = db.prepare(`INSERT INTO ${table} (id, name, value) VALUES (?, ?, ?)`)
  db.transaction(() => {
    for (let i = 1; i <= n; i++) insert.run(i, `name-${i}`, i * 1.5)
  })()
}

/** The shared read database: `items` (10k rows) and `big` (100k rows), in WAL mode. */
function createReadDb(dir) {
  const file = path.join(dir, 'read.db')
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  fill(db, 'items', ITEMS)
  fill(db, 'big', BIG)
  db.pragma('wal_checkpoint(TRUNCATE)')
  db.close()
  return file
}

let writeCounter = 0
/** A new database file with an empty `ins` table, in WAL mode. */
function createWriteDb(dir, label) {
  const file = path.join(dir, `write-${++writeCounter}-${label}.db`)
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.exec('CREATE TABLE ins (id INTEGER PRIMARY KEY, name TEXT, value REAL)')
  db.close()
  return file
}

/**
 * The database of the long-scan workload, `scan.db`: `scanned` (SCAN_ROWS rows of an id, a number
 * and a text payload of 60 to 138 characters, about 120 MB), in WAL mode. A file of its own keeps
 * the other workloads' database as it was. Filled by one INSERT ... SELECT over a recursive CTE,
 * which is several times faster than a million bound inserts, while the file is still in rollback
 * mode, where new pages are not journaled; WAL comes after.
 */
function createScanDb(dir) {
  const file = path.join(dir, 'scan.db')
  const db = new Database(file)
  db.exec('CREATE TABLE scanned (id INTEGER PRIMARY KEY, n INTEGER, payload TEXT)')
  db.exec(`
    WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ${SCAN_ROWS})
    INSERT INTO scanned (id, n, payload) SELECT i, i % 1000, hex(zeroblob(30 + i % 40)) FROM seq`)
  db.pragma('journal_mode = WAL')
  db.close()
  return file
}

/** Random primary keys in 1..range, a power-of-two array so workloads can cycle with a mask. */
function randomIds(count = 1 << 16, range = ITEMS) {
  const ids = new Int32Array(count)
  let seed = 12345
  for (let i = 0; i < count; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0
    ids[i] = 1 + (seed % range)
  }
  return ids
}

module.exports = { ITEMS, BIG, SCAN_ROWS, makeTempDir, removeTempDir, createReadDb, createWriteDb, createScanDb, randomIds }
