'use strict'
// The dqlite implementation's cluster for the benchmark: three nodes of the package's node
// program on 127.0.0.1 (`--latency-ms 10`), started once per process when a workload first opens
// a dqlite Database, stopped (SIGKILL, by pid) when the process exits. A workload's database file
// becomes a dqlite database of the same base name, with the file's tables and rows copied in
// once (dqlite keeps no SQLite file: each node holds the database in memory). Processes the
// benchmark forks reach the same cluster through an environment variable.

const path = require('path')
const Database = require(path.join(__dirname, '..', 'node_modules', 'better-sqlite3'))
const { Cluster, built, BIN } = require('../__test__/fixtures/dqlite-cluster')

let started = null
const loaded = new Set() // files this process copied in (or found copied)
const SEEDS = 'SQLITE3_CLUSTER_BENCH_DQLITE_SEEDS'
// Files copied in by this process or a parent (one a line), for processes forked afterwards.
const COPIED = 'SQLITE3_CLUSTER_BENCH_DQLITE_COPIED'

function call(db, method, sql, params = []) {
  return new Promise((resolve, reject) => db[method](sql, params, (err, row) => (err ? reject(err) : resolve(row))))
}

/** The cluster's seeds ("host:port,…"): this process's cluster, or its parent's (SEEDS). */
async function seeds() {
  if (process.env[SEEDS]) return process.env[SEEDS]
  const c = await cluster()
  return c.addresses().join(',')
}

async function cluster() {
  if (!built) throw new Error(`the dqlite node program is not built (${BIN}): npm run build:dqlite-node`)
  if (!started) {
    started = (async () => {
      const c = await Cluster.create(3)
      process.on('exit', () => {
        for (const node of c.nodes) if (c.alive(node)) process.kill(node.child.pid, 'SIGKILL')
      })
      await c.startAll()
      // Processes the benchmark forks (each(), readers) use this cluster, not one of their own.
      process.env[SEEDS] = c.addresses().join(',')
      // The nodes must not keep the benchmark's process alive: it kills them as it exits.
      for (const node of c.nodes) {
        node.child.unref()
        node.child.stderr.destroy()
      }
      return c
    })()
  }
  return started
}

/** A Database (create()) on the dqlite copy of `file`. */
async function open(file) {
  const { create } = require('..')
  const name = path.basename(file, '.db')
  const db = await create({ filename: `dqlite://${await seeds()}/${name}`, busyTimeout: 10000 })
  if (!loaded.has(file)) {
    await copyInto(db, file)
    loaded.add(file)
    process.env[COPIED] = [process.env[COPIED], file].filter(Boolean).join('\n')
  }
  return db
}

/**
 * The name of the dqlite database that holds `file`'s tables, copied in first (through open(),
 * once per run) unless this process or its parent did: for another client of the cluster
 * (bench/dqlite-js.js).
 */
async function copied(file) {
  if (!loaded.has(file) && !(process.env[COPIED] || '').split('\n').includes(file)) {
    const db = await open(file)
    await new Promise((resolve, reject) => db.close((err) => (err ? reject(err) : resolve())))
  }
  return path.basename(file, '.db')
}

/** The tables of the SQLite file `file`, with their rows, into the dqlite database `db`. */
async function copyInto(db, file) {
  const source = new Database(file, { readonly: true })
  try {
    const tables = source.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all()
    for (const { name, sql } of tables) {
      await call(db, 'run', sql.replace(/^CREATE TABLE/i, 'CREATE TABLE IF NOT EXISTS'))
      // Another process of this run (the parent, or a child before) may have copied it.
      if ((await call(db, 'get', `SELECT count(*) AS n FROM "${name}"`)).n > 0) continue
      const rows = source.prepare(`SELECT * FROM "${name}"`).raw().all()
      if (!rows.length) continue
      const insert = db.prepare(`INSERT INTO "${name}" VALUES (${rows[0].map(() => '?').join(', ')})`)
      for (let i = 0; i < rows.length; i += 1000) {
        await call(db, 'run', 'BEGIN')
        for (const row of rows.slice(i, i + 1000)) {
          await new Promise((resolve, reject) => insert.run(row, (err) => (err ? reject(err) : resolve())))
        }
        await call(db, 'run', 'COMMIT')
      }
      await new Promise((resolve) => insert.finalize(resolve))
    }
  } finally {
    source.close()
  }
}

module.exports = { open, seeds, copied }
