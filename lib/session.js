'use strict'
// One session of the engine of a database file, as JavaScript sees it: numbered requests out,
// batched answers in. Every answer is routed to the handler registered with its request.
//
// The process is kept alive while requests are in flight (an idle Database lets Node exit, as
// with node-sqlite3). Row objects are built here, by a small constructor compiled once
// per set of column names, which is much faster than building them property by property in C.

const { NativeSession } = require('./native')

// Message kinds and layout: see src/js/convert.rs.
const K = {
  DONE: 0, RUN: 1, ROW: 2, NO_ROW: 3, ROWS: 4, CHUNK: 5, EACH_END: 6, ERROR: 7, DROPPED: 8, EVENT: 9,
  PREPARE_ERROR: 10, SCRIPT: 11, BYTES: 12, BACKUP: 13,
}
const STRIDE = 5
const MODE = { run: 0, get: 1, all: 2, each: 3 }

function rowBuilder(columns) {
  // A literal with one property per column; a repeated name keeps the last column's value,
  // like node-sqlite3. Names are embedded as JSON strings. A column named `__proto__` is left
  // out: node-sqlite3 assigns it, which sets no property (a non-object prototype is ignored).
  const props = []
  columns.forEach((name, i) => {
    if (name !== '__proto__') props.push(`${JSON.stringify(name)}: v[o + ${i}]`)
  })
  // eslint-disable-next-line no-new-func -- column names enter only as JSON string literals
  return new Function('v', 'o', `return { ${props.join(', ')} }`)
}

class Session {
  /** `cluster` (optional): `{ sock, intent, secret, connectTimeout }` to join a cluster. */
  constructor(filename, onEvent, cluster) {
    this.native = new NativeSession(filename, (batch, resetShapes) => this._dispatch(batch, resetShapes), cluster)
    this.handlers = new Map()
    this.nextId = 1
    this.inFlight = 0
    // Whether the native session keeps the event loop alive: from the first request in flight
    // until a batch's callbacks, and the promise reactions they queued, have left none. Letting
    // go only then, and not each time the count falls to zero, spares two native calls per
    // statement to a Database used one statement at a time, whose next request comes from the
    // last one's callback or from the code that awaits it.
    this.referenced = false
    this.idleCheckScheduled = false
    this.checkIdle = () => {
      this.idleCheckScheduled = false
      if (this.inFlight === 0 && this.referenced && !this.disposed) {
        this.referenced = false
        this.native.setBusy(false)
      }
    }
    this.shapes = new Map()
    this.onEvent = onEvent
    this.disposed = false
    // Cluster sessions send the calls of one JavaScript turn together: one flush per burst.
    this.clustered = cluster !== undefined
    this.flushScheduled = false
    this.flush = () => {
      this.flushScheduled = false
      if (!this.disposed) this.native.flush()
    }
  }

  /** Registers `handler(kind, a, b, c)` for a new request and returns its id. */
  track(handler) {
    const id = this.nextId++
    if (this.nextId > 0xfffffff0) this.nextId = 1
    this.handlers.set(id, handler)
    if (this.inFlight++ === 0 && !this.referenced) {
      this.referenced = true
      this.native.setBusy(true)
    }
    if (this.clustered && !this.flushScheduled) {
      this.flushScheduled = true
      queueMicrotask(this.flush)
    }
    return id
  }

  _finish(id) {
    this.handlers.delete(id)
    this.inFlight--
  }

  /** Row objects from one rows message (`a` = shape id, `b` = flat values, `c` = new names). */
  rows(shapeId, values, columns) {
    let entry = this.shapes.get(shapeId)
    if (columns !== undefined) {
      entry = { width: columns.length, build: rowBuilder(columns) }
      this.shapes.set(shapeId, entry)
    }
    const { width, build } = entry
    if (width === 0) return []
    const count = values.length / width
    const rows = new Array(count)
    for (let r = 0, o = 0; r < count; r++, o += width) rows[r] = build(values, o)
    return rows
  }

  row(shapeId, values, columns) {
    return this.rows(shapeId, values, columns)[0]
  }

  _dispatch(batch, resetShapes) {
    if (resetShapes) this.shapes.clear()
    let failure = null
    for (let i = 0; i < batch.length; i += STRIDE) {
      const id = batch[i]
      const kind = batch[i + 1]
      try {
        if (kind === K.EVENT) {
          this.onEvent(batch[i + 2], batch[i + 3], batch[i + 4])
          continue
        }
        const handler = this.handlers.get(id)
        if (kind !== K.CHUNK) this._finish(id)
        else this.native.resume()
        if (handler !== undefined) handler(kind, batch[i + 2], batch[i + 3], batch[i + 4])
      } catch (e) {
        // A callback threw: finish delivering this batch, then let the exception surface as
        // uncaught, as it would from a node-sqlite3 callback.
        if (failure === null) failure = e
      }
    }
    if (this.inFlight === 0 && this.referenced && !this.idleCheckScheduled) {
      // Queued after the reactions to the promises the callbacks resolved, which may send more.
      this.idleCheckScheduled = true
      queueMicrotask(this.checkIdle)
    }
    if (failure !== null) process.nextTick(() => { throw failure })
  }

  dispose() {
    if (this.disposed) return
    this.disposed = true
    this.native.dispose()
  }
}

module.exports = { Session, K, MODE }
