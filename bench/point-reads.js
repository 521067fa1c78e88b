'use strict'
// Serial point reads by primary key: the loop measured in the measuring process by the serial
// point-read workload and the workloads with another process working beside the reader, and in
// each reader process (bench/reader-child.js) of their multi-reader variants, so every reader
// measures the same thing.

const { now, settle } = require('./measure')

const POINT_SQL = 'SELECT id, name, value FROM items WHERE id = ?'

function checkRow(row, id) {
  if (!row || row.id !== id) throw new Error(`wrong row for id ${id}: ${JSON.stringify(row)}`)
}

/**
 * A `repeat` body: point reads by primary key one after another through `read(id)` (a row, or a
 * promise of one) for the window's length; the rate is reads/s. `timed(ms, phase)`, if given,
 * receives each read's latency.
 */
function serialPointReads(read, ids, timed) {
  const mask = ids.length - 1
  let i = 0
  return async (ms, phase) => {
    await settle()
    const t0 = now()
    const deadline = t0 + ms
    let n = 0
    do {
      const id = ids[i++ & mask]
      const start = timed ? now() : 0
      checkRow(await read(id), id)
      if (timed) timed(now() - start, phase)
      n++
    } while (now() < deadline)
    return (n * 1000) / (now() - t0)
  }
}

/** `read(id)` for serialPointReads on `db` of `impl`: a prepared statement's get() or a one-shot db.get(). */
function pointReader(impl, db, sql = POINT_SQL) {
  if (impl.kind === 'sync') {
    const stmt = db.prepare(sql)
    return (id) => stmt.get(id)
  }
  return (id) => new Promise((resolve, reject) => db.get(sql, id, (err, row) => (err ? reject(err) : resolve(row))))
}

module.exports = { POINT_SQL, checkRow, serialPointReads, pointReader }
