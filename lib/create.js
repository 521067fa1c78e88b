'use strict'
// create(opts | filename) -> Promise<Database> (DESIGN §2.1).

const { parseOptions } = require('./options')
const { Database } = require('./database')
const verbose = require('./trace')

function create(input, defaults) {
  let options
  try {
    options = parseOptions(input, defaults)
  } catch (e) {
    return Promise.reject(e)
  }
  if (options.verbose) verbose.enable()
  const cluster = options.standalone ? undefined : {
    sock: options.sock,
    intent: options.serve ? 'serve' : options.connect ? 'connect' : 'auto',
    secret: typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : options.secret,
    connectTimeout: options.connectTimeout,
  }
  return new Promise((resolve, reject) => {
    const db = new Database(options.filename, options.mode, undefined, {
      key: options.key,
      deferredKey: options.deferredKey,
      verbose: options.verbose,
      busyTimeout: options.busyTimeout,
      transactionTimeout: options.transactionTimeout,
      cluster,
      onOpen: (err) => (err ? reject(err) : resolve(db)),
    })
  })
}

module.exports = { create }
