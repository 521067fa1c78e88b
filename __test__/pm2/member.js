'use strict'
// One process of a cluster on a file, driven by the test over IPC.
//
//   node member.js <file> hold [helper [new]]
//                                          opens the file (the first process becomes master)
//                                          and writes to it, reporting { error } at once;
//                                          with `helper`, calls closeOnExit() first; with
//                                          `helper+own`, the app also listens for SIGTERM
//                                          itself (and stops writing) and reports { closed }
//                                          when the helper has closed its Database; with
//                                          `new`, opens it with `new Database()` (as ORMs do)
//                                          instead of create()
//   node member.js <file> write           opens it and writes until told to stop: eight
//                                          INSERTs in flight at all times, and one transaction
//                                          (two INSERTs) after another; then reports
//                                          { acked, errors, role, masterPid }

const sqlite = require('../..')

const [file, job, helper, opener] = process.argv.slice(2)

const run = (db, sql, params = []) => new Promise((resolve, reject) => db.run(sql, params, (e) => (e ? reject(e) : resolve())))

function open() {
  if (opener !== 'new') return sqlite.create({ filename: file })
  return new Promise((resolve, reject) => {
    const db = new sqlite.Database(file, (e) => (e ? reject(e) : resolve(db)))
  })
}

async function hold() {
  if (helper) sqlite.closeOnExit()
  const db = await open()
  await run(db, 'CREATE TABLE IF NOT EXISTS log(n INTEGER PRIMARY KEY, kind TEXT)')
  let stopping = false
  if (helper === 'helper+own') {
    process.on('SIGTERM', () => {
      stopping = true
      db.once('close', () => process.send({ closed: !db.open }))
    })
  }
  // Writes of its own, as an app serving requests would: any error is reported at once.
  ;(async () => {
    for (let n = -1; !stopping; n--) {
      await run(db, 'INSERT INTO log VALUES (?, ?)', [n, 'master']).catch((e) => process.send({ error: `${e.code}: ${e.message}` }))
    }
  })()
  // An idle Database lets Node exit: this process stays until it is signalled.
  setInterval(() => {}, 1 << 30)
  process.send({ ready: true, ...db.cluster })
}

async function write() {
  const db = await sqlite.create({ filename: file })
  const acked = []
  const errors = []
  let next = 0
  let stopping = false
  const note = (e) => errors.push(`${e.code}: ${e.message}`)
  async function inserts() {
    while (!stopping) {
      const n = next++
      await run(db, 'INSERT INTO log VALUES (?, ?)', [n, 'single']).then(() => acked.push(n), note)
    }
  }
  async function transactions() {
    while (!stopping) {
      const a = next++
      const b = next++
      try {
        await run(db, 'BEGIN')
        await run(db, 'INSERT INTO log VALUES (?, ?)', [a, 'txn'])
        await run(db, 'INSERT INTO log VALUES (?, ?)', [b, 'txn'])
        await run(db, 'COMMIT')
        acked.push(a, b)
      } catch (e) {
        note(e)
        await run(db, 'ROLLBACK').catch(() => {})
      }
    }
  }
  const loops = [...Array.from({ length: 8 }, inserts), transactions()]
  process.on('message', async (m) => {
    if (m === 'count') return process.send({ count: acked.length })
    stopping = true
    await Promise.all(loops)
    process.send({ acked, errors, ...db.cluster })
    db.close(() => process.exit(0))
  })
  process.send({ ready: true, ...db.cluster })
}

;(job === 'hold' ? hold() : write()).catch((e) => {
  console.error(e)
  process.exit(1)
})
