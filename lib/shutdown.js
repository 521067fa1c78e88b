'use strict'
// closeOnExit([options]): one line that lets a process manager stop this process without
// errors in the others.
//
// A master that dies (PM2's SIGINT on `pm2 reload`/`stop`, Ctrl-C, `docker stop`'s SIGTERM)
// fails the requests its clients had sent with CLUSTER_MASTER_LOST and their transactions
// with CLUSTER_TXN_ABORTED. A master that *closes* its last Database first hands the file
// over: it answers what it read, tells its clients, and only then lets another process take
// over, so they see no error. On SIGINT or SIGTERM, this closes every open Database of this
// package in this process (waiting at most `timeout` ms), then ends the process by the same
// signal, as it would have ended without a handler: its parent sees the signal. Calls made
// after the signal are held, never answered, as if the process had ended at once.
//
// An app that listens for the signal itself decides when the process ends: then the
// Databases are closed and nothing else happens. Otherwise a second signal while they close
// ends the process at once. SIGHUP is not handled unless asked for (`signals`): daemons use
// it to reload their settings, and process managers stop with SIGINT or SIGTERM.
//
// Databases are tracked weakly (a WeakRef each, dropped when the Database is collected), so
// tracking never keeps a Database, or the process, alive.

const os = require('os')

/** Under PM2's kill_timeout (1600 ms), after which PM2 sends SIGKILL. */
const DEFAULT_TIMEOUT = 1500
const DEFAULT_SIGNALS = ['SIGINT', 'SIGTERM']
const LIVE = new Set(['opening', 'open', 'closing'])

const databases = new Set()
const collected = new FinalizationRegistry((ref) => databases.delete(ref))

/** Remembers a Database of this package (create(), `new Database()`) for closeOnExit(). */
function track(db) {
  const ref = new WeakRef(db)
  databases.add(ref)
  collected.register(db, ref)
  return db
}

const settings = { timeout: DEFAULT_TIMEOUT }
const handled = new Set()
let closing = false

/**
 * A Database of a process that is ending: calls made on it while it closes (and, for a
 * master's last Database, while it hands over) are held until the process ends, never run
 * nor answered, as if the signal had ended the process at once. Otherwise they would fail one
 * by one with "Database is closed", and an HTTP app would answer them with errors.
 */
function hold(db) {
  // `_unavailable()` is where every call of a Database that is not open is deferred or
  // failed; an open one (the close failed) goes on as usual.
  db._unavailable = function () {
    return this._state !== 'open' && this._state !== 'opening'
  }
}

/**
 * Closes every live Database (holding their later calls when `ending`); `done()` runs once
 * when the last one has closed (a master's last Database calls back after the handover) or
 * `timeout` ms have passed.
 */
function closeAll(timeout, ending, done) {
  const open = []
  for (const ref of databases) {
    const db = ref.deref()
    if (db !== undefined && LIVE.has(db._state)) open.push(db)
  }
  let pending = open.length
  let timer
  const finish = () => {
    if (pending < 0) return
    pending = -1
    clearTimeout(timer)
    done()
  }
  if (pending === 0) return finish()
  timer = setTimeout(finish, timeout)
  // A failed close (SQLITE_BUSY: a statement is not finalized) counts too: the process ends
  // all the same, only the handover of that file is lost.
  for (const db of open) {
    // close() first: on a Database the app is closing already, it waits for that close.
    db.close(() => {
      if (--pending === 0) finish()
    })
    if (ending) hold(db)
  }
}

/** Ends the process by `signal`, as if no listener had caught it. */
function exitBy(signal) {
  process.removeListener(signal, onSignal)
  process.kill(process.pid, signal)
  // Reached only if the signal did not end the process (another listener was added since):
  // the status a shell gives a process ended by that signal.
  process.exit(128 + os.constants.signals[signal])
}

function onSignal(signal) {
  const appListens = process.listenerCount(signal) > 1
  if (closing) {
    if (!appListens) exitBy(signal)
    return
  }
  closing = true
  // The process ends inside the last close callback, before the Database's 'close' event:
  // nothing runs after the signal's default action either.
  closeAll(settings.timeout, !appListens, () => {
    if (!appListens) exitBy(signal)
  })
}

function checkOptions(options) {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('sqlite3-cluster: closeOnExit() expects an options object ({ timeout, signals }) or nothing')
  }
  const { timeout = DEFAULT_TIMEOUT, signals = DEFAULT_SIGNALS } = options
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 0 || timeout > 0x7fffffff) {
    throw new TypeError(`sqlite3-cluster: closeOnExit() option \`timeout\` must be a whole number of milliseconds (got ${String(timeout)})`)
  }
  if (!Array.isArray(signals) || signals.some((s) => typeof s !== 'string' || !(s in os.constants.signals) ||
      s === 'SIGKILL' || s === 'SIGSTOP')) {
    throw new TypeError('sqlite3-cluster: closeOnExit() option `signals` must be an array of signal names such as ' +
      `'SIGINT', 'SIGTERM', 'SIGHUP' (got ${String(signals)})`)
  }
  return { timeout, signals }
}

/**
 * Installs the handlers (once per signal; a later call sets the timeout and may add signals).
 * `options.timeout`: ms to wait for the Databases to close (default 1500); `options.signals`:
 * default `['SIGINT', 'SIGTERM']`.
 */
function closeOnExit(options = {}) {
  const { timeout, signals } = checkOptions(options)
  settings.timeout = timeout
  for (const signal of signals) {
    if (handled.has(signal)) continue
    handled.add(signal)
    process.on(signal, onSignal)
  }
}

module.exports = { closeOnExit, track }
