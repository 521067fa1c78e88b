'use strict'
// What each inner test file does, as one jest worker among four: open the shared database
// (HANDOVER_JEST_DB) with create() in beforeAll, run write transactions with reads inside them
// for a while, close in afterAll. The worker that became master works the shortest time, so it
// hands over while the others are inside transactions (and its successor may do the same).
// Each writes what it committed to HANDOVER_JEST_OUT/<tag>.json for the outer test.

const fs = require('fs')
const path = require('path')
const { create } = require(path.join(__dirname, '..', '..', '..'))

/** `ms`: how long this file works as a client; a master works 800 ms and leaves first. */
module.exports = function worker(tag, ms) {
  let db
  const result = { tag, pid: process.pid, role: null, roles: [], committed: 0, errors: [] }

  const run = (sql, params = []) => new Promise((resolve, reject) => db.run(sql, params, (e) => (e ? reject(e) : resolve())))
  const get = (sql, params = []) => new Promise((resolve, reject) => db.get(sql, params, (e, row) => (e ? reject(e) : resolve(row))))
  const sleep = (t) => new Promise((resolve) => setTimeout(resolve, t))

  beforeAll(async () => {
    db = await create({ filename: process.env.HANDOVER_JEST_DB, standalone: false })
    result.role = db.cluster.role
    db.on('role', (role) => result.roles.push(role))
  })

  afterAll(async () => {
    try {
      if (db) await new Promise((resolve, reject) => db.close((e) => (e ? reject(e) : resolve())))
    } catch (e) {
      result.errors.push({ step: 'close', code: e.code, message: e.message })
      throw e
    } finally {
      fs.writeFileSync(path.join(process.env.HANDOVER_JEST_OUT, `${tag}.json`), JSON.stringify(result))
    }
  })

  test(`${tag}: transactions with reads inside them, while other workers come and go`, async () => {
    const end = Date.now() + (result.role === 'master' ? 800 : ms)
    for (let seq = 0; Date.now() < end; seq++) {
      let step = 'BEGIN'
      try {
        await run('BEGIN IMMEDIATE')
        step = 'INSERT 1'
        await run('INSERT INTO txn(tag, seq, part) VALUES (?, ?, 1)', [tag, seq])
        await sleep(2)
        step = 'INSERT 2'
        await run('INSERT INTO txn(tag, seq, part) VALUES (?, ?, 2)', [tag, seq])
        // Inside the transaction this worker sees its own rows and only committed ones.
        step = 'SELECT'
        const row = await get('SELECT count(*) AS n FROM txn WHERE tag = ?', [tag])
        expect(row.n).toBe(2 * (seq + 1))
        step = 'COMMIT'
        await run('COMMIT')
        result.committed++
      } catch (e) {
        result.errors.push({ step: `transaction ${seq}: ${step}`, code: e.code, message: e.message })
        await run('ROLLBACK').catch(() => {})
        throw e
      }
    }
    const mine = await get('SELECT count(*) AS n FROM txn WHERE tag = ?', [tag])
    expect(mine.n).toBe(2 * result.committed)
  })
}
