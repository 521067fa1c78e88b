'use strict'
// sqlite3-cluster: many Node.js processes, one SQLite / SQLCipher database.
//
//   const sqlite = require('sqlite3-cluster')
//   const db = await sqlite.create({ filename: 'app.db', key: process.env.DB_KEY })
//   db.get('SELECT 1 AS x', (err, row) => …)   // the node-sqlite3 API
//
// The module also has the shape of the `sqlite3` module (node-sqlite3): `new Database(file)`
// joins the cluster of its file like create(), so an app and its ORM can install this package
// under the name `sqlite3`. `driver(options)` gives such a module with create()'s options.
// `closeOnExit()` closes them all on SIGINT/SIGTERM, so that a master hands the file over
// before a process manager's stop or reload ends it.

const { create } = require('./lib/create')
const { driver, sqlite3Module } = require('./lib/driver')
const { parseOptions, sessionOptions } = require('./lib/options')
const { escape, sanitize } = require('./lib/escape')
const { closeOnExit } = require('./lib/shutdown')

module.exports = sqlite3Module((filename) => sessionOptions(parseOptions({ filename })), {
  create: (opts) => create(opts),
  closeOnExit,
  driver,
  escape,
  sanitize,
})
