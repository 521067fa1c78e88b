'use strict'
// A node:cluster app on one database file, through require('sqlite3-cluster/cluster'). Three
// workers each insert 200 rows and add 200 to one counter; the primary prints one JSON line
// (its own pid and, when it opened the file, its `db.cluster`; each worker's report).
//
//   node node-cluster.js <file> fork-only     the primary only forks, like PM2's daemon
//   node node-cluster.js <file> serve-first   the primary opens the file, then forks (1.x)
//   node node-cluster.js <file> serve-after   the primary opens it once a worker is master

const cluster = require('cluster')

const file = process.argv[2]
const mode = process.argv[3]
const WORKERS = 3
const WRITES = 200

const run = (db, sql, params = []) => new Promise((resolve, reject) => db.run(sql, params, (e) => (e ? reject(e) : resolve())))
const get = (db, sql, params = []) => new Promise((resolve, reject) => db.get(sql, params, (e, row) => (e ? reject(e) : resolve(row))))
const exec = (db, sql) => new Promise((resolve, reject) => db.exec(sql, (e) => (e ? reject(e) : resolve())))
const close = (db) => new Promise((resolve) => db.close(resolve))

const SCHEMA = `CREATE TABLE IF NOT EXISTS t(worker INTEGER, n INTEGER);
  CREATE TABLE IF NOT EXISTS counter(id INTEGER PRIMARY KEY, n INTEGER);
  INSERT OR IGNORE INTO counter VALUES (1, 0)`

async function primary() {
  // Only this mode loads the package here: PM2's daemon never does.
  const open = () => require('../../cluster').create({ filename: file })
  const db = mode === 'serve-first' ? await open() : null
  const reports = []
  let primaryDb = db
  const done = new Promise((resolve) => {
    for (let i = 0; i < WORKERS; i++) {
      cluster.fork({ WORKER_INDEX: String(i) }).on('message', (m) => {
        if (m.opened !== undefined) {
          // The first worker that opened the file holds it (master, unless the primary is).
          if (mode === 'serve-after' && primaryDb === null) {
            primaryDb = open().catch((e) => ({ error: e.code || e.message }))
          }
          return
        }
        reports.push(m)
        if (reports.length === WORKERS) resolve()
      })
    }
  })
  await done
  const own = await primaryDb
  const summary = { pid: process.pid, primary: own ? (own.error ? own : own.cluster) : null, workers: reports }
  // Clients close first and the master last, so that nobody fails over on the way out.
  const ownDb = own && !own.error ? own : null
  const masterPid = [...reports, { pid: process.pid, role: ownDb && ownDb.cluster.role }]
    .find((r) => r.role === 'master').pid
  for (const w of Object.values(cluster.workers)) if (w.process.pid !== masterPid) await stop(w)
  if (ownDb && masterPid !== process.pid) await close(ownDb)
  for (const w of Object.values(cluster.workers)) await stop(w)
  if (ownDb && masterPid === process.pid) await close(ownDb)
  console.log(JSON.stringify(summary))
}

function stop(worker) {
  worker.send('close')
  return new Promise((resolve) => worker.once('exit', resolve))
}

async function worker() {
  const db = await require('../../cluster').create({ filename: file })
  process.send({ opened: db.cluster.role })
  const index = Number(process.env.WORKER_INDEX)
  const errors = []
  const note = (e) => errors.push(e.code || e.message)
  await exec(db, SCHEMA).catch(note)
  await Promise.all(Array.from({ length: WRITES }, (_, n) => Promise.all([
    run(db, 'INSERT INTO t VALUES (?, ?)', [index, n]).catch(note),
    run(db, 'UPDATE counter SET n = n + 1 WHERE id = 1').catch(note),
  ])))
  const own = await get(db, 'SELECT count(*) AS n FROM t WHERE worker = ?', [index]).catch(note)
  process.on('message', async (m) => {
    if (m !== 'close') return
    await close(db)
    process.exit(0)
  })
  process.send({ pid: process.pid, ...db.cluster, errors, ownRows: own && own.n })
}

;(cluster.isPrimary ? primary() : worker()).catch((e) => {
  console.error(e)
  process.exit(1)
})
