'use strict'
// require('sqlite3-cluster/cluster'): create() with 1.x's defaults under node:cluster —
// the primary serves, workers connect (unless the options say otherwise).

const cluster = require('cluster')
const base = require('./index')
const { create } = require('./lib/create')

module.exports = {
  ...base,
  create: (opts) => create(opts, { serve: cluster.isPrimary, connect: !cluster.isPrimary }),
}
