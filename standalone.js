'use strict'
// require('sqlite3-cluster/standalone'): create() that always opens the database in this
// process, whatever serve/connect say.

const base = require('./index')
const { create } = require('./lib/create')

function standalone(opts) {
  const options = typeof opts === 'string' ? { filename: opts } : opts
  if (options === null || typeof options !== 'object') return create(options)
  return create({ ...options, standalone: true, serve: undefined, connect: undefined })
}

module.exports = { ...base, create: standalone }
