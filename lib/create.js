'use strict'
// create(opts | filename) -> Promise<Database> (DESIGN §2.1).

const { parseOptions } = require('./options')
const { Database } = require('./database')
const { clusterError } = require('./errors')
const verbose = require('./trace')

function create(input, defaults) {
  let options
  try {
    options = parseOptions(input, defaults)
  } catch (e) {
    return Promise.reject(e)
  }
  if (options.verbose) verbose.enable()
  if (options.serve || options.connect) {
    const which = options.serve ? 'serve' : 'connect'
    return Promise.reject(clusterError('CLUSTER_NOT_SUPPORTED',
      `sqlite3-cluster: \`${which}: true\` needs cluster mode, which this build does not have yet; ` +
      'use `standalone: true` (or leave serve/connect unset) to open the database in this process'))
  }
  return new Promise((resolve, reject) => {
    const db = new Database(options.filename, options.mode, undefined, {
      key: options.key,
      deferredKey: options.deferredKey,
      verbose: options.verbose,
      busyTimeout: options.busyTimeout,
      onOpen: (err) => (err ? reject(err) : resolve(db)),
    })
  })
}

module.exports = { create }
