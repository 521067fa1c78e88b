'use strict'
// SQLite WASM's Worker1 message API (docs/worker1.md) on this package's databases: real
// files, SQLCipher, and the cluster. `Worker1#receive(message)` handles one message at a time,
// in arrival order, and posts the replies through `post(message, transfer)`.
//
// The envelopes, result shapes, error texts and quirks follow the reference (sqlite-wasm
// 3.54.1) exactly, with two intended exceptions (README): a blob row with a string callback and
// resultRows is answered normally (the reference never answers), and a numeric `sql` is an
// error (the reference reads it as a WASM memory address).

const fs = require('fs')
const { create } = require('./create')
const native = require('./native')
const C = require('./constants')

const SCRIPT_ERROR = -1
const MAX_INT64 = 2n ** 63n - 1n
const MIN_INT64 = -(2n ** 63n)

/** oo1's error class: its name is what `errorClass` reports. */
class SQLite3Error extends Error {}
Object.defineProperty(SQLite3Error.prototype, 'name', { value: 'SQLite3Error' })

const toss = (...parts) => { throw new Error(parts.join(' ')) }
// oo1 takes a trailing object argument (null included) as the Error's options, not as text.
const toss3 = (...parts) => {
  if (parts.length > 1 && typeof parts[parts.length - 1] === 'object') parts.pop()
  throw new SQLite3Error(parts.join(' '))
}

// SQLite's result code names, primary and extended (sqlite3_js_rc_str).
const RC = {
  0: 'SQLITE_OK', 1: 'SQLITE_ERROR', 2: 'SQLITE_INTERNAL', 3: 'SQLITE_PERM', 4: 'SQLITE_ABORT', 5: 'SQLITE_BUSY',
  6: 'SQLITE_LOCKED', 7: 'SQLITE_NOMEM', 8: 'SQLITE_READONLY', 9: 'SQLITE_INTERRUPT', 10: 'SQLITE_IOERR',
  11: 'SQLITE_CORRUPT', 12: 'SQLITE_NOTFOUND', 13: 'SQLITE_FULL', 14: 'SQLITE_CANTOPEN', 15: 'SQLITE_PROTOCOL',
  16: 'SQLITE_EMPTY', 17: 'SQLITE_SCHEMA', 18: 'SQLITE_TOOBIG', 19: 'SQLITE_CONSTRAINT', 20: 'SQLITE_MISMATCH',
  21: 'SQLITE_MISUSE', 22: 'SQLITE_NOLFS', 23: 'SQLITE_AUTH', 24: 'SQLITE_FORMAT', 25: 'SQLITE_RANGE',
  26: 'SQLITE_NOTADB', 27: 'SQLITE_NOTICE', 28: 'SQLITE_WARNING', 100: 'SQLITE_ROW', 101: 'SQLITE_DONE',
}
const EXTENDED = {
  SQLITE_ERROR: ['MISSING_COLLSEQ', 'RETRY', 'SNAPSHOT', 'RESERVESIZE', 'KEY', 'UNABLE'],
  SQLITE_IOERR: ['READ', 'SHORT_READ', 'WRITE', 'FSYNC', 'DIR_FSYNC', 'TRUNCATE', 'FSTAT', 'UNLOCK', 'RDLOCK',
    'DELETE', 'BLOCKED', 'NOMEM', 'ACCESS', 'CHECKRESERVEDLOCK', 'LOCK', 'CLOSE', 'DIR_CLOSE', 'SHMOPEN',
    'SHMSIZE', 'SHMLOCK', 'SHMMAP', 'SEEK', 'DELETE_NOENT', 'MMAP', 'GETTEMPPATH', 'CONVPATH', 'VNODE', 'AUTH',
    'BEGIN_ATOMIC', 'COMMIT_ATOMIC', 'ROLLBACK_ATOMIC', 'DATA', 'CORRUPTFS', 'IN_PAGE', 'BADKEY', 'CODEC'],
  SQLITE_LOCKED: ['SHAREDCACHE', 'VTAB'],
  SQLITE_BUSY: ['RECOVERY', 'SNAPSHOT', 'TIMEOUT'],
  SQLITE_CANTOPEN: ['NOTEMPDIR', 'ISDIR', 'FULLPATH', 'CONVPATH', 'DIRTYWAL', 'SYMLINK'],
  SQLITE_CORRUPT: ['VTAB', 'SEQUENCE', 'INDEX'],
  SQLITE_READONLY: ['RECOVERY', 'CANTLOCK', 'ROLLBACK', 'DBMOVED', 'CANTINIT', 'DIRECTORY'],
  SQLITE_ABORT: ['ROLLBACK'],
  SQLITE_CONSTRAINT: ['CHECK', 'COMMITHOOK', 'FOREIGNKEY', 'FUNCTION', 'NOTNULL', 'PRIMARYKEY', 'TRIGGER',
    'UNIQUE', 'VTAB', 'ROWID', 'PINNED', 'DATATYPE'],
  SQLITE_NOTICE: ['RECOVER_WAL', 'RECOVER_ROLLBACK', 'RBU'],
  SQLITE_WARNING: ['AUTOINDEX'],
  SQLITE_AUTH: ['USER'],
  SQLITE_OK: ['LOAD_PERMANENTLY', 'SYMLINK'],
}
for (const [primary, names] of Object.entries(EXTENDED)) {
  const base = Number(Object.keys(RC).find((k) => RC[k] === primary))
  names.forEach((name, i) => { RC[base | ((i + 1) << 8)] = `${primary}_${name}` })
}

