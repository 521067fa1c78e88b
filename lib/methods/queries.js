'use strict'
// One-shot queries: `db.run/get/all/each/map(sql, [params…], [callback])`, node-sqlite3's
// statement prepared, run once and finalized, as one request (lib/request.js `execute`).
//
// A one-shot `PRAGMA key = …` is not run as SQL: it keys the Database's own session (see
// lib/pragma-key.js) and is answered as the pragma would be.

const { K, MODE } = require('../session')
const { Statement } = require('../statement')
const { isFunction, scope, NO_SCOPE, mapRows } = require('../callbacks')
const { execute } = require('../request')
const { pragmaKeyText } = require('../pragma-key')

/** The receiver of `db.run/get/all/each` callbacks: a finished temporary Statement, whose
 *  `sql` is read-only and not enumerable (only `lastID`/`changes` are own enumerable keys). */
function QueryResult(sql) {
  Object.defineProperty(this, 'sql', { value: sql, enumerable: false, writable: false, configurable: false })
}

QueryResult.prototype = Object.create(Statement.prototype)

/** The route of a one-shot query through `execute`: its owner is the Database. */
const ONE_SHOT = {
  // node-sqlite3 reports these errors to the last function, without a receiver.
  held: (db, retry, callback, complete) => db._unavailable(retry, complete || callback),
  bindsParameters: true,
  receiver: (db, sql, called) => (called ? new QueryResult(sql) : undefined),
  scope: (method, called) => (called ? scope(`sqlite3.Statement.${method}`) : NO_SCOPE),
  unclaimed: (db, err) => {
    throw err // node-sqlite3 emits it on the temporary Statement, where nobody listens
  },
  send(db, owner, handler, method, sql, params) {
    db._send((id) => db._session.native.query(id, MODE[method], sql, params?.values, params?.names), handler)
  },
}

// What a `PRAGMA key` answers for each method: no row, no change, never an error (a wrong key
// shows on the statements that read the file).
const KEYED = { run: K.RUN, get: K.NO_ROW, all: K.ROWS, each: K.EACH_END }

/** The route of a one-shot `PRAGMA key`: sent as a key of the session, answered as the pragma. */
const PRAGMA_KEY = {
  ...ONE_SHOT,
  bindsParameters: false,
  send(db, owner, handler, method, sql) {
    const done = KEYED[method]
    db._send((id) => db._session.native.pragmaKey(id, pragmaKeyText(sql)), (kind, a, b, c) => {
      if (kind === K.ERROR) handler(kind, a, b, c)
      else if (done === K.RUN) handler(K.RUN, 0, 0)
      else if (done === K.ROWS) handler(K.ROWS, 0, [], [])
      else handler(done, null)
    })
  },
}

function query(db, method, sql, args) {
  if (typeof sql !== 'string') throw new TypeError('SQL query expected')
  execute(pragmaKeyText(sql) === undefined ? ONE_SHOT : PRAGMA_KEY, db, db, method, sql, args)
  return db
}

module.exports = {
  run(sql, ...args) {
    return query(this, 'run', sql, args)
  },

  get(sql, ...args) {
    return query(this, 'get', sql, args)
  },

  all(sql, ...args) {
    return query(this, 'all', sql, args)
  },

  each(sql, ...args) {
    return query(this, 'each', sql, args)
  },

  map(sql, ...args) {
    if (typeof sql !== 'string') throw new TypeError('SQL query expected')
    // Checked before the callback is wrapped: without a function, node-sqlite3 emits the
    // error on the Database instead of calling a missing callback.
    const last = args[args.length - 1]
    if (this._unavailable(() => this.map(sql, ...args), isFunction(last) ? last : undefined)) return this
    const callback = args.pop()
    return query(this, 'all', sql, [...args, (err, rows) => mapRows(callback, err, rows)])
  },
}
