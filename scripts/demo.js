'use strict'
// The demo: N worker processes (node:cluster) share one SQLCipher-encrypted database through
// sqlite3-cluster. The workers start in auto mode: one of them becomes master, the others its
// clients. Halfway through, the demo kills the master with SIGKILL: a client takes over within
// milliseconds and a replacement worker joins. The primary prints live progress, then a
// summary, and checks that every acknowledged write is in the file exactly once.
//
//   npm run demo                                  # 4 workers, 6 seconds, one failover
//   DEMO_WORKERS=8 DEMO_SECONDS=10 npm run demo
//   DEMO_KILLS=0 npm run demo                     # no failover
//
// You can also kill the master yourself (its pid is on the progress line): kill -9 <pid>.

const cluster = require('cluster')
const fs = require('fs')
const os = require('os')
const path = require('path')
const sqlite = require('..')

const WORKERS = Number(process.env.DEMO_WORKERS || 4)
const SECONDS = Number(process.env.DEMO_SECONDS || 6)
const KILLS = Number(process.env.DEMO_KILLS ?? 1)
const DIR = process.env.DEMO_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-demo-'))
const FILE = path.join(DIR, 'demo.db')
// A demo key. Real applications read theirs from a secret store, never from source code.
const KEY = 'demo passphrase: correct horse battery staple'

const call = (db, method, ...args) =>
  new Promise((resolve, reject) => db[method](...args, function (err, result) {
    if (err) reject(err)
    else resolve(method === 'run' ? { lastID: this.lastID, changes: this.changes } : result)
  }))

async function primary() {
  console.log(`sqlite3-cluster demo: ${WORKERS} workers share ${FILE} (SQLCipher, AES-256) for ${SECONDS} s`)
  const stats = new Map() // worker number -> latest counters
  const acked = new Map() // worker number -> acknowledged sequence numbers
  const roles = [] // { at, role, pid }
  let master = null
  let next = 1
  const started = Date.now()
  const ending = started + SECONDS * 1000

  const fork = () => {
    const n = next++
    const worker = cluster.fork({ DEMO_WORKER: String(n), DEMO_END: String(ending), DEMO_FILE: FILE })
    acked.set(n, [])
    worker.on('message', (m) => {
      if (m.role) {
        roles.push({ at: m.at, role: m.role, pid: m.pid })
        if (m.role === 'master') master = m.pid
        return
      }
      stats.set(n, m.stats)
      acked.get(n).push(...m.acked)
    })
    return worker
  }
  for (let i = 0; i < WORKERS; i++) fork()

  const failovers = []
  const killAt = (k) => started + (SECONDS * 1000 * (k + 1)) / (KILLS + 1)
  const progress = setInterval(() => {
    const total = [...stats.values()].reduce((a, s) => a + s.writes + s.reads, 0)
    const seconds = (Date.now() - started) / 1000
    process.stdout.write(`\r  ${seconds.toFixed(1)} s  master pid ${master ?? '…'}  ${total} operations  ` +
      `${Math.round(total / seconds)} ops/s   `)
    if (failovers.length < KILLS && Date.now() >= killAt(failovers.length) && master !== null) {
      const victim = master
      master = null
      failovers.push({ killed: victim, at: Date.now() })
      process.kill(victim, 'SIGKILL')
      process.stdout.write(`\n  killed the master (pid ${victim}) with SIGKILL\n`)
      if (Date.now() < ending - 1000) fork()
    }
  }, 100)

  await new Promise((resolve) => {
    cluster.on('exit', () => {
      if (Object.keys(cluster.workers).length === 0) resolve()
    })
  })
  clearInterval(progress)
  const seconds = (Date.now() - started) / 1000

  // Check the file directly, in this process.
  const db = await sqlite.create({ filename: FILE, key: KEY, standalone: true })
  const rows = await call(db, 'all', 'SELECT worker, seq, count(*) AS n FROM events GROUP BY worker, seq')
  const integrity = await call(db, 'get', 'PRAGMA integrity_check')
  await call(db, 'close')
  const stored = new Map(rows.map((r) => [`${r.worker}:${r.seq}`, r.n]))
  const ackedKeys = [...acked].flatMap(([n, seqs]) => seqs.map((s) => `${n}:${s}`))
  const lost = ackedKeys.filter((k) => stored.get(k) !== 1).length
  const duplicated = rows.filter((r) => r.n > 1).length
  const header = fs.readFileSync(FILE).subarray(0, 16).toString('latin1')
  const sum = (field) => [...stats.values()].reduce((a, s) => a + s[field], 0)

  console.log('\n')
  console.log(`  workers             ${WORKERS} (+${next - 1 - WORKERS} replacements)`)
  console.log(`  writes (acked)      ${ackedKeys.length}  (${Math.round(ackedKeys.length / seconds)}/s)`)
  console.log(`  reads               ${sum('reads')}  (${Math.round(sum('reads') / seconds)}/s)`)
  console.log(`  writes unconfirmed  ${sum('unconfirmed')}  (in flight when a master died: CLUSTER_MASTER_LOST / TXN_ABORTED)`)
  for (const f of failovers) {
    const taken = roles.find((r) => r.role === 'master' && r.at >= f.at && r.pid !== f.killed)
    console.log(`  failover            master ${f.killed} killed; ${taken ? `pid ${taken.pid} took over in ${taken.at - f.at} ms` : 'no new master seen'}`)
  }
  console.log(`  rows in the file    ${rows.length} (${duplicated} duplicated)`)
  console.log(`  acked writes lost   ${lost}`)
  console.log(`  integrity_check     ${integrity.integrity_check}`)
  console.log(`  file header         ${header.startsWith('SQLite format 3') ? 'PLAINTEXT (not encrypted!)' : 'random salt: encrypted'}`)
  const ok = lost === 0 && duplicated === 0 && integrity.integrity_check === 'ok'
  console.log(ok ? '\nOK: every acknowledged write is in the database exactly once.' : '\nFAILED: see above.')
  if (!process.env.DEMO_DIR) fs.rmSync(DIR, { recursive: true, force: true })
  process.exitCode = ok ? 0 : 1
}

