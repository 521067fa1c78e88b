'use strict'
// Many Databases of one file in one process, the way sequelize uses node-sqlite3 (one Database
// per transaction, opened and closed over and over). Run as `node many.js <file> <count>`;
// prints one JSON line and must then exit by itself (nothing left keeping the loop alive).

const path = require('path')
const sqlite3 = require(path.join(__dirname, '..', '..'))

const [file, countArg] = process.argv.slice(2)
const count = Number(countArg)

const open = (mode) => new Promise((resolve, reject) => {
  const db = mode === undefined
    ? new sqlite3.Database(file, (e) => (e ? reject(e) : resolve(db)))
    : new sqlite3.Database(file, mode, (e) => (e ? reject(e) : resolve(db)))
})
const call = (db, method, sql, params = []) =>
  new Promise((resolve, reject) => db[method](sql, params, function (e, r) { e ? reject(e) : resolve(method === 'run' ? this.changes : r) }))
const close = (db) => new Promise((resolve, reject) => db.close((e) => (e ? reject(e) : resolve())))

async function main() {
  const out = { roles: {}, ms: {} }
  const seen = (db) => { out.roles[db.cluster.role] = (out.roles[db.cluster.role] || 0) + 1 }

  // 1. A long-lived Database (the app's) holds the file while `count` others come and go.
  let t = Date.now()
  const holder = await open()
  seen(holder)
  await call(holder, 'run', 'CREATE TABLE t(phase INTEGER, i INTEGER)')
  for (let i = 0; i < count; i++) {
    const db = await open()
    seen(db)
    await call(db, 'run', 'INSERT INTO t VALUES (1, ?)', [i])
    await close(db)
  }
  out.ms.withHolder = Date.now() - t

  // 2. Nobody else holds it: each Database is the process's only one of the file.
  await close(holder)
  t = Date.now()
  for (let i = 0; i < count; i++) {
    const db = await open(sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE)
    seen(db)
    await call(db, 'run', 'INSERT INTO t VALUES (2, ?)', [i])
    await close(db)
  }
  out.ms.alone = Date.now() - t

  // 3. All at once (a pool), then all closed.
  t = Date.now()
  const pool = await Promise.all(Array.from({ length: count }, () => open()))
  pool.forEach(seen)
  await Promise.all(pool.map((db, i) => call(db, 'run', 'INSERT INTO t VALUES (3, ?)', [i])))
  await Promise.all(pool.map(close))
  out.ms.atOnce = Date.now() - t

  const last = await open()
  out.rows = await call(last, 'all', 'SELECT phase, count(*) AS n, count(DISTINCT i) AS d FROM t GROUP BY phase ORDER BY phase')
  await close(last)
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch((e) => {
  process.stderr.write(`${e.code || ''} ${e.stack}\n`)
  process.exitCode = 1
})
