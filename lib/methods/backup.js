'use strict'
// Copies of the database: `db.backup(…)`, node-sqlite3's online backup into another file
// (lib/backup.js), and Worker1's `export` (`_export`), the database as one byte array.

const { Backup } = require('../backup')
const { misuse } = require('../errors')
const { errorOf } = require('../callbacks')
const { K } = require('../session')
const C = require('../constants')

module.exports = {
  /**
   * `db.backup(filename, [callback])` copies this database into `filename`;
   * `db.backup(filename, sourceName, destName, filenameIsDest, [callback])` chooses the
   * databases and the direction. Returns node-sqlite3's Backup object.
   */
  backup(...args) {
    const backup = args.length <= 2
      ? new Backup(this, args[0], 'main', 'main', true, args[1])
      : new Backup(this, args[0], args[1], args[2], args[3], args[4])
    backup.retryErrors = [C.BUSY, C.LOCKED]
    return backup
  },

  /** Worker1's `export`: `callback(err, bytes)`. */
  _export(callback) {
    if (this._state !== 'open') return callback(misuse('Database is closed'), null)
    this._send((id) => this._session.native.export(id), (kind, a, b, c) => {
      if (kind === K.BYTES) callback(null, a)
      else callback(errorOf(a, b, c), null)
    })
  },
}