async function worker() {
  const id = Number(process.env.DEMO_WORKER)
  const end = Number(process.env.DEMO_END)
  const db = await sqlite.create({ filename: process.env.DEMO_FILE, key: KEY })
  const announce = (role) => process.send({ role, pid: process.pid, at: Date.now() })
  announce(db.cluster.role)
  db.on('role', announce)
  await call(db, 'exec', `PRAGMA journal_mode = WAL;
    CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, worker INTEGER NOT NULL,
                                       seq INTEGER NOT NULL, payload TEXT NOT NULL)`)
  const stats = { writes: 0, reads: 0, unconfirmed: 0 }
  let seq = 0
  let fresh = []
  let lastReport = 0
  while (Date.now() < end) {
    // 50 writes in one transaction, all sent at once, then 100 reads.
    const batch = []
    const begin = call(db, 'run', 'BEGIN IMMEDIATE')
    for (let i = 0; i < 50; i++) {
      const s = ++seq
      batch.push(s)
      call(db, 'run', 'INSERT INTO events (worker, seq, payload) VALUES (?, ?, ?)', id, s, `event ${s} of worker ${id}`)
        .catch(() => {}) // the COMMIT below decides
    }
    try {
      await begin
      await call(db, 'run', 'COMMIT')
      stats.writes += batch.length
      fresh.push(...batch)
    } catch {
      // The master died during this transaction: it is gone, and so is every write in it
      // unless the COMMIT itself was in flight. Either way nothing is retried blindly.
      stats.unconfirmed += batch.length
      await call(db, 'run', 'ROLLBACK').catch(() => {})
    }
    const reads = []
    for (let i = 0; i < 100; i++) {
      reads.push(call(db, 'get', 'SELECT payload FROM events WHERE id = ?', 1 + ((seq * 7 + i) % Math.max(1, seq))).then(
        () => stats.reads++, () => {}))
    }
    await Promise.all(reads)
    if (Date.now() - lastReport > 100) {
      process.send({ stats, acked: fresh })
      fresh = []
      lastReport = Date.now()
    }
  }
  process.send({ stats, acked: fresh })
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