/** oo1's text for an SQLite error: "SQLITE_CONSTRAINT_UNIQUE: sqlite3 result code 2067: …". */
function sqliteFailure(code, text) {
  return new SQLite3Error(`${RC[code] ?? 'SQLITE_UNKNOWN'}: sqlite3 result code ${code}: ${text}`)
}

/** A Database error (from create(), close()) as oo1 would word it. */
function fromDatabaseError(err) {
  if (typeof err.errno === 'number' && err.errno > 0) {
    return sqliteFailure(err.errno, err.message.replace(/^SQLITE_[A-Z_]+: /, ''))
  }
  return new SQLite3Error(err.message)
}

const isBlob = (v) => v instanceof Uint8Array || v instanceof Int8Array || v instanceof ArrayBuffer

function blobBuffer(v) {
  return v instanceof ArrayBuffer ? Buffer.from(v) : Buffer.from(v.buffer, v.byteOffset, v.byteLength)
}

/** One bound value, with oo1's type rules (the addon binds integral numbers and BigInt as int64). */
function bindValue(v) {
  switch (typeof v) {
    case 'undefined': return null
    case 'number': case 'string': case 'boolean': return v
    case 'bigint':
      if (v > MAX_INT64 || v < MIN_INT64) toss3('BigInt value is too big to store without precision loss:', v)
      return v
    case 'object':
      if (v === null) return null
      if (isBlob(v)) return blobBuffer(v)
  }
  return toss3('Unsupported bind() argument type:', typeof v)
}

/** `exec`'s `bind` as the addon's parameters: array → positions, object → names (prefix
 *  included, as written in the SQL), anything else → ?1. */
function bindParams(bind) {
  if (Array.isArray(bind)) return { values: bind.map(bindValue) }
  if (bind !== null && typeof bind === 'object' && !isBlob(bind)) {
    const names = Object.keys(bind)
    return { values: names.map((k) => bindValue(bind[k])), names }
  }
  return { values: [bindValue(bind)] }
}

/** oo1's parseExecArgs: the SQL text and how rows are to be read; mutates `opt` as oo1 does. */
function parseExec(opt) {
  let sql = opt.sql
  if (sql !== undefined) {
    if (Array.isArray(sql)) sql = sql.join('')
    else if (isBlob(sql)) sql = blobBuffer(sql).toString('utf8')
    else if (typeof sql !== 'string') toss3('Missing SQL argument or unsupported SQL value type.')
  }
  switch (opt.returnValue) {
    case 'resultRows':
      if (!opt.resultRows) opt.resultRows = []
      break
    case 'saveSql':
      if (!opt.saveSql) opt.saveSql = []
      break
    case undefined: case 'this':
      break
    default:
      toss3('Invalid returnValue value:', opt.returnValue)
  }
  if (!opt.callback && !opt.returnValue && opt.rowMode !== undefined && !opt.resultRows) opt.resultRows = []
  let rowOf = null
  if (opt.callback || opt.resultRows) {
    const mode = opt.rowMode === undefined ? 'array' : opt.rowMode
    if (mode === 'array') rowOf = (row) => row
    else if (mode === 'object') {
      rowOf = (row, columns) => {
        const out = {}
        columns.forEach((name, i) => { out[name] = row[i] })
        return out
      }
    } else if (Number.isInteger(mode) && (mode | 0) === mode) {
      rowOf = (row) => {
        if (mode < 0 || mode >= row.length) toss3('Column index', mode, 'is out of range.')
        return row[mode]
      }
    } else if (typeof mode === 'string' && mode.length > 1 && mode[0] === '$') {
      const name = mode.slice(1)
      rowOf = (row, columns) => {
        const i = columns.lastIndexOf(name)
        if (i < 0) toss3('SQLITE_NOTFOUND: exec(): unknown result column:', name)
        return row[i]
      }
    } else {
      toss3('Invalid rowMode:', mode)
    }
  }
  return { sql, rowOf }
}

