'use strict'
// Error objects as node-sqlite3 makes them: a plain Error whose message is
// "SQLITE_<CODE>: <text>", with own enumerable `errno` (the primary result code) and `code`.
// Errors made from engine answers carry no stack frames, like node-sqlite3's (its errors are
// created in a native completion callback); `verbose` adds the JavaScript call site.

function sqliteError(message, errno, code) {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  const error = new Error(message)
  Error.stackTraceLimit = limit
  error.errno = errno
  error.code = code
  return error
}

const MISUSE = 21

function misuse(text) {
  return sqliteError(`SQLITE_MISUSE: ${text}`, MISUSE, 'SQLITE_MISUSE')
}

/**
 * A misuse found before the call returns (a closed Database, a finalized Statement).
 * node-sqlite3 creates these errors inside the call, so their stack shows the caller.
 */
function misuseInCall(text) {
  const error = new Error(`SQLITE_MISUSE: ${text}`)
  error.errno = MISUSE
  error.code = 'SQLITE_MISUSE'
  return error
}

module.exports = { sqliteError, misuse, misuseInCall }
