'use strict'
// The `sqlite3` module's shape, for code that builds its own Databases (ORMs, query builders).
//
// `require('sqlite3-cluster')` is such a module, whose Databases join the cluster of their file
// in auto mode; `driver(options)` makes another one whose Databases apply `create()`'s options
// (key, secret, busyTimeout, serve/connect/standalone, sock…) to the filename given to the
// constructor. ORMs take it where they take the `sqlite3` module (knex `_driver()`, sequelize
// `dialectModule`, TypeORM `driver`, `sqlite`'s `driver`).

const path = require('path')
const { Database: Base } = require('./database')
const { Statement } = require('./statement')
const { Backup } = require('./backup')
const { parseOptions, sessionOptions } = require('./options')
const trace = require('./trace')
const { track } = require('./shutdown')
const constants = require('./constants')

// node-sqlite3's classes throw this exact text when called without `new` (V8's own text for
// a class names the class); the proxies change nothing else.
function requireNew(Class) {
  return new Proxy(Class, {
    apply() {
      throw new TypeError("Class constructors cannot be invoked without 'new'")
    },
  })
}

/**
 * node-sqlite3's `cached`: one Database per resolved filename, for the life of the process
 * (closed ones are not evicted, as there). `:memory:` and `''` are never cached.
 */
function cacheOf(DatabaseClass) {
  const cached = {
    objects: {},
    // A function, not a method: node-sqlite3's can be called with or without `new`.
    Database: function (file, a, b) {
      if (file === '' || file === ':memory:') return new DatabaseClass(file, a, b)
      // A dqlite:// URL names no file here: resolving it as a path would break it.
      const resolved = file.startsWith('dqlite://') ? file : path.resolve(file)
      let db = cached.objects[resolved]
      if (db === undefined) {
        db = cached.objects[resolved] = new DatabaseClass(resolved, a, b)
        return db
      }
      const callback = typeof a === 'number' ? b : a
      if (typeof callback === 'function') {
        const cb = () => callback.call(db, null)
        if (db.open) process.nextTick(cb)
        else db.once('open', cb)
      }
      return db
    },
  }
  return cached
}

/** A `sqlite3`-shaped module whose Databases are made with `optionsFor(filename, mode)`. */
function sqlite3Module(optionsFor, extra) {
  // A constructor sharing Database's prototype, so that every Database of this package is an
  // instance of every module's `Database` (create()'s too) and patching the prototype of one
  // patches all, as with node-sqlite3's single class. Subclasses work through `new.target`.
  const DriverDatabase = function Database(filename, mode, callback) {
    if (new.target === undefined) throw new TypeError("Class constructors cannot be invoked without 'new'")
    if (typeof filename !== 'string') throw new TypeError('String expected')
    // Tracked for closeOnExit(), as create()'s Databases are.
    return track(Reflect.construct(Base, [filename, mode, callback, optionsFor(filename)], new.target))
  }
  DriverDatabase.prototype = Base.prototype
  const module = {
    Database: DriverDatabase,
    Statement: requireNew(Statement),
    Backup: requireNew(Backup),
    ...constants,
    ...extra,
    verbose() {
      trace.enable()
      return module
    },
  }
  module.cached = cacheOf(module.Database)
  return module
}

/**
 * `driver(options)`: options are checked now (a TypeError names the wrong one); each Database
 * then applies them to its own filename.
 */
function driver(input = {}) {
  if (input === null || typeof input !== 'object') {
    throw new TypeError('sqlite3-cluster: driver() expects an options object (those of create(), without `filename`)')
  }
  if (input.filename !== undefined && input.filename !== null) {
    throw new TypeError('sqlite3-cluster: driver() takes no `filename`: each Database names its own file')
  }
  const checked = parseOptions({ ...input, filename: ':memory:' })
  if (checked.verbose) trace.enable()
  return sqlite3Module((filename) => sessionOptions(parseOptions({ ...input, filename })))
}

module.exports = { driver, sqlite3Module }
