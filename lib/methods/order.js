'use strict'
// Call order: `serialize()`, `parallelize()` and `wait()`. The engine runs a Database's calls
// in call order whatever the mode (see lib/database.js), so serialize and parallelize only run
// their callback; `wait()` is a request that does nothing, so its callback runs after those of
// every call made before it.

const { isFunction } = require('../callbacks')
const { command } = require('../request')

function withOrder(db, callback) {
  if (callback !== undefined && !isFunction(callback)) throw new TypeError('Argument 0 must be a function')
  if (callback) callback.call(db)
  return db
}

module.exports = {
  serialize(callback) {
    return withOrder(this, callback)
  },

  parallelize(callback) {
    return withOrder(this, callback)
  },

  wait(callback) {
    // Checked first, as node-sqlite3 does: a non-function would otherwise be called later, out
    // of the caller's reach.
    if (callback !== undefined && !isFunction(callback)) throw new TypeError('Argument 0 must be a function')
    if (this._unavailable(() => this.wait(callback), callback?.bind(this))) return this
    command(this, 'sqlite3.Database.Wait', (id) => this._session.native.wait(id), callback)
    return this
  },
}
