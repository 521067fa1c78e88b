'use strict'
// require('sqlite3-cluster/cluster'): 1.x's module for apps run by node:cluster, today the
// same as require('sqlite3-cluster'): every process joins in auto mode (connect if a master
// answers, else become it), and on a machine with one CPU opens the file itself (standalone).
//
// 1.x made the node:cluster primary `serve` and every worker `connect`. That fails in two
// common cases, which auto mode handles:
// - The primary is a process manager that never opens the database (PM2's daemon in cluster
//   mode, a primary that only forks): `connect` workers wait for a master nobody starts and
//   all fail with CLUSTER_NO_MASTER. In auto mode they elect one of themselves, and another
//   takes over when it stops or dies.
// - The primary calls create() after forking: a worker may take the lock first, and a
//   `serve` primary would then fail with CLUSTER_MASTER_EXISTS. In auto mode it becomes that
//   worker's client instead.
// A primary that calls create() before forking still serves, as in 1.x: it holds the lock
// before any worker exists, so every worker finds its master and connects. Explicit `serve`,
// `connect` or `standalone` options apply as given. As with any auto-mode process, a worker
// that may become master needs the `key` of an encrypted file.

module.exports = require('./index')
