'use strict'
// A minimal JavaScript client of dqlite's wire protocol (version 1), the benchmark's anchor peer
// for the Rust client: the kind of client the figures of docs/dqlite.md were measured with, run
// here in the same benchmark so both meet the same machine at the same moment.
//
// Node's `net`, `setNoDelay(true)`, and no TCP_QUICKACK (Node cannot set it): results of a few
// ROWS parts may wait for Linux's delayed ACK (~40 ms), which is part of what this anchor is.
// One connection per Database, one request in flight on it, the others queued in order.
// Statements go as EXEC_SQL / QUERY_SQL (no PREPARE); SQLITE_BUSY is retried with a short
// backoff up to busyTimeout; a bare BEGIN is sent as BEGIN IMMEDIATE, as the Rust client does.
// Only positional parameters; no reconnection, no failover: it is a benchmark peer.
//
//   const db = await connect('127.0.0.1:9001,127.0.0.1:9002', 'name')
//   db.get(sql, params, cb) / run / all / each / exec / prepare / serialize / close

const net = require('net')

const LEADER = 0
const CLIENT = 1
const OPEN = 3
const EXEC_SQL = 8
const QUERY_SQL = 9
const FAILURE = 0
const SERVER = 1
const RESULT = 6
const ROWS = 7
// ROWS end markers: the last part (DONE), or a part after which more come unasked (PART).
// As two u32 halves: the low halves are 0xffffffff and 0xeeeeeeee.
const DONE_LO = 0xffffffff
const PART_LO = 0xeeeeeeee

const ROW_SQL = /^\s*(SELECT|VALUES|WITH|EXPLAIN)\b|^\s*PRAGMA\b[^=]*$/i
const BARE_BEGIN = /^\s*BEGIN(\s+DEFERRED)?(\s+TRANSACTION)?\s*;?\s*$/i
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------
// Encoding

const pad8 = (n) => (n + 7) & ~7

function textSize(s) {
  return pad8(Buffer.byteLength(s) + 1)
}

function checkText(s, what) {
  if (s.includes('\0')) throw new Error(`${what} contains a NUL character`)
}

/** The type code of one parameter value, node-sqlite3's way: int32 numbers are INTEGER, others FLOAT. */
function paramCode(v) {
  if (v === null || v === undefined) return 5
  switch (typeof v) {
    case 'number': return Number.isInteger(v) && (v | 0) === v && !Object.is(v, -0) ? 1 : 2
    case 'bigint': case 'boolean': return 1
    case 'string': return 3
    default:
      if (Buffer.isBuffer(v)) return 4
      if (v instanceof Date) return 2
      throw new Error(`cannot bind ${typeof v}`)
  }
}

/** One message: header (body words, type) and body from `fields` [kind, value] (u64, text, params). */
function message(type, fields) {
  let size = 0
  for (const [kind, v] of fields) {
    if (kind === 'u64') size += 8
    else if (kind === 'text') size += textSize(v)
    else if (v.length) {
      size += pad8(1 + v.length)
      for (const p of v) {
        const c = paramCode(p)
        size += c === 3 ? textSize(p) : c === 4 ? 8 + pad8(p.length) : 8
      }
    }
  }
  const buf = Buffer.alloc(8 + size)
  buf.writeUInt32LE(size / 8, 0)
  buf[4] = type
  let o = 8
  for (const [kind, v] of fields) {
    if (kind === 'u64') {
      buf.writeUInt32LE(v, o)
      o += 8
    } else if (kind === 'text') {
      checkText(v, 'the SQL')
      o += pad8(buf.write(v, o) + 1)
    } else if (v.length) {
      if (v.length > 255) throw new Error(`${v.length} parameters: dqlite 1.11 takes at most 255`)
      buf[o] = v.length
      const codes = v.map(paramCode)
      codes.forEach((c, i) => { buf[o + 1 + i] = c })
      o += pad8(1 + v.length)
      v.forEach((p, i) => {
        switch (codes[i]) {
          case 1:
            if (typeof p === 'number') {
              buf.writeInt32LE(p, o)
              buf.writeInt32LE(p < 0 ? -1 : 0, o + 4)
            } else buf.writeBigInt64LE(BigInt(p), o)
            o += 8
            break
          case 2: buf.writeDoubleLE(+p, o); o += 8; break
          case 3: checkText(p, 'a text parameter'); o += pad8(buf.write(p, o) + 1); break
          case 4: buf.writeUInt32LE(p.length, o); p.copy(buf, o + 8); o += 8 + pad8(p.length); break
          default: o += 8 // NULL: one zero word
        }
      })
    }
  }
  return buf
}

