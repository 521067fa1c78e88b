'use strict'
// The demo: a primary and N workers (node:cluster) share one SQLCipher-encrypted database.
// Every worker writes and reads for a few seconds; the primary prints live progress, then a
// summary, and checks that every acknowledged write is in the file exactly once.
//
//   npm run demo                 # 4 workers, 5 seconds
//   DEMO_WORKERS=8 DEMO_SECONDS=10 npm run demo
//
// Until cluster mode lands, each process opens the file itself (standalone, WAL mode, with a
// busy timeout); the API the demo uses does not change when a master serves them.

const cluster = require('cluster')
const fs = require('fs')
const os = require('os')
const path = require('path')
const sqlite = require('..')

const WORKERS = Number(process.env.DEMO_WORKERS || 4)
const SECONDS = Number(process.env.DEMO_SECONDS || 5)
const FILE = process.env.DEMO_FILE || path.join(os.tmpdir(), `sqlite3-cluster-demo-${process.ppid || process.pid}.db`)
// A demo key. Real applications read theirs from a secret store, never from source code.
const KEY = 'demo passphrase: correct horse battery staple'

const call = (db, method, ...args) =>
  new Promise((resolve, reject) => db[method](...args, function (err, result) {
    if (err) reject(err)
    else resolve(method === 'run' ? { lastID: this.lastID, changes: this.changes } : result)
  }))

async function primary() {
  for (const suffix of ['', '-wal', '-shm']) fs.rmSync(FILE + suffix, { force: true })
  const db = await sqlite.create({ filename: FILE, key: KEY, standalone: true })
  await call(db, 'exec', `PRAGMA journal_mode = WAL;
    CREATE TABLE events (id INTEGER PRIMARY KEY, worker INTEGER NOT NULL, seq INTEGER NOT NULL,
                         payload TEXT NOT NULL, UNIQUE (worker, seq))`)
  console.log(`sqlite3-cluster demo: ${WORKERS} workers share ${FILE} (SQLCipher, AES-256) for ${SECONDS} s`)

  const stats = new Map()
  const started = Date.now()
  for (let i = 1; i <= WORKERS; i++) {
    const worker = cluster.fork({ DEMO_WORKER: String(i), DEMO_FILE: FILE })
    worker.on('message', (m) => stats.set(i, m))
  }
  const progress = setInterval(() => {
    const total = [...stats.values()].reduce((a, s) => a + s.writes + s.reads, 0)
    const seconds = (Date.now() - started) / 1000
    process.stdout.write(`\r  ${seconds.toFixed(1)} s  ${total} operations  ${Math.round(total / seconds)} ops/s   `)
  }, 250)
  await new Promise((resolve) => {
    let exited = 0
    cluster.on('exit', (worker, code) => {
      if (code !== 0) console.error(`\nworker ${worker.id} exited with code ${code}`)
      if (++exited === WORKERS) resolve()
    })
  })
  clearInterval(progress)
  const seconds = (Date.now() - started) / 1000

  const acknowledged = [...stats.values()].reduce((a, s) => a + s.writes, 0)
  const reads = [...stats.values()].reduce((a, s) => a + s.reads, 0)
  const stored = await call(db, 'get', 'SELECT count(*) AS n, count(DISTINCT worker || \':\' || seq) AS distinct_n FROM events')
  const integrity = await call(db, 'get', 'PRAGMA integrity_check')
  await call(db, 'close')
  const header = fs.readFileSync(FILE).subarray(0, 16).toString('latin1')

  console.log('\n')
  console.log(`  workers            ${WORKERS}`)
  console.log(`  writes (acked)     ${acknowledged}  (${Math.round(acknowledged / seconds)}/s)`)
  console.log(`  reads              ${reads}  (${Math.round(reads / seconds)}/s)`)
  console.log(`  rows in the file   ${stored.n} (${stored.distinct_n} distinct)`)
  console.log(`  integrity_check    ${integrity.integrity_check}`)
  console.log(`  file header        ${header.startsWith('SQLite format 3') ? 'PLAINTEXT (not encrypted!)' : 'random salt: encrypted'}`)
  const ok = stored.n === acknowledged && stored.distinct_n === acknowledged && integrity.integrity_check === 'ok'
  console.log(ok ? '\nOK: every acknowledged write is in the database exactly once.' : '\nFAILED: see above.')
  for (const suffix of ['', '-wal', '-shm']) fs.rmSync(FILE + suffix, { force: true })
  process.exitCode = ok ? 0 : 1
}

async function worker() {
  const id = Number(process.env.DEMO_WORKER)
  const db = await sqlite.create({ filename: FILE, key: KEY, standalone: true, busyTimeout: 10000 })
  const stats = { writes: 0, reads: 0 }
  const until = Date.now() + SECONDS * 1000
  let seq = 0
  let lastReport = 0
  while (Date.now() < until) {
    // A batch of writes in one transaction, then some reads of what others wrote.
    await call(db, 'run', 'BEGIN IMMEDIATE')
    const batch = []
    for (let i = 0; i < 50; i++) {
      batch.push(call(db, 'run', 'INSERT INTO events (worker, seq, payload) VALUES (?, ?, ?)', id, ++seq, `event ${seq} of worker ${id}`))
    }
    await Promise.all(batch)
    await call(db, 'run', 'COMMIT')
    stats.writes += batch.length
    const reads = []
    for (let i = 0; i < 100; i++) reads.push(call(db, 'get', 'SELECT payload FROM events WHERE id = ?', 1 + ((seq * 7 + i) % Math.max(1, stats.writes))))
    await Promise.all(reads)
    stats.reads += reads.length
    if (Date.now() - lastReport > 200) {
      process.send(stats)
      lastReport = Date.now()
    }
  }
  process.send(stats)
  await call(db, 'close')
  process.disconnect()
}

if (cluster.isPrimary) {
  primary().catch((e) => {
    console.error(e)
    process.exit(1)
  })
} else {
  worker().catch((e) => {
    console.error(`worker ${process.env.DEMO_WORKER}:`, e)
    process.exit(1)
  })
}
