'use strict'
// The two shapes of a Database's requests, and how their answers become node-sqlite3's
// callback calls.
//
// `execute` is the one path of run/get/all/each, for one-shot queries (`db.get(sql, …)`,
// lib/methods/queries.js) and prepared statements (`stmt.get(…)`, lib/statement.js) alike:
// the callbacks are found among the arguments, the call passes its owner's gate, the other
// arguments become parameters (lib/values.js), and the statement handler (lib/callbacks.js)
// turns the answers into callback calls with rows. `command` is the shape of the calls
// answered by success or an error only (exec, wait, loadExtension, init).

const { K } = require('./session')
const { errorOf, splitCallback, splitEachCallbacks, scope, statementHandler } = require('./callbacks')
const { parseParams } = require('./values')

/**
 * One run/get/all/each call (`method`) of `owner` on Database `db`: a one-shot query of `sql`
 * (`owner` is the Database) or a Statement (`owner`, whose SQL is `sql`); `args` are the
 * call's arguments after the SQL. What differs between owners is their `route`, an object
 * made once per kind of owner:
 * - `held(owner, retry, callback, complete)`: true when the call is not sent now: queued
 *   until `retry()` may send it, dropped, or refused with its error delivered;
 * - `bindsParameters`: false when the statement takes none (a one-shot `PRAGMA key`);
 * - `receiver(owner, sql, called)`: the `this` of the callbacks (`called`: the call has one);
 * - `scope(method, called)`: the async scope the callbacks run in;
 * - `unclaimed(owner, err)`: an error that no callback takes;
 * - `send(db, owner, handler, method, sql, params)`: sends the request (`db._send`).
 */
function execute(route, db, owner, method, sql, args) {
  const { end, callback, complete } = method === 'each' ? splitEachCallbacks(args) : splitCallback(args)
  if (route.held(owner, () => execute(route, db, owner, method, sql, args), callback, complete)) return
  const params = route.bindsParameters ? parseParams(args, end) : undefined
  const called = callback !== undefined || complete !== undefined
  const receiver = route.receiver(owner, sql, called)
  const handler = statementHandler(receiver, db._session, route.scope(method, called), callback, complete,
    (err, cb) => {
      if (cb) cb.call(receiver, err)
      else route.unclaimed(owner, err)
    })
  route.send(db, owner, handler, method, sql, params)
}

/**
 * A request whose callback gets `(null)` or `(err)` with the Database as receiver; without a
 * callback, an error is emitted on the Database. `send(id)` makes the native call.
 */
function command(db, type, send, callback) {
  const resource = scope(type)
  db._send(send, (kind, a, b, c) => {
    if (kind === K.ERROR) {
      const err = errorOf(a, b, c)
      if (callback) resource.runInAsyncScope(callback, db, err)
      else db.emit('error', err)
    } else if (callback) {
      resource.runInAsyncScope(callback, db, null)
    }
    resource.emitDestroy()
  })
}

module.exports = { execute, command }
