'use strict'
// require('sqlite3-cluster/promiser'): SQLite WASM's sqlite3Worker1Promiser and its v2 form,
// driving this package's Worker1 in a worker thread (lib/promiser.js).

module.exports = require('./lib/promiser')
