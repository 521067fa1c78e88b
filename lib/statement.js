'use strict'
// The Statement class: node-sqlite3's prepared statement (docs/node-sqlite3.md#statements). Each operation is one
// request to the engine, answered in call order; `get()` without parameters walks the result
// like a cursor; an operation after `finalize()` fails synchronously. run/get/all/each take the
// path of one-shot queries (lib/request.js `execute`), with the route `PREPARED` below.
//
// A Statement made while its Database closes is prepared only if that close fails; one made
// on a closed Database is never prepared. node-sqlite3 then reports the error once, to the
// prepare callback or as the Database's 'error', and the operations on that Statement are
// dropped (never called back), as those of any Statement whose prepare failed.

const EventEmitter = require('events')
const { parseParams } = require('./values')
const { misuseInCall } = require('./errors')
const { K, MODE } = require('./session')
const { kDatabase, isFunction, errorOf, splitCallback, scope, statementHandler, mapRows } = require('./callbacks')
const { execute } = require('./request')

const kDb = Symbol('db')
const kId = Symbol('id')
const kFinalized = Symbol('finalized')
const kFinalizing = Symbol('finalizing')
const kWaiting = Symbol('waiting') // operations made before the prepare was sent, or null
const kNeverPrepared = Symbol('neverPrepared')

class Statement {
  /** `new Statement(db, sql, [callback])`; normally made by `db.prepare()`. */
  constructor(db, sql, callback) {
    // The mark lib/database.js puts on Database.prototype: as `instanceof Database`, without
    // requiring lib/database.js (which requires this file, through lib/methods/).
    if (!db?.[kDatabase]) throw new TypeError('Database object expected')
    if (typeof sql !== 'string') throw new TypeError('SQL query expected')
    if (callback !== undefined && !isFunction(callback)) throw new TypeError('Callback expected')
    Object.defineProperty(this, 'sql', { value: sql, enumerable: false, writable: false, configurable: false })
    this[kDb] = db
    this[kFinalized] = false
    this[kNeverPrepared] = false
    this[kWaiting] = []
    this[kId] = db._statementId()
    const unavailable = db._unavailable(() => this._prepare(callback), callback && ((err) => callback.call(db, err)),
      () => {
        this[kNeverPrepared] = true
        this[kWaiting] = null
      })
    if (!unavailable) this._prepare(callback)
  }

  /** Sends the prepare, then the operations made while it waited for the Database. */
  _prepare(callback) {
    const db = this[kDb]
    const session = db._session
    const resource = scope('sqlite3.Statement.Prepare')
    db._send((id) => session.native.prepare(id, this[kId], this.sql), (kind, a, b, c) => {
      if (kind === K.ERROR) {
        const err = errorOf(a, b, c)
        if (callback) resource.runInAsyncScope(callback, undefined, err)
        else this.emit('error', err)
      } else if (callback) {
        resource.runInAsyncScope(callback, this, null)
      }
      resource.emitDestroy()
    })
    const waiting = this[kWaiting]
    this[kWaiting] = null
    for (const operation of waiting) operation()
  }

  /**
   * True when `operation` cannot be sent now: it is queued while the prepare waits for the
   * Database's close to finish, or dropped when this statement will never be prepared (or its
   * Database is gone, which a statement that is not finalized survives only when its prepare
   * failed). node-sqlite3 drops those too, without a callback.
   */
  _held(operation) {
    if (this[kWaiting] !== null) {
      this[kWaiting].push(operation)
      return true
    }
    if (this[kNeverPrepared]) return true
    const state = this[kDb]._state
    return !this[kFinalized] && (state === 'closed' || state === 'failed')
  }

  /** `_held()`, or else a finalized statement's error delivered: true when `operation` is not sent. */
  _gated(operation, callback) {
    if (this._held(operation)) return true
    if (!this[kFinalized]) return false
    this._finalizedError(callback)
    return true
  }

  _onError(err, callback) {
    if (callback) callback.call(this, err)
    else this.emit('error', err)
  }

