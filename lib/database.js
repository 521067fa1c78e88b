'use strict'
// The Database class: node-sqlite3's API (docs/node-sqlite3.md) on one engine session.
//
// Every call becomes one request, sent at once; the engine runs a session's requests in call
// order, so `serialize()` is always in effect (stricter than node-sqlite3's parallel mode,
// never weaker). Errors that node-sqlite3 delivers synchronously (closed database, finalized
// statement) are delivered synchronously here too.

const EventEmitter = require('events')
const { Session, K, MODE } = require('./session')
const { Statement } = require('./statement')
const { kDatabase, isFunction, errorOf, splitCallback, splitEachCallbacks, scope, NO_SCOPE, statementHandler, mapRows } =
  require('./callbacks')
const { parseParams } = require('./values')
const { misuse, misuseInCall } = require('./errors')
const { escape } = require('./escape')
const { pragmaKeyText, leadingPragmaKey } = require('./pragma-key')
const C = require('./constants')

const DEFAULT_MODE = C.OPEN_READWRITE | C.OPEN_CREATE | C.OPEN_FULLMUTEX
const HOOKS = new Set(['trace', 'profile', 'change'])

/**
 * How sqlite3-cluster 1.x applied a string key: `PRAGMA KEY = "x'<key>'"` (its `sanitize()`
 * doubled the first `'`) with AES-`bits`-CBC, 128 unless the app gave `bits`. The engine tries it
 * on a file the key does not open the 2.x way, to open (and move to SQLCipher 4) 1.x's files.
 */
function legacyKey(key, bits) {
  if (typeof key !== 'string') return undefined
  return { pass: `x'${key.replace("'", "''")}'`, bits: bits ?? 128 }
}

/** The receiver of `db.run/get/all/each` callbacks: a finished temporary Statement, whose
 *  `sql` is read-only and not enumerable (only `lastID`/`changes` are own enumerable keys). */
