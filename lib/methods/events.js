'use strict'
// The Database's events: listening for 'trace', 'profile' or 'change' turns the engine's hook
// of that name on (and the last listener removed turns it off), as in node-sqlite3; `_event`
// emits what the engine reports ('role' only when this process's role changes).

const EventEmitter = require('events')
const { HOOKS } = require('./configure')

module.exports = {
  on(type, listener) {
    EventEmitter.prototype.on.call(this, type, listener)
    if (HOOKS.has(type)) this.configure(type, true)
    return this
  },

  addListener(type, listener) {
    return this.on(type, listener)
  },

  removeListener(type, listener) {
    EventEmitter.prototype.removeListener.call(this, type, listener)
    if (HOOKS.has(type) && !this.listenerCount(type)) this.configure(type, false)
    return this
  },

  removeAllListeners(type) {
    EventEmitter.prototype.removeAllListeners.call(this, type)
    if (HOOKS.has(type)) this.configure(type, false)
    return this
  },

  /** An event of the session (src/js/convert.rs): a hook's report, this process's role, or a dqlite leader. */
  _event(name, a, b) {
    if (name === 'role') {
      const previous = this._cluster.role
      this._cluster = { role: a, sock: this._cluster.sock, masterPid: b }
      if (previous !== null && previous !== a) this.emit('role', a, b)
      return
    }
    if (name === 'leader') {
      // A dqlite:// Database's connection went to a leader: the first one, or another after
      // failover ('leader' event, with the one before).
      const previous = this._cluster.leader
      this._cluster = { ...this._cluster, leader: a }
      if (previous && previous !== a) this.emit('leader', a, previous)
      return
    }
    if (name === 'change') this.emit('change', a[0], a[1], a[2], a[3])
    else if (name === 'profile') this.emit('profile', a, b)
    else this.emit(name, a)
  },
}