  /** An operation on a finalized statement: the error is delivered before the call returns.
   *  While finalize() is still in flight, it is delivered when finalize completes (as in
   *  node-sqlite3, where finalize takes effect only once it has run). */
  _finalizedError(callback) {
    const deliver = (err) => {
      if (callback) callback.call(this, err)
      else this.emit('error', err)
    }
    const err = misuseInCall('Statement is already finalized')
    if (this[kFinalizing]) this[kFinalizing].push(() => deliver(err))
    else deliver(err)
    return this
  }

  run(...args) {
    execute(PREPARED, this[kDb], this, 'run', this.sql, args)
    return this
  }

  get(...args) {
    execute(PREPARED, this[kDb], this, 'get', this.sql, args)
    return this
  }

  all(...args) {
    execute(PREPARED, this[kDb], this, 'all', this.sql, args)
    return this
  }

  each(...args) {
    execute(PREPARED, this[kDb], this, 'each', this.sql, args)
    return this
  }

  map(...args) {
    const callback = args.pop()
    return this.all(...args, (err, rows) => mapRows(callback, err, rows))
  }

  bind(...args) {
    const { end, callback } = splitCallback(args)
    if (this._gated(() => this.bind(...args), callback)) return this
    const params = parseParams(args, end)
    const db = this[kDb]
    const session = db._session
    const handler = statementHandler(this, session, scope('sqlite3.Statement.Bind'), callback, undefined,
      (e, cb) => this._onError(e, cb))
    db._send((id) => session.native.bind(id, this[kId], params?.values, params?.names), handler)
    return this
  }

  reset(callback) {
    if (callback !== undefined && !isFunction(callback)) throw new TypeError('Argument 0 must be a function')
    if (this._gated(() => this.reset(callback), callback)) return this
    const db = this[kDb]
    const session = db._session
    const handler = statementHandler(this, session, scope('sqlite3.Statement.Reset'), callback, undefined,
      (e, cb) => this._onError(e, cb))
    db._send((id) => session.native.reset(id, this[kId]), handler)
    return this
  }

  /** Releases the statement; the callback gets no arguments. Returns the Database. */
  finalize(callback) {
    // Checked now, as node-sqlite3 does: a non-function would otherwise be called later.
    if (callback !== undefined && !isFunction(callback)) throw new TypeError('Argument 0 must be a function')
    const db = this[kDb]
    if (this._held(() => this.finalize(callback))) return db
    if (this[kFinalized]) {
      this._finalizedError(callback)
      return db
    }
    this[kFinalized] = true
    this[kFinalizing] = []
    const session = db._session
    const resource = scope('sqlite3.Statement.Finalize')
    db._send((id) => session.native.finalize(id, this[kId]), (kind) => {
      const waiting = this[kFinalizing]
      this[kFinalizing] = null
      if (kind === K.DONE && isFunction(callback)) resource.runInAsyncScope(callback, this)
      for (const deliver of waiting) deliver()
      resource.emitDestroy()
    })
    return db
  }
}

// The scope types of node-sqlite3's async resources.
const TYPES = {
  run: 'sqlite3.Statement.Run', get: 'sqlite3.Statement.Get', all: 'sqlite3.Statement.All', each: 'sqlite3.Statement.Each',
}

/** The route of a Statement's run/get/all/each through `execute` (lib/request.js). */
const PREPARED = {
  // node-sqlite3 reports a finalized statement's error to the first function.
  held: (stmt, retry, callback, complete) => stmt._gated(retry, callback || complete),
  bindsParameters: true,
  receiver: (stmt) => stmt,
  scope: (method) => scope(TYPES[method]),
  unclaimed: (stmt, err) => stmt.emit('error', err),
  send(db, stmt, handler, method, sql, params) {
    db._send((id) => db._session.native.execute(id, stmt[kId], MODE[method], params?.values, params?.names), handler)
  },
}

// node-sqlite3 copies EventEmitter's methods onto its classes instead of inheriting.
for (const name in EventEmitter.prototype) Statement.prototype[name] = EventEmitter.prototype[name]

module.exports = { Statement }