function QueryResult(sql) {
  Object.defineProperty(this, 'sql', { value: sql, enumerable: false, writable: false, configurable: false })
}

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
    this._state = 'opening'
    this._hooks = { trace: false, profile: false, change: false }
    this._nextStatement = 1
    this._bits = options.bits
    this._deferred = []
    const cluster = options.cluster
    this._cluster = cluster ? { role: null, sock: cluster.sock, masterPid: null } : { role: 'standalone', sock: null, masterPid: null }
    this._session = new Session(filename, (name, a, b) => this._event(name, a, b), cluster)
    const onOpen = options.onOpen
    const resource = scope('sqlite3.Database.Open')
    this._send(
      (id) => this._session.native.open(id, filename, mode, options.key ?? null, Boolean(options.deferredKey),
        legacyKey(options.key, options.bits), Boolean(options.strictKey), Boolean(options.verbose), options.busyTimeout ?? 1000, options.transactionTimeout ?? 0),
      (kind, a, b, c) => {
        if (kind === K.DONE) {
          this._state = 'open'
          if (callback) resource.runInAsyncScope(callback, this, null)
          this.emit('open')
          if (onOpen) onOpen(null)
        } else {
          this._state = 'failed'
          this._session.dispose()
          const err = errorOf(a, b, c)
          if (callback) resource.runInAsyncScope(callback, this, err)
          else if (onOpen) onOpen(err)
          else this.emit('error', err)
        }
        resource.emitDestroy()
      }
    )
  }

  get open() {
    return this._state === 'open' || this._state === 'closing'
  }

  /** `{ role, sock, masterPid }`: how this Database reaches its database file. */
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

  _event(name, a, b) {
    if (name === 'role') {
      const previous = this._cluster.role
      this._cluster = { role: a, sock: this._cluster.sock, masterPid: b }
      if (previous !== null && previous !== a) this.emit('role', a, b)
      return
    }
    if (name === 'change') this.emit('change', a[0], a[1], a[2], a[3])
    else if (name === 'profile') this.emit('profile', a, b)
    else this.emit(name, a)
  }

  /**
   * Handles a call made while the Database is closing or closed, as node-sqlite3 does. Returns
   * false when the call may go ahead; true when it was taken care of:
   * - closing: held until close() finishes; `retry()` makes the call again if the close
   *   failed (the Database stays open), otherwise `callback` gets "Database handle is closed"
   *   (see `_failDeferred`);
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

  _query(method, sql, args) {
    if (typeof sql !== 'string') throw new TypeError('SQL query expected')
    const each = method === 'each'
    const { end, callback, complete } = each ? splitEachCallbacks(args) : splitCallback(args)
    // node-sqlite3 reports these errors to the last function, without a receiver.
    if (this._unavailable(() => this._query(method, sql, args), complete || callback)) return this
    const keyText = pragmaKeyText(sql)
    const params = keyText === undefined ? parseParams(args, end) : undefined
    const session = this._session
    const stmt = callback || complete ? new QueryResult(sql) : undefined
    const resource = callback || complete ? scope(`sqlite3.Statement.${method}`) : NO_SCOPE
    const handler = statementHandler(stmt, session, resource, callback, complete,
      (err, cb) => {
        if (cb) cb.call(stmt, err)
        else throw err // node-sqlite3 emits it on the temporary Statement, where nobody listens
      })
    if (keyText !== undefined) {
      // Answered as the pragma would be: no row, no change, never an error (a wrong key shows
      // on the statements that read the file).
      const done = { run: K.RUN, get: K.NO_ROW, all: K.ROWS, each: K.EACH_END }[method]
      const id = session.track((kind, a, b, c) => {
        if (kind === K.ERROR) handler(kind, a, b, c)
        else if (done === K.RUN) handler(K.RUN, 0, 0)
        else if (done === K.ROWS) handler(K.ROWS, 0, [], [])
        else handler(done, null)
      })
      session.native.pragmaKey(id, keyText)
      return this
    }
    const id = session.track(handler)
    session.native.query(id, MODE[method], sql, params?.values, params?.names)
    return this
  }

  run(sql, ...args) {
    return this._query('run', sql, args)
  }

  get(sql, ...args) {
    return this._query('get', sql, args)
  }

  all(sql, ...args) {
    return this._query('all', sql, args)
  }

  each(sql, ...args) {
    return this._query('each', sql, args)
  }

  map(sql, ...args) {
    if (typeof sql !== 'string') throw new TypeError('SQL query expected')
    // Checked before the callback is wrapped: without a function, node-sqlite3 emits the
    // error on the Database instead of calling a missing callback.
    const last = args[args.length - 1]
    if (this._unavailable(() => this.map(sql, ...args), isFunction(last) ? last : undefined)) return this
    const callback = args.pop()
    return this._query('all', sql, [...args, (err, rows) => mapRows(callback, err, rows)])
  }

  prepare(sql, ...args) {
    if (typeof sql !== 'string') throw new TypeError('SQL query expected')
    const { callback } = splitCallback(args)
    const errBack = callback ? (err) => { if (err) callback(err) } : undefined
    const statement = new Statement(this, sql, errBack)
    return args.length ? statement.bind(...args) : statement
  }

  exec(sql, callback) {
    if (typeof sql !== 'string') throw new TypeError('Argument 0 must be a string')
    if (callback !== undefined && !isFunction(callback)) throw new TypeError('Argument 1 must be a function')
    if (this._unavailable(() => this.exec(sql, callback), callback?.bind(this))) return this
    const keyText = pragmaKeyText(sql)
    if (keyText !== undefined) {
      this._simple('sqlite3.Database.Exec', (id) => this._session.native.pragmaKey(id, keyText), callback)
      return this
    }
    const leading = leadingPragmaKey(sql)
    if (leading !== undefined) {
      // The key first (it never fails), then the rest of the script, in order.
      this._send((id) => this._session.native.pragmaKey(id, leading.text), () => {})
      sql = leading.rest
    }
    this._simple('sqlite3.Database.Exec', (id) => this._session.native.exec(id, sql), callback)
    return this
  }

  /** A request whose callback gets `(null)` or `(err)` with the Database as receiver; without a
   *  callback, an error is emitted on the Database. */
  _simple(type, send, callback, onDone) {
    const resource = scope(type)
    this._send(send, (kind, a, b, c) => {
      if (kind === K.ERROR) {
        const err = errorOf(a, b, c)
        if (callback) resource.runInAsyncScope(callback, this, err)
        else this.emit('error', err)
      } else {
        if (onDone) onDone()
        if (callback) resource.runInAsyncScope(callback, this, null)
      }
      resource.emitDestroy()
    })
  }

  /**
   * Worker1's `exec` (oo1 semantics, see src/protocol.rs `Script`): `callback(err, info)` where
   * info is `[columns | null, values, statements, changes, lastInsertRowId]` even when `err` is
   * set (`err.scriptCode`: SQLite's extended code, or -1 for oo1's own messages).
   */
  _script(sql, params, first, callback) {
    if (this._state !== 'open') return callback(misuse('Database is closed'), null)
    this._send((id) => this._session.native.script(id, sql, params?.values, params?.names, first), (kind, a, b, c) => {
      if (kind === K.SCRIPT) callback(b === undefined ? null : Object.assign(new Error(b), { scriptCode: c }), a)
      else callback(errorOf(a, b, c), null)
    })
  }

  /** Worker1's `export`: `callback(err, bytes)`. */
  _export(callback) {
    if (this._state !== 'open') return callback(misuse('Database is closed'), null)
    this._send((id) => this._session.native.export(id), (kind, a, b, c) => {
      if (kind === K.BYTES) callback(null, a)
      else callback(errorOf(a, b, c), null)
    })
  }

  wait(callback) {
    // Checked first, as node-sqlite3 does: a non-function would otherwise be called later, out
    // of the caller's reach.
    if (callback !== undefined && !isFunction(callback)) throw new TypeError('Argument 0 must be a function')
    if (this._unavailable(() => this.wait(callback), callback?.bind(this))) return this
    this._simple('sqlite3.Database.Wait', (id) => this._session.native.wait(id), callback)
    return this
  }

  close(callback) {
    if (callback !== undefined && !isFunction(callback)) throw new TypeError('Argument 0 must be a function')
    if (this._unavailable(() => this.close(callback), callback?.bind(this))) return this
    this._state = 'closing'
    const resource = scope('sqlite3.Database.Close')
    this._send((id) => this._session.native.close(id), (kind, a, b, c) => {
      const deferred = this._deferred
      this._deferred = []
      if (kind === K.ERROR) {
        this._state = 'open'
        const err = errorOf(a, b, c)
        if (callback) resource.runInAsyncScope(callback, this, err)
        else this.emit('error', err)
        for (const { retry } of deferred) retry()
      } else {
        this._state = 'closed'
        // In a cluster the session leaves its node first: a master's last Database hands the
        // database over to the clients before the callback runs.
        this._send((id) => this._session.native.leave(id), () => {
          this._session.dispose()
          if (callback) resource.runInAsyncScope(callback, this, null)
          this.emit('close')
          this._failDeferred(deferred)
          resource.emitDestroy()
        })
        return
      }
      resource.emitDestroy()
    })
    return this
  }

  /** Calls made while a successful close was in progress fail with "Database handle is closed",
   *  in call order; if none of them had a callback, the Database emits the error once. */
  _failDeferred(deferred) {
    if (!deferred.length) return
    for (const { abandon } of deferred) if (abandon) abandon()
    let delivered = false
    for (const { callback } of deferred) {
      if (callback) {
        delivered = true
        callback(misuse('Database handle is closed'))
      }
    }
    if (!delivered) this.emit('error', misuse('Database handle is closed'))
  }

  configure(option, ...values) {
    // The arguments are checked before the state, as node-sqlite3 does.
    if (arguments.length < 2) throw new TypeError('Expected 2arguments')
    if (option === 'busyTimeout') {
      if (typeof values[0] !== 'number') throw new TypeError('Value must be an integer')
    } else if (option === 'limit') {
      if (arguments.length < 3) throw new TypeError('Expected 3arguments')
      if (typeof values[0] !== 'number' || (values[0] | 0) !== values[0]) throw new TypeError('limit id must be an integer')
      if (typeof values[1] !== 'number' || (values[1] | 0) !== values[1]) throw new TypeError('limit value must be an integer')
    } else if (!HOOKS.has(option)) {
      throw new TypeError(`${option} is not a valid configuration option`)
    }
    if (this._unavailable(() => this.configure(option, ...values), undefined)) return this
    let a = 0
    let b = 0
    if (option === 'busyTimeout') {
      a = values[0] | 0
    } else if (option === 'limit') {
      a = values[0]
      b = values[1]
    } else {
      // node-sqlite3 toggles the hook whatever the value says.
      this._hooks[option] = !this._hooks[option]
      a = this._hooks[option] ? 1 : 0
    }
    this._send((id) => this._session.native.configure(id, option, a, b), () => {})
    return this
  }

  loadExtension(path, callback) {
    if (typeof path !== 'string') throw new TypeError('Argument 0 must be a string')
    if (callback !== undefined && !isFunction(callback)) throw new TypeError('Argument 1 must be a function')
    if (this._unavailable(() => this.loadExtension(path, callback), callback?.bind(this))) return this
    this._simple('sqlite3.Database.LoadExtension', (id) => this._session.native.loadExtension(id, path), callback)
    return this
  }

  interrupt() {
    if (this._state === 'closing') throw new Error('Database is closing')
    if (this._state !== 'open') throw new Error('Database is not open')
    this._session.native.interrupt()
    return this
  }

  serialize(callback) {
    return this._withOrder(callback)
  }

  parallelize(callback) {
    return this._withOrder(callback)
  }

  /** Calls run in call order either way (see the top of this file): only the callback runs. */
  _withOrder(callback) {
    if (callback !== undefined && !isFunction(callback)) throw new TypeError('Argument 0 must be a function')
    if (callback) callback.call(this)
    return this
  }

  /**
   * Applies a deferred SQLCipher key (`create({ bits })` without `key`). Resolves with the
   * Database; resolves at once if the database is keyed already or needs no key.
   */
  init(options = {}) {
    return new Promise((resolve, reject) => {
      const key = options?.key
      if (!(typeof key === 'string' && key.length > 0) && !Buffer.isBuffer(key)) {
        return reject(new TypeError('init({ key }): key must be a non-empty string or a Buffer'))
      }
      if (this._state !== 'open') return reject(misuse('Database is closed'))
      const legacy = legacyKey(key, options?.bits ?? this._bits)
      this._simple('sqlite3.Database.Key', (id) => this._session.native.key(id, key, legacy), (err) => {
        if (err) reject(err)
        else resolve(this)
      })
    })
  }

  /**
   * `db.backup(filename, [callback])` copies this database into `filename`;
   * `db.backup(filename, sourceName, destName, filenameIsDest, [callback])` chooses the
   * databases and the direction. Returns node-sqlite3's Backup object.
   */
  backup(...args) {
    const { Backup } = require('./backup')
    const backup = args.length <= 2
      ? new Backup(this, args[0], 'main', 'main', true, args[1])
      : new Backup(this, args[0], args[1], args[2], args[3], args[4])
    backup.retryErrors = [C.BUSY, C.LOCKED]
    return backup
  }

  escape(value) {
    return escape(value)
  }

  sanitize(value) {
    return escape(value)
  }

  on(type, listener) {
    EventEmitter.prototype.on.call(this, type, listener)
    if (HOOKS.has(type)) this.configure(type, true)
    return this
  }

  addListener(type, listener) {
    return this.on(type, listener)
  }

  removeListener(type, listener) {
    EventEmitter.prototype.removeListener.call(this, type, listener)
    if (HOOKS.has(type) && !this.listenerCount(type)) this.configure(type, false)
    return this
  }

  removeAllListeners(type) {
    EventEmitter.prototype.removeAllListeners.call(this, type)
    if (HOOKS.has(type)) this.configure(type, false)
    return this
  }
}

QueryResult.prototype = Object.create(Statement.prototype)

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