// ---------------------------------------------------------------------------------------------
// Decoding

function readText(body, o) {
  const end = body.indexOf(0, o)
  return [body.toString('utf8', o, end), pad8(end + 1)]
}

function readInt(body, o) {
  return body.readInt32LE(o + 4) * 4294967296 + body.readUInt32LE(o)
}

/** One ROWS part: { rows (objects), more }. */
function readRows(body) {
  const n = readInt(body, 0)
  const columns = []
  let o = 8
  for (let i = 0; i < n; i++) {
    const [name, next] = readText(body, o)
    columns.push(name)
    o = next
  }
  const headerLen = pad8((n + 1) >> 1)
  const rows = []
  for (;;) {
    const lo = body.readUInt32LE(o)
    if ((lo === DONE_LO || lo === PART_LO) && body.readUInt32LE(o + 4) === lo) return { rows, more: lo === PART_LO }
    const types = o
    o += headerLen
    const row = {}
    for (let j = 0; j < n; j++) {
      const code = (body[types + (j >> 1)] >> ((j & 1) * 4)) & 0xf
      let v
      switch (code) {
        case 1: case 9: case 11: v = readInt(body, o); o += 8; break // INTEGER, UNIXTIME, BOOLEAN
        case 2: v = body.readDoubleLE(o); o += 8; break
        case 3: case 10: [v, o] = readText(body, o); break // TEXT, ISO8601
        case 4: {
          const len = body.readUInt32LE(o)
          v = Buffer.from(body.subarray(o + 8, o + 8 + len))
          o += 8 + pad8(len)
          break
        }
        case 5: v = null; o += 8; break
        default: throw new Error(`unknown value type ${code}`)
      }
      row[columns[j]] = v
    }
    rows.push(row)
  }
}

function failure(body) {
  const code = readInt(body, 0)
  const err = new Error(readText(body, 8)[0])
  err.errno = code & 0xff
  err.code = code === 5 || err.errno === 5 ? 'SQLITE_BUSY' : `SQLITE_${code}`
  err.dqliteCode = code
  return err
}

// ---------------------------------------------------------------------------------------------
// A connection: one request in flight, the rest queued (FIFO).

class Connection {
  constructor(socket) {
    this.socket = socket
    this.buf = null
    this.queue = []
    this.current = null
    this.closed = null
    this.idle = null
    socket.on('data', (chunk) => this.onData(chunk))
    socket.on('error', (err) => this.fail(err))
    socket.on('close', () => this.fail(new Error('dqlite connection closed')))
  }

