'use strict'
// `db.interrupt()`: stops the statement the engine is running for this Database, at once
// (not in call order); that statement fails with SQLITE_INTERRUPT.

module.exports = {
  interrupt() {
    if (this._state === 'closing') throw new Error('Database is closing')
    if (this._state !== 'open') throw new Error('Database is not open')
    this._session.native.interrupt()
    return this
  },
}
