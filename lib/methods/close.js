'use strict'
// `db.close([callback])`. Calls made while the close is in flight wait for it (see
// `Database#_unavailable`): they run if it fails, and fail with "Database handle is closed" if
// it succeeds. In a cluster the session leaves its node before the callback runs.

const { misuse } = require('../errors')
const { isFunction, scope, errorOf } = require('../callbacks')
const { K } = require('../session')

/** Calls made while a successful close was in progress fail with "Database handle is closed",
 *  in call order; if none of them had a callback, the Database emits the error once. */
function failDeferred(db, deferred) {
  if (!deferred.length) return
  for (const { abandon } of deferred) if (abandon) abandon()
  let delivered = false
  for (const { callback } of deferred) {
    if (callback) {
      delivered = true
      callback(misuse('Database handle is closed'))
    }
  }
  if (!delivered) db.emit('error', misuse('Database handle is closed'))
}

module.exports = {
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
          failDeferred(this, deferred)
          resource.emitDestroy()
        })
        return
      }
      resource.emitDestroy()
    })
    return this
  },
}
