'use strict'
// What changes the connection's behaviour: `db.configure(option, …)` (busyTimeout, limit and
// the event hooks) and `db.loadExtension(path, [callback])`.

const { isFunction } = require('../callbacks')
const { command } = require('../request')

/** The options that turn an event hook on or off; the event of the same name is emitted. */
const HOOKS = new Set(['trace', 'profile', 'change'])

module.exports = {
  HOOKS,

  configure(option, ...values) {
    // The arguments are checked before the state, as node-sqlite3 does.
    if (arguments.length < 2) throw new TypeError('Expected 2arguments')
    if (option === 'busyTimeout') {
      if (typeof values[0] !== 'number') throw new TypeError('Value must be an integer')
    } else if (option === 'limit') {
      if (arguments.length < 3) throw new TypeError('Expected 3arguments')
      if (typeof values[0] !== 'number' || (values[0] | 0) !== values[0]) throw new TypeError('limit id must be an integer')
      if (typeof values[1] !== 'number' || (values[1] | 0) !== values[1]) throw new TypeError('limit value must be an integer')
    } else if (!HOOKS.has(option)) {
      throw new TypeError(`${option} is not a valid configuration option`)
    }
    if (this._unavailable(() => this.configure(option, ...values), undefined)) return this
    let a = 0
    let b = 0
    if (option === 'busyTimeout') {
      a = values[0] | 0
    } else if (option === 'limit') {
      a = values[0]
      b = values[1]
    } else {
      // node-sqlite3 toggles the hook whatever the value says.
      this._hooks[option] = !this._hooks[option]
      a = this._hooks[option] ? 1 : 0
    }
    this._send((id) => this._session.native.configure(id, option, a, b), () => {})
    return this
  },

  loadExtension(path, callback) {
    if (typeof path !== 'string') throw new TypeError('Argument 0 must be a string')
    if (callback !== undefined && !isFunction(callback)) throw new TypeError('Argument 1 must be a function')
    if (this._unavailable(() => this.loadExtension(path, callback), callback?.bind(this))) return this
    command(this, 'sqlite3.Database.LoadExtension', (id) => this._session.native.loadExtension(id, path), callback)
    return this
  },
}
