'use strict'
// The callback side of the Database and Statement requests: node-sqlite3's rules for finding
// the callbacks among the arguments, the async scope a callback runs in, and the handler that
// turns the engine's answers into callback calls. Shared by the request path (lib/request.js),
// the Database's methods (lib/methods/), lib/statement.js and lib/backup.js; it requires none of
// them, so that they need not require each other.

const { AsyncResource } = require('async_hooks')
const { sqliteError } = require('./errors')
const { K } = require('./session')

/**
 * Marks the Database prototype (set in lib/database.js), so that `new Statement(db)` can check
 * it was given a Database without requiring lib/database.js. A Symbol of this module: like
 * `instanceof`, it holds only for the Databases of this copy of the package.
 */
const kDatabase = Symbol('database')

function isFunction(f) {
  return typeof f === 'function'
}

/**
 * The Error for an error message of the addon: `message`, `errno` and `code`, where `code` is
 * the code's name or, for an error that carries data, `{ code, ...data }` (`masterPid` of
 * CLUSTER_MASTER_EXISTS), whose data go on the error as properties.
 */
function errorOf(message, errno, code) {
  if (typeof code === 'string') return sqliteError(message, errno, code)
  const { code: name, ...data } = code
  return Object.assign(sqliteError(message, errno, name), data)
}

/** Splits `args` into parameters and the trailing callback (node-sqlite3's rule). */
function splitCallback(args) {
  const last = args.length - 1
  if (last >= 0 && isFunction(args[last])) return { end: last, callback: args[last] }
  return { end: args.length, callback: undefined }
}

/** For each(): two trailing functions are (row, complete); one is the row callback. */
function splitEachCallbacks(args) {
  const n = args.length
  if (n >= 2 && isFunction(args[n - 1]) && isFunction(args[n - 2])) {
    return { end: n - 2, callback: args[n - 2], complete: args[n - 1] }
  }
  if (n >= 1 && isFunction(args[n - 1])) return { end: n - 1, callback: args[n - 1], complete: undefined }
  return { end: n, callback: undefined, complete: undefined }
}

/**
 * The callback side of one request: runs callbacks in the async context of the call that made
 * the request, with the receiver and arguments node-sqlite3 uses.
 */
function scope(type) {
  return new AsyncResource(type, { requireManualDestroy: true })
}

/** Stands in for an AsyncResource when a request has no callback to run in it. */
const NO_SCOPE = { runInAsyncScope: (fn, receiver, ...args) => fn.apply(receiver, args), emitDestroy() {} }

function statementHandler(stmt, session, resource, callback, complete, onError) {
  let count = 0
  // An each() row callback threw. node-sqlite3 then delivers nothing more for that each():
  // no further row, no complete (the exception goes uncaught, see Session._dispatch).
  let stopped = false
  return (kind, a, b, c) => {
    if (stopped) {
      // Rows are still decoded when they name a new shape: later answers refer to it.
      if (kind === K.CHUNK && c !== undefined) session.rows(a, b, c)
      if (kind !== K.CHUNK) resource.emitDestroy()
      return
    }
    switch (kind) {
      case K.RUN:
        if (callback) {
          stmt.lastID = a
          stmt.changes = b
          resource.runInAsyncScope(callback, stmt, null)
        }
        break
      case K.ROW:
        if (callback) resource.runInAsyncScope(callback, stmt, null, session.row(a, b, c))
        else session.row(a, b, c)
        break
      case K.NO_ROW:
      case K.DONE:
        if (callback) resource.runInAsyncScope(callback, stmt, null)
        break
      case K.ROWS: {
        const rows = session.rows(a, b, c)
        if (callback) resource.runInAsyncScope(callback, stmt, null, rows)
        break
      }
      case K.CHUNK: {
        const rows = session.rows(a, b, c)
        if (callback) {
          try {
            resource.runInAsyncScope(() => {
              for (let i = 0; i < rows.length; i++) {
                count++
                callback.call(stmt, null, rows[i])
              }
            })
          } catch (e) {
            stopped = true
            throw e
          }
        }
        return // more messages follow for this request
      }
      case K.EACH_END:
        if (a !== null) onError(errorOf(a, b, c), callback)
        if (complete) resource.runInAsyncScope(complete, stmt, null, count)
        break
      case K.ERROR:
        onError(errorOf(a, b, c), callback)
        break
      case K.PREPARE_ERROR: {
        // node-sqlite3 reports a prepare error to the last function, without a receiver.
        const target = complete || callback
        if (target) resource.runInAsyncScope(target, undefined, errorOf(a, b, c))
        else onError(errorOf(a, b, c), undefined)
        break
      }
      case K.DROPPED:
        break
    }
    resource.emitDestroy()
  }
}

/** `map()`: an object keyed by the first column; the value is the second column (two columns),
 *  the whole row (more), or undefined (one). */
function mapRows(callback, err, rows) {
  if (err) return callback(err)
  const result = {}
  if (rows.length) {
    const keys = Object.keys(rows[0])
    const key = keys[0]
    if (keys.length > 2) {
      for (const row of rows) result[row[key]] = row
    } else {
      const value = keys[1]
      for (const row of rows) result[row[key]] = row[value]
    }
  }
  callback(null, result)
}

module.exports = {
  kDatabase, isFunction, errorOf, splitCallback, splitEachCallbacks, scope, NO_SCOPE, statementHandler, mapRows,
}
