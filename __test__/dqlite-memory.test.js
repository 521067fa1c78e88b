'use strict'
// each() on a dqlite:// Database streams the result (docs/dqlite.md#sessions: chunks of 256
// rows, at most 4 ahead of the receiver), so the client's memory stays flat however big the
// result. Checked on a 3-node cluster of the package's node program (fixtures/dqlite-cluster.js)
// with 100,000 rows of 500 characters (50 MB of text): each() in a fresh process, with a fast
// receiver and with one slower than the server, against all() of the same rows in another, whose
// growth shows that the measurement sees a result held in memory.

const { execFile } = require('child_process')
const path = require('path')
const ours = require('..')
const { describeCluster, Cluster } = require('./fixtures/dqlite-cluster')

const ROWS = 100000
const LENGTH = 500
const PER_INSERT = 250 // rows (one parameter each) per INSERT: dqlite takes at most 255 parameters
const PER_TRANSACTION = 10000
const MiB = 1024 * 1024
const READER = path.join(__dirname, 'dqlite', 'stream-memory.js')

/** One call as a promise: run -> { changes }, get -> row. */
function call(db, method, sql, params = []) {
  return new Promise((resolve, reject) => {
    db[method](sql, params, function (err, row) {
      if (err) reject(err)
      else resolve(method === 'run' ? { changes: this.changes } : row)
    })
  })
}

/** The text of row `i`: its number, then filler, LENGTH characters in all. */
const text = (i) => String(i).padStart(10, '0') + 'x'.repeat(LENGTH - 10)

/**
 * Fills `big` with ROWS rows, PER_TRANSACTION to a transaction, within `ms`. On a loaded machine
 * the nodes' 150 ms election timeout can pass and the leader change under a transaction; its
 * COMMIT may then have stored it or not (it fails with CLUSTER_TXN_ABORTED either way), so the
 * rows are counted and the filling goes on from there (transactions are whole, and row i has
 * id i + 1). Answers how many leaders were lost.
 */
async function fill(db, ms) {
  const deadline = Date.now() + ms
  const insert = 'INSERT INTO big(v) VALUES ' + Array(PER_INSERT).fill('(?)').join(', ')
  let done = 0
  let lost = 0
  while (done < ROWS) {
    if (Date.now() > deadline) throw new Error(`${done} of ${ROWS} rows written in ${ms} ms`)
    try {
      await call(db, 'run', 'BEGIN')
      for (let i = done; i < done + PER_TRANSACTION; i += PER_INSERT) {
        const values = []
        for (let j = i; j < i + PER_INSERT; j++) values.push(text(j))
        expect(await call(db, 'run', insert, values)).toEqual({ changes: PER_INSERT })
      }
      await call(db, 'run', 'COMMIT')
      done += PER_TRANSACTION
    } catch (e) {
      if (!String(e.code).startsWith('CLUSTER_') || ++lost > 5) throw e
      await call(db, 'run', 'ROLLBACK').catch(() => {}) // answered by the client after a loss
      const counted = (await call(db, 'get', 'SELECT count(*) AS n FROM big')).n
      console.log(`filling: ${e.code} at row ${done} (${e.message}); ${counted} rows stored, going on from there`)
      done = counted
    }
  }
  return lost
}

describeCluster('each() over 100,000 rows of 500 bytes on a dqlite:// Database', () => {
  let cluster
  const readers = new Set()

  beforeAll(async () => {
    cluster = await Cluster.create(3)
    await cluster.startAll()
    const db = await ours.create(cluster.url('memory'))
    await call(db, 'run', 'CREATE TABLE big(id INTEGER PRIMARY KEY, v TEXT NOT NULL)')
    const started = Date.now()
    const lost = await fill(db, 20000)
    console.log(`filled ${ROWS} rows of ${LENGTH} bytes in ${Date.now() - started} ms (leaders lost: ${lost})`)
    expect(await call(db, 'get', 'SELECT count(*) AS n, min(length(v)) AS lo, max(length(v)) AS hi, max(id) AS last FROM big'))
      .toEqual({ n: ROWS, lo: LENGTH, hi: LENGTH, last: ROWS })
    await new Promise((resolve) => db.close(resolve))
  }, 50000)

  afterAll(async () => {
    for (const child of readers) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    if (cluster) await cluster.stopAll()
  })

  /** A reader process (stream-memory.js) in `mode`, at most 12 s: its JSON line. */
  const readOnce = (mode, microsPerRow) => new Promise((resolve) => {
    const args = ['--expose-gc', READER, cluster.url('memory'), mode, String(ROWS), String(LENGTH), String(microsPerRow)]
    const child = execFile(process.execPath, args, { encoding: 'utf8', timeout: 12000, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        readers.delete(child)
        try {
          resolve(JSON.parse(stdout))
        } catch {
          // (err.message holds stderr.)
          const why = err ? `${err.message} [signal ${err.signal}]` : `no JSON line: ${stderr}`
          resolve({ failed: `${why}; stdout: ${stdout}` })
        }
      })
    readers.add(child)
  })

  // One reader of the test may run again after a leader lost under load (a CLUSTER_* error).
  let retries = 1
  const read = async (mode, microsPerRow = 0) => {
    for (;;) {
      const result = await readOnce(mode, microsPerRow)
      if (!(result.failed && String(result.code).startsWith('CLUSTER_') && retries-- > 0)) return result
      console.log(`${mode} (${microsPerRow} µs per row) runs again after ${result.code}: ${result.failed}`)
    }
  }

  const figures = (r) => (r.failed ? `failed: ${r.failed}` : `${r.rows} rows in ${r.ms} ms, ` +
    `peak RSS growth ${(r.peakGrowth / MiB).toFixed(1)} MiB over a baseline of ${(r.baseline / MiB).toFixed(1)} MiB`)

  test('each() sees every row with a flat RSS, where all() of the same rows grows by more than the result', async () => {
    const each = await read('each')
    // 20 µs per row: 2 s and more for the rows the server sends in a fraction of that. Without
    // the window, the rest of the result would pile up in the client while the receiver sleeps.
    const slow = await read('each', 20)
    const all = await read('all')
    console.log(`dqlite each() of ${ROWS} rows of ${LENGTH} bytes: ${figures(each)}\n` +
      `each() with a receiver sleeping 20 µs per row: ${figures(slow)}\n` +
      `all(), for comparison: ${figures(all)}`)
    for (const r of [each, slow, all]) {
      expect(r.failed).toBeUndefined()
      expect(r).toMatchObject({ rows: ROWS, wrong: 0 })
    }
    // The result is 50 MB of text (47.7 MiB). Measured on 2 cores: each() 4.5-9 MiB, 9-14 MiB
    // with the slow receiver (V8 sizing its heap); all() 82 MiB (131 MiB with the read buffer).
    expect(each.peakGrowth).toBeLessThan(25 * MiB)
    expect(slow.peakGrowth).toBeLessThan(25 * MiB)
    // The measurement would catch an each() that held the result: all() holds it and grows more.
    expect(all.peakGrowth).toBeGreaterThan(50 * MiB)
  }, 45000)
})