  static open(address) {
    const i = address.lastIndexOf(':')
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: address.slice(0, i), port: Number(address.slice(i + 1)) })
      socket.once('error', reject)
      socket.once('connect', () => {
        socket.off('error', reject)
        socket.setNoDelay(true)
        const version = Buffer.alloc(8)
        version[0] = 1
        socket.write(version)
        resolve(new Connection(socket))
      })
    })
  }

  /**
   * Sends `msg`; `onMessage(type, body)` gets each answer and returns true when the request is
   * done, false when more parts of its answer come, or a number of ms after which to send it
   * again (BUSY: the requests queued behind it wait, as behind a busy handler).
   */
  request(msg, onMessage) {
    if (this.closed) throw this.closed
    this.queue.push({ msg, onMessage })
    if (!this.current) this.pump()
  }

  /** One answer (the first message) as a promise of { type, body }. */
  call(msg) {
    return new Promise((resolve, reject) => {
      try {
        this.request(msg, (type, body) => { resolve({ type, body }); return true })
      } catch (err) {
        reject(err)
      }
    })
  }

  pump() {
    this.current = this.queue.shift() || null
    if (this.current) this.socket.write(this.current.msg)
    else if (this.idle) {
      const idle = this.idle
      this.idle = null
      idle()
    }
  }

  /** `fn()` once no request is in flight or queued. */
  whenIdle(fn) {
    if (!this.current || this.closed) process.nextTick(fn)
    else this.idle = fn
  }

  onData(chunk) {
    let buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk
    let o = 0
    while (buf.length - o >= 8) {
      const end = o + 8 + buf.readUInt32LE(o) * 8
      if (buf.length < end) break
      const type = buf[o + 4]
      const body = buf.subarray(o + 8, end)
      o = end
      const current = this.current
      if (!current) continue // nothing asked for it
      let done
      try {
        done = current.onMessage(type, body)
      } catch (err) {
        // An answer that cannot be read, or a callback that threw: the connection is done for
        // (the request in flight is not told twice), and the error goes on up.
        this.current = null
        this.fail(err)
        throw err
      }
      if (this.current !== current) continue // failed meanwhile
      if (typeof done === 'number') {
        setTimeout(() => { if (this.current === current) this.socket.write(current.msg) }, done)
      } else if (done) {
        this.pump()
      }
    }
    buf = buf.subarray(o)
    this.buf = buf.length ? buf : null
  }

  fail(err) {
    if (this.closed) return
    this.closed = err
    const pending = this.current ? [this.current, ...this.queue] : this.queue
    this.current = null
    this.queue = []
    for (const r of pending) {
      try {
        r.onMessage(FAILURE, null, err)
      } catch {
        // the caller's callback threw: nothing more to tell it
      }
    }
    this.socket.destroy()
  }

  close() {
    this.closed = new Error('Database is closed')
    this.socket.destroy()
  }
}

/** Leader discovery over the seeds (go-dqlite's way), then CLIENT and OPEN `name`. */
async function connect(seeds, name, options = {}) {
  const leaderOf = async (conn) => {
    const { type, body } = await conn.call(message(LEADER, [['u64', 0]]))
    if (type !== SERVER) throw type === FAILURE ? failure(body) : new Error(`LEADER answered ${type}`)
    return readText(body, 8)[0]
  }
  let lastError = null
  for (let attempt = 0; attempt < 20; attempt++) {
    for (const seed of seeds.split(',')) {
      let conn = null
      try {
        conn = await Connection.open(seed)
        let leader = await leaderOf(conn)
        if (!leader) throw new Error(`${seed} knows no leader`)
        if (leader !== seed) {
          conn.close()
          conn = await Connection.open(leader)
          if ((await leaderOf(conn)) !== leader) throw new Error(`${leader} is not the leader`)
        }
        const welcome = await conn.call(message(CLIENT, [['u64', 1]]))
        if (welcome.type === FAILURE) throw failure(welcome.body)
        const opened = await conn.call(message(OPEN, [['text', name], ['u64', 0], ['text', '']]))
        if (opened.type === FAILURE) throw failure(opened.body)
        return new Database(conn, opened.body.readUInt32LE(0), options)
      } catch (err) {
        lastError = err
        if (conn) conn.close()
      }
    }
    await sleep(Math.min(1000, 100 << Math.min(attempt, 4)))
  }
  throw lastError
}

// ---------------------------------------------------------------------------------------------
// node-sqlite3's surface, as far as the benchmark uses it.

/** (params, callbacks) of a call's arguments, node-sqlite3's way: `(params..., [cb], [complete])`. */
function splitArgs(args) {
  let n = args.length
  const fns = []
  while (n > 0 && typeof args[n - 1] === 'function') fns.unshift(args[--n])
  let params = args.slice(0, n)
  if (params.length === 1 && Array.isArray(params[0])) params = params[0]
  return { params, fns }
}

class Database {
  constructor(conn, id, options) {
    this.conn = conn
    this.id = id
    this.busyTimeout = options.busyTimeout ?? 10000
  }