/** Blobs leave as plain Uint8Arrays of their own (a Buffer may be a view of a shared pool). */
function plain(v) {
  return Buffer.isBuffer(v) ? new Uint8Array(v) : v
}

function randomInt() {
  return Math.floor(Math.random() * 1e8)
}

class Worker1 {
  /** `post(message, transfer)` sends to the client. */
  constructor(post) {
    this.post = post
    this.dbs = new Map() // dbId -> { db, filename }
    this.list = [] // open dbIds, oldest first
    this.seq = 0
    this.queue = Promise.resolve()
  }

  /** Takes one message; messages are handled strictly one after another. */
  receive(message) {
    this.queue = this.queue.then(() => this.handle(message))
  }

  defaultId() {
    return this.list[0]
  }

  /** `dbs[dbId] || dbList[0]`: an unknown or closed id silently means the default db.
   *  Returns `{ id, db, filename }`, or undefined when nothing is open and it is not required. */
  dbOf(ev, required = true) {
    const id = (ev.dbId !== undefined && this.dbs.has(ev.dbId)) ? ev.dbId : this.defaultId()
    if (id === undefined) return required ? toss('DB is not opened.') : undefined
    return { id, ...this.dbs.get(id) }
  }

  async handle(ev) {
    if (ev === null || ev === undefined) return // the reference fails before answering
    const received = performance.now()
    const type = ev.type
    let result
    let replyType = type
    const transfer = []
    try {
      const handler = Object.prototype.hasOwnProperty.call(HANDLERS, type) ? HANDLERS[type] : undefined
      if (typeof handler !== 'function') toss('Unknown db worker message type:', type)
      result = await handler.call(this, ev, transfer)
    } catch (err) {
      replyType = 'error'
      result = {
        operation: type,
        message: err.message,
        errorClass: err.name,
        input: ev,
        stack: err.stack ? err.stack.split(/\n\s*/) : undefined,
      }
    }
    let dbId = ev.dbId
    if (!dbId) dbId = (result && result.dbId) || this.defaultId()
    this.post({
      type: replyType,
      dbId,
      messageId: ev.messageId,
      workerReceivedTime: received,
      workerRespondTime: performance.now(),
      departureTime: ev.departureTime,
      result,
    }, transfer)
  }
}

function call(db, method, ...args) {
  return new Promise((resolve, reject) => db[method](...args, (err, value) => (err ? reject(err) : resolve(value))))
}

