'use strict'
// create(opts | filename) -> Promise<Database> (docs/api.md#entry-points).

const { parseOptions, sessionOptions } = require('./options')
const { Database } = require('./database')
const verbose = require('./trace')
const { track } = require('./shutdown')

function create(input, defaults) {
  let options
  try {
    options = parseOptions(input, defaults)
  } catch (e) {
    return Promise.reject(e)
  }
  if (options.verbose) verbose.enable()
  return new Promise((resolve, reject) => {
    const db = new Database(options.filename, options.mode, undefined, {
      ...sessionOptions(options),
      // create() reports an encrypted file opened without its key at once; a Database made by
      // the constructor opens, as node-sqlite3's does, and waits for a `PRAGMA key`.
      strictKey: true,
      onOpen: (err) => (err ? reject(err) : resolve(db)),
    })
    track(db)
  })
}

module.exports = { create }
