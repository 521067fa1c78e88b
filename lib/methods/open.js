'use strict'
// Opening the file and keying it: the open request the Database's constructor sends, and
// `db.init({ key })`, which applies a SQLCipher key the Database was opened without (a
// deferred key). Both accept 1.x's keys (`legacyKey`).

const { K } = require('../session')
const { misuse } = require('../errors')
const { scope, errorOf } = require('../callbacks')
const { command } = require('../request')

/**
 * How sqlite3-cluster 1.x applied a string key: `PRAGMA KEY = "x'<key>'"` (its `sanitize()`
 * doubled the first `'`) with AES-`bits`-CBC, 128 unless the app gave `bits`. The engine tries it
 * on a file the key does not open the 2.x way, to open (and move to SQLCipher 4) 1.x's files.
 */
function legacyKey(key, bits) {
  if (typeof key !== 'string') return undefined
  return { pass: `x'${key.replace("'", "''")}'`, bits: bits ?? 128 }
}

/**
 * Sends the open request of a new Database (`db.filename`, `db.mode`, create()'s `options`).
 * Success: 'open', then `callback(null)` and `options.onOpen(null)`; failure: the error goes to
 * `callback`, else to `options.onOpen`, else is emitted as 'error', and the session is released.
 */
function openDatabase(db, options, callback) {
  const onOpen = options.onOpen
  const resource = scope('sqlite3.Database.Open')
  db._send(
    (id) => db._session.native.open(id, db.filename, db.mode, options.key ?? null, Boolean(options.deferredKey),
      legacyKey(options.key, options.bits), Boolean(options.strictKey), Boolean(options.verbose), options.busyTimeout ?? 1000, options.transactionTimeout ?? 0,
      options.journalMode ?? null, options.readConnections ?? null),
    (kind, a, b, c) => {
      if (kind === K.DONE) {
        db._state = 'open'
        if (callback) resource.runInAsyncScope(callback, db, null)
        db.emit('open')
        if (onOpen) onOpen(null)
      } else {
        db._state = 'failed'
        db._session.dispose()
        const err = errorOf(a, b, c)
        if (callback) resource.runInAsyncScope(callback, db, err)
        else if (onOpen) onOpen(err)
        else db.emit('error', err)
      }
      resource.emitDestroy()
    }
  )
}

module.exports = {
  openDatabase,

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
      command(this, 'sqlite3.Database.Key', (id) => this._session.native.key(id, key, legacy), (err) => {
        if (err) reject(err)
        else resolve(this)
      })
    })
  },
}
