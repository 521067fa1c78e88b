'use strict'
// The Database class: node-sqlite3's API (docs/node-sqlite3.md) on one engine session. This
// file holds the class, its state and how a request is sent; each family of methods is a file
// of lib/methods/, attached to the prototype at the bottom.
//
// Every call becomes one request, sent at once; the engine runs a session's requests in call
// order, so `serialize()` is always in effect (stricter than node-sqlite3's parallel mode,
// never weaker). Errors that node-sqlite3 delivers synchronously (closed database, finalized
// statement) are delivered synchronously here too.

const EventEmitter = require('events')
const { Session } = require('./session')
const { kDatabase, isFunction } = require('./callbacks')
const { misuseInCall } = require('./errors')
const { escape } = require('./escape')
const C = require('./constants')
const { openDatabase, ...key } = require('./methods/open')
const queries = require('./methods/queries')
const statements = require('./methods/prepare')
const scripts = require('./methods/exec')
const order = require('./methods/order')
const interruption = require('./methods/interrupt')
const closing = require('./methods/close')
const configuration = require('./methods/configure')
const events = require('./methods/events')
const copies = require('./methods/backup')

const DEFAULT_MODE = C.OPEN_READWRITE | C.OPEN_CREATE | C.OPEN_FULLMUTEX

class Database {
  /**
   * `new Database(filename, [mode], [callback])`, as node-sqlite3. `create()` passes a fourth
   * argument with this package's options (key, bits, verbose, busyTimeout).
   */
  constructor(...args) {
    const [filename, modeArg, callbackArg, options = {}] = args
    if (typeof filename !== 'string') throw new TypeError('String expected')
    let mode = DEFAULT_MODE
    let callback
    if (isFunction(modeArg)) callback = modeArg
    else if (typeof modeArg === 'number' && (modeArg | 0) === modeArg) {
      mode = modeArg
      if (isFunction(callbackArg)) callback = callbackArg
    }
    Object.defineProperty(this, 'filename', { value: filename, enumerable: false, writable: false, configurable: false })
    Object.defineProperty(this, 'mode', { value: mode, enumerable: false, writable: false, configurable: false })
    // 'opening' → 'open' ⇄ 'closing' → 'closed', or 'opening' → 'failed'.
    this._state = 'opening'
    this._hooks = { trace: false, profile: false, change: false }
    this._nextStatement = 1
    this._bits = options.bits
    this._deferred = []
    const cluster = options.cluster
    this._cluster = cluster ? { role: null, sock: cluster.sock, masterPid: null }
      : filename.startsWith('dqlite://') ? { role: 'dqlite', sock: null, masterPid: null, leader: null }
        : { role: 'standalone', sock: null, masterPid: null }
    this._session = new Session(filename, (name, a, b) => this._event(name, a, b), cluster)
    openDatabase(this, options, callback)
  }

  get open() {
    return this._state === 'open' || this._state === 'closing'
  }

  /** `{ role, sock, masterPid }`: how this Database reaches its database file; a dqlite:// one adds `leader`. */
  get cluster() {
    return { ...this._cluster }
  }

  _statementId() {
    return this._nextStatement++
  }

  /** Sends one request: `send(id)` makes the native call, `handler` receives the answer. */
  _send(send, handler) {
    const id = this._session.track(handler)
    send(id)
  }

  /**
   * Handles a call made while the Database is closing or closed, as node-sqlite3 does. Returns
   * false when the call may go ahead; true when it was taken care of:
   * - closing: held until close() finishes; `retry()` makes the call again if the close
   *   failed (the Database stays open), otherwise `callback` gets "Database handle is closed"
   *   (see lib/methods/close.js);
   * - closed: `callback` gets "Database is closed" before this returns, or, without one, the
   *   Database emits it (which throws when nobody listens), so that no call is left hanging.
   * `callback` is called as given: callers bind it when node-sqlite3 passes the Database as
   * receiver. `abandon()` runs first when the call will never be made (a Statement drops the
   * operations queued on it).
   */
  _unavailable(retry, callback, abandon) {
    if (this._state === 'open' || this._state === 'opening') return false
    if (this._state === 'closing') {
      this._deferred.push({ retry, callback, abandon })
      return true
    }
    if (abandon) abandon()
    const err = misuseInCall('Database is closed')
    if (callback) callback(err)
    else this.emit('error', err)
    return true
  }

  escape(value) {
    return escape(value)
  }

  sanitize(value) {
    return escape(value)
  }
}

/** Puts `methods` on the prototype as a class body would: writable, configurable, not enumerable. */
function attach(methods) {
  for (const [name, method] of Object.entries(methods)) {
    Object.defineProperty(Database.prototype, name, { value: method, writable: true, enumerable: false, configurable: true })
  }
}

attach({
  run: queries.run, get: queries.get, all: queries.all, each: queries.each, map: queries.map,
  prepare: statements.prepare,
  exec: scripts.exec, _script: scripts._script,
  wait: order.wait, serialize: order.serialize, parallelize: order.parallelize,
  interrupt: interruption.interrupt,
  close: closing.close,
  configure: configuration.configure, loadExtension: configuration.loadExtension,
  init: key.init,
  backup: copies.backup, _export: copies._export,
  on: events.on, addListener: events.addListener, removeListener: events.removeListener,
  removeAllListeners: events.removeAllListeners, _event: events._event,
})

// Lets `new Statement(db)` tell a Database from anything else without requiring this file.
Object.defineProperty(Database.prototype, kDatabase, { value: true })

// node-sqlite3 copies EventEmitter's methods onto its classes instead of inheriting; the
// Database's own on/addListener/removeListener/removeAllListeners stay.
for (const name in EventEmitter.prototype) {
  if (!Object.prototype.hasOwnProperty.call(Database.prototype, name)) {
    Database.prototype[name] = EventEmitter.prototype[name]
  }
}

module.exports = { Database }
