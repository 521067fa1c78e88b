'use strict'
// require('sqlite3-cluster/cluster'): create() with 1.x's defaults under node:cluster —
// the primary serves, workers connect (unless the options say otherwise); on a machine with
// one CPU every process opens the file itself (standalone), as 1.x did.

const cluster = require('cluster')
const os = require('os')
const base = require('./index')
const { create } = require('./lib/create')

module.exports = {
  ...base,
  create: (opts) => create(opts, os.cpus().length === 1
    ? { standalone: true }
    : { serve: cluster.isPrimary, connect: !cluster.isPrimary }),
}
