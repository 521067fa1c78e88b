'use strict'
// Scripts: `db.exec(sql, [callback])`, node-sqlite3's run of every statement of a script, and
// Worker1's `exec` (`_script`, oo1's semantics: the rows and counts of the script come back).

const { misuse } = require('../errors')
const { isFunction, errorOf } = require('../callbacks')
const { command } = require('../request')
const { K } = require('../session')
const { pragmaKeyText, leadingPragmaKey } = require('../pragma-key')

module.exports = {
  exec(sql, callback) {
    if (typeof sql !== 'string') throw new TypeError('Argument 0 must be a string')
    if (callback !== undefined && !isFunction(callback)) throw new TypeError('Argument 1 must be a function')
    if (this._unavailable(() => this.exec(sql, callback), callback?.bind(this))) return this
    const keyText = pragmaKeyText(sql)
    if (keyText !== undefined) {
      command(this, 'sqlite3.Database.Exec', (id) => this._session.native.pragmaKey(id, keyText), callback)
      return this
    }
    const leading = leadingPragmaKey(sql)
    if (leading !== undefined) {
      // The key first (it never fails), then the rest of the script, in order.
      this._send((id) => this._session.native.pragmaKey(id, leading.text), () => {})
      sql = leading.rest
    }
    command(this, 'sqlite3.Database.Exec', (id) => this._session.native.exec(id, sql), callback)
    return this
  },

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
  },
}
