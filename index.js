'use strict'
// sqlite3-cluster: many Node.js processes, one SQLite / SQLCipher database.
//
//   const sqlite = require('sqlite3-cluster')
//   const db = await sqlite.create({ filename: 'app.db', key: process.env.DB_KEY })
//   db.get('SELECT 1 AS x', (err, row) => …)   // the node-sqlite3 API
//
// Besides create(), the module exports node-sqlite3's Database and Statement classes and
// constants, so code (and ORMs) written for `sqlite3` can use it as their driver.

const { create } = require('./lib/create')
const { Database } = require('./lib/database')
const { Statement } = require('./lib/statement')
const { escape, sanitize } = require('./lib/escape')
const trace = require('./lib/trace')
const constants = require('./lib/constants')

// node-sqlite3's classes throw this exact text when called without `new` (V8's own text for
// a class names the class); the proxies change nothing else.
function requireNew(Class) {
  return new Proxy(Class, {
    apply() {
      throw new TypeError("Class constructors cannot be invoked without 'new'")
    },
  })
}

const sqlite = {
  create: (opts) => create(opts),
  escape,
  sanitize,
  Database: requireNew(Database),
  Statement: requireNew(Statement),
  ...constants,
  verbose() {
    trace.enable()
    return sqlite
  },
}

module.exports = sqlite
