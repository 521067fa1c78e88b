'use strict'
// The Backup class: node-sqlite3's online backup (`db.backup(...)`, its src/backup.cc). The engine of
// the file runs it (in a cluster client, the master's), one request per step, in the order of
// the Database's other calls. An encrypted database is backed up with its own key.

const EventEmitter = require('events')
const path = require('path')
const { K } = require('./session')
const { misuse } = require('./errors')
const { kDatabase, scope, errorOf } = require('./callbacks')

const kDb = Symbol('db')
const kId = Symbol('id')
const kState = Symbol('state')

function readOnly(target, name, value) {
  Object.defineProperty(target, name, { value, enumerable: false, writable: false, configurable: false })
}

/** A path the master opens as this process means it: relative paths are resolved here. */
function absolute(filename) {
  if (filename === '' || filename === ':memory:' || filename.startsWith('file:')) return filename
  return path.resolve(filename)
}

class Backup {
  /** `new Backup(db, filename, sourceName, destName, filenameIsDest, [callback])`. */
  constructor(db, filename, sourceName, destName, filenameIsDest, callback) {
    // The mark lib/database.js puts on its prototype (as `instanceof Database`, without a require
    // cycle: database.js requires this file, through lib/methods/backup.js, for db.backup()).
    if (!db?.[kDatabase]) throw new TypeError('Database object expected')
    if (typeof filename !== 'string') throw new TypeError('Filename expected')
    if (typeof sourceName !== 'string') throw new TypeError('Source database name expected')
    if (typeof destName !== 'string') throw new TypeError('Destination database name expected')
    if (typeof filenameIsDest !== 'boolean') throw new TypeError('Direction flag expected')
    if (callback !== undefined && typeof callback !== 'function') throw new TypeError('Callback expected')
    readOnly(this, 'filename', filename)
    readOnly(this, 'sourceName', sourceName)
    readOnly(this, 'destName', destName)
    readOnly(this, 'filenameIsDest', filenameIsDest)
    this[kDb] = db
    this[kId] = db._statementId()
    this[kState] = {
      inited: false, pending: 0, finished: false, completed: false, failed: false,
      remaining: -1, pageCount: -1, retryErrors: [],
    }
    const state = this[kState]
    if (!db.open) {
      this._fail(misuse('Database is closed'), callback)
      state.finished = true
      state.failed = true
      return
    }
    const resource = scope('sqlite3.Backup.Initialize')
    state.pending++
    db._send((id) => db._session.native.backupStart(id, this[kId], absolute(filename), sourceName, destName, filenameIsDest),
      (kind, a, b, c) => {
        state.pending--
        if (kind === K.ERROR) {
          state.finished = true
          resource.runInAsyncScope(() => this._fail(errorOf(a, b, c), callback))
          state.failed = true // after the callback, as node-sqlite3
        } else {
          state.inited = true
          if (callback) resource.runInAsyncScope(callback, this, null)
        }
        resource.emitDestroy()
      })
  }

  get idle() {
    const state = this[kState]
    return state.inited && state.pending === 0
  }

  get completed() {
    return this[kState].completed
  }

  get failed() {
    return this[kState].failed
  }

  get remaining() {
    return this[kState].remaining
  }

  get pageCount() {
    return this[kState].pageCount
  }

  get retryErrors() {
    return this[kState].retryErrors
  }

  set retryErrors(value) {
    if (!Array.isArray(value)) throw new Error('retryErrors must be an array')
    this[kState].retryErrors = value
  }

  _fail(err, callback) {
    if (callback) callback.call(this, err)
    else this.emit('error', err)
  }

  /** A call on a finished backup fails at once, as node-sqlite3's (its queue is cleaned). */
  _finishedCall(callback) {
    if (this[kState].inited || this[kState].pending) this._fail(misuse('Backup is already finished'), callback)
    return this
  }

  step(pages, callback) {
    // node-sqlite3 takes any number and truncates it.
    if (typeof pages !== 'number') throw new TypeError('Argument 0 must be an integer')
    pages = Math.trunc(pages) | 0
    if (callback !== undefined && typeof callback !== 'function') throw new TypeError('Argument 1 must be a function')
    const state = this[kState]
    if (state.finished) return this._finishedCall(callback)
    const db = this[kDb]
    const retry = state.retryErrors.filter((code) => Number.isInteger(code))
    const resource = scope('sqlite3.Backup.Step')
    state.pending++
    db._send((id) => db._session.native.backupStep(id, this[kId], pages, retry), (kind, a, b, c) => {
      // The backup stays busy (not idle) while its callback runs, as node-sqlite3's.
      if (kind === K.BACKUP) {
        state.remaining = a
        state.pageCount = b
      }
      if (kind === K.BACKUP && !Array.isArray(c)) {
        if (c === 1) state.completed = true
        if (callback) resource.runInAsyncScope(callback, this, null, c === 1)
      } else {
        const err = kind === K.BACKUP ? errorOf(c[0], c[1], c[2]) : errorOf(a, b, c)
        if (retry.length > 0 && !retry.includes(err.errno)) state.failed = true
        resource.runInAsyncScope(() => this._fail(err, callback))
      }
      state.pending--
      resource.emitDestroy()
    })
    return this
  }

  finish(callback) {
    if (callback !== undefined && typeof callback !== 'function') throw new TypeError('Argument 0 must be a function')
    const state = this[kState]
    if (state.finished) return this._finishedCall(callback)
    state.finished = true
    const db = this[kDb]
    const resource = scope('sqlite3.Backup.Finish')
    // The backup stays busy (not idle) until the callback has run, as node-sqlite3's.
    state.pending++
    const done = () => {
      if (!state.completed) state.failed = true
      if (callback) resource.runInAsyncScope(callback, this)
      state.pending--
      resource.emitDestroy()
    }
    if (state.completed || state.failed || !db.open) {
      // The engine let go of it already (a complete copy, a failed step, a closed Database).
      process.nextTick(done)
      return this
    }
    db._send((id) => db._session.native.backupFinish(id, this[kId]), done)
    return this
  }
}

// node-sqlite3 copies EventEmitter's methods onto its classes instead of inheriting.
for (const name in EventEmitter.prototype) {
  if (!Object.prototype.hasOwnProperty.call(Backup.prototype, name)) {
    Backup.prototype[name] = EventEmitter.prototype[name]
  }
}

module.exports = { Backup }