  /**
   * Sends `sql` as EXEC_SQL or QUERY_SQL (by its kind unless `asQuery` says), retrying BUSY;
   * `onRows(rows)` gets each part's rows; `done(err, result)` ends it ({ lastID, changes } for
   * an execution).
   */
  send(sql, params, onRows, done, asQuery = ROW_SQL.test(sql)) {
    if (BARE_BEGIN.test(sql)) sql = 'BEGIN IMMEDIATE'
    let msg
    try {
      msg = message(asQuery ? QUERY_SQL : EXEC_SQL, [['u64', this.id], ['text', sql], ['params', params]])
    } catch (err) {
      process.nextTick(done, err)
      return
    }
    let busySince = 0
    let delay = 1
    let parts = 0
    try {
      this.conn.request(msg, (type, body, lost) => {
        if (lost) return done(lost), true
        if (type === ROWS) {
          const part = readRows(body)
          parts++
          if (part.rows.length) onRows(part.rows)
          if (part.more) return false
          done(null)
        } else if (type === RESULT) {
          done(null, { lastID: readInt(body, 0), changes: readInt(body, 8) })
        } else if (type === FAILURE) {
          const err = failure(body)
          // BUSY before any row: nothing ran; send it again after a short, growing wait.
          if (err.errno === 5 && parts === 0) {
            busySince = busySince || Date.now()
            if (Date.now() - busySince < this.busyTimeout) {
              const wait = delay + Math.random() * delay
              delay = Math.min(delay * 2, 4)
              return wait
            }
          }
          done(err)
        } else {
          done(new Error(`unexpected answer type ${type}`))
        }
        return true
      })
    } catch (err) {
      process.nextTick(done, err)
    }
  }

  run(sql, ...args) {
    const { params, fns: [cb] } = splitArgs(args)
    this.send(sql, params, () => {}, (err, result) => {
      if (cb) cb.call({ sql, lastID: result ? result.lastID : 0, changes: result ? result.changes : 0 }, err || null)
    })
    return this
  }

  get(sql, ...args) {
    const { params, fns: [cb] } = splitArgs(args)
    let row
    this.send(sql, params, (rows) => { if (row === undefined) row = rows[0] }, (err) => {
      if (cb) cb.call(this, err || null, err ? undefined : row)
    })
    return this
  }

  all(sql, ...args) {
    const { params, fns: [cb] } = splitArgs(args)
    let all = null
    this.send(sql, params, (rows) => {
      if (!all) all = rows
      else for (const row of rows) all.push(row)
    }, (err) => {
      if (cb) cb.call(this, err || null, err ? undefined : all || [])
    })
    return this
  }

  /** Rows are delivered part by part, as each part arrives. */
  each(sql, ...args) {
    const { params, fns } = splitArgs(args)
    const [onRow, complete] = fns
    let count = 0
    this.send(sql, params, (rows) => {
      count += rows.length
      if (onRow) for (const row of rows) onRow.call(this, null, row)
    }, (err) => {
      if (err && onRow && !complete) onRow.call(this, err)
      if (complete) complete.call(this, err || null, err ? undefined : count)
    })
    return this
  }

  /** Several statements, no parameters: one EXEC_SQL. */
  exec(sql, cb) {
    this.send(sql, [], () => {}, (err) => cb && cb.call(this, err || null), false)
    return this
  }

  prepare(sql, ...args) {
    const { params, fns: [cb] } = splitArgs(args)
    const stmt = new Statement(this, sql, params)
    if (cb) process.nextTick(() => cb.call(stmt, null))
    return stmt
  }

  // Requests on a Database always run in order: nothing to do.
  serialize(fn) {
    if (fn) fn()
    return this
  }

  parallelize(fn) {
    return this.serialize(fn)
  }

  configure(option, value) {
    if (option === 'busyTimeout') this.busyTimeout = value
  }

  /** Closes the connection once what is queued on it has been answered. */
  close(cb) {
    this.conn.whenIdle(() => {
      this.conn.close()
      if (cb) cb(null)
    })
  }
}

/** A statement: its SQL and bound parameters, run through its Database. */
class Statement {
  constructor(db, sql, params) {
    this.db = db
    this.sql = sql
    this.params = params
  }

  bind(...args) {
    const { params, fns: [cb] } = splitArgs(args)
    this.params = params
    if (cb) process.nextTick(() => cb.call(this, null))
    return this
  }

  finalize(cb) {
    if (cb) process.nextTick(cb)
  }
}

for (const method of ['run', 'get', 'all', 'each']) {
  Statement.prototype[method] = function (...args) {
    const { params, fns } = splitArgs(args)
    this.db[method](this.sql, params.length ? params : this.params, ...fns)
    return this
  }
}

module.exports = { connect, Database }