const HANDLERS = {
  async open(ev) {
    const args = ev.args || {}
    if (args.simulateError) toss('Throwing because of simulateError flag.')
    const filename = args.filename || ''
    if (args.vfs !== undefined && args.vfs !== null && !native.vfsList().includes(args.vfs)) {
      throw sqliteFailure(1, `no such vfs: ${args.vfs}`)
    }
    const uri = filename.startsWith('file:')
    const options = {
      filename,
      mode: C.OPEN_READWRITE | C.OPEN_CREATE | C.OPEN_FULLMUTEX | (uri ? C.OPEN_URI : 0),
    }
    // This package's options: an encrypted file, shared through the cluster.
    for (const name of ['key', 'bits', 'sock', 'serve', 'connect', 'standalone', 'secret', 'connectTimeout',
      'busyTimeout', 'transactionTimeout']) {
      if (args[name] !== undefined) options[name] = isBlob(args[name]) ? blobBuffer(args[name]) : args[name]
    }
    if (uri) options.standalone = true
    let db
    try {
      db = await create(options)
    } catch (err) {
      throw err instanceof TypeError ? err : fromDatabaseError(err)
    }
    let dbId
    do dbId = `db#${++this.seq}:${randomInt()}:${randomInt()}`
    while (this.dbs.has(dbId))
    this.dbs.set(dbId, { db, filename })
    this.list.push(dbId)
    return { filename, persistent: false, dbId, vfs: native.vfsList()[0] }
  },

  async close(ev) {
    const entry = this.dbOf(ev, false)
    const response = { filename: entry && entry.filename }
    if (entry) {
      const unlink = ev.args && typeof ev.args === 'object' ? Boolean(ev.args.unlink) : false
      this.dbs.delete(entry.id)
      this.list.splice(this.list.indexOf(entry.id), 1)
      await new Promise((resolve) => entry.db.close(() => resolve()))
      if (unlink && entry.filename && entry.filename !== ':memory:' && !entry.filename.startsWith('file:')) {
        try {
          fs.unlinkSync(entry.filename)
        } catch {
          // best effort, like Worker1's `unlink`: a file that cannot be removed is not an error
        }
      }
    }
    return response
  },

  async exec(ev) {
    const rc = typeof ev.args === 'string' ? { sql: ev.args } : (ev.args || {})
    if (rc.rowMode === 'stmt') toss("Invalid rowMode for 'exec': stmt mode does not work in the Worker API.")
    else if (!rc.sql) toss("'exec' requires input SQL.")
    const { db } = this.dbOf(ev)
    const theCallback = rc.callback
    const streaming = typeof theCallback === 'string'
    if (streaming && !rc.columnNames) rc.columnNames = []
    const { sql, rowOf } = parseExec(rc)
    if (!sql) toss3('exec() requires an SQL string.')
    const bind = rc.bind ? bindParams(rc.bind) : undefined // oo1: a falsy bind is not bound
    const resultRows = Array.isArray(rc.resultRows) ? rc.resultRows : undefined
    const wantNames = Array.isArray(rc.columnNames)
    const first = rowOf ? 1 : wantNames ? 2 : 0
    const [err, info] = await new Promise((resolve) => db._script(sql, bind, first, (e, i) => resolve([e, i])))
    if (!info) throw fromDatabaseError(err)
    const [columns, values, statements, changes, lastInsertRowId] = info
    if (Array.isArray(rc.saveSql)) rc.saveSql.push(...statements)
    if (columns && wantNames) rc.columnNames.push(...columns)
    if (columns && rowOf) {
      const width = columns.length
      for (let o = 0, n = 1; o < values.length; o += width, n++) {
        const row = rowOf(values.slice(o, o + width).map(plain), columns)
        if (resultRows) resultRows.push(row)
        if (streaming) this.post({ type: theCallback, columnNames: rc.columnNames, rowNumber: n, row })
      }
    }
    if (err) throw err.scriptCode === SCRIPT_ERROR ? new SQLite3Error(err.message) : sqliteFailure(err.scriptCode, err.message)
    if (rc.countChanges) rc.changeCount = rc.countChanges === 64 ? BigInt(changes) : changes
    if (rc.lastInsertRowId) rc.lastInsertRowId = lastInsertRowId
    if (streaming) this.post({ type: theCallback, columnNames: rc.columnNames, rowNumber: null, row: undefined })
    return rc
  },

  async export(ev, transfer) {
    const { db, filename } = this.dbOf(ev)
    const bytes = new Uint8Array(await call(db, '_export'))
    transfer.push(bytes.buffer)
    return { byteArray: bytes, filename, mimetype: 'application/x-sqlite3' }
  },

  'config-get'() {
    const v = native.versions()
    const [major, minor, patch] = v.sqlite.split('.').map(Number)
    return {
      bigIntEnabled: true,
      version: {
        libVersion: v.sqlite,
        libVersionNumber: v.sqliteNumber,
        sourceId: v.sourceId,
        downloadVersion: major * 1000000 + minor * 10000 + patch * 100,
        sqlcipherVersion: native.cipherVersion(),
      },
      vfsList: native.vfsList(),
    }
  },

  toss() {
    toss('Testing worker exception')
  },
}

module.exports = { Worker1, SQLite3Error }
