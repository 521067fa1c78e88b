'use strict'
// knex 3 on each route, shared by knex.js and objection.js (objection runs on knex).

const path = require('path')
const { explicitDriver } = require('./common')

/**
 * A knex instance for `file`. On the driver route the client is knex's own sqlite3 dialect whose
 * `_driver()` returns this package's driver(); otherwise `client: 'sqlite3'` and knex loads the
 * module itself. With `key`, every new connection is keyed the way knex users do it for
 * SQLCipher: `PRAGMA key` in `pool.afterCreate`.
 */
function knexFor({ file, key }) {
  const knex = require('knex')
  const driver = explicitDriver()
  let client = 'sqlite3'
  if (driver) {
    const Sqlite3Client = require('knex/lib/dialects/sqlite3')
    client = class ClusterClient extends Sqlite3Client {
      _driver() {
        return driver
      }
    }
  }
  const pool = key ? {
    afterCreate(conn, done) {
      conn.run(`PRAGMA key = '${key.replace(/'/g, "''")}'`, done)
    },
  } : undefined
  // A connection that cannot be created fails the test in seconds, not knex's default minute.
  return knex({ client, connection: { filename: file }, useNullAsDefault: true, pool, acquireConnectionTimeout: 10000 })
}

/** The folder of knex's sqlite3 dialect, the file that runs `require('sqlite3')`. */
function knexRequireSite() {
  return path.join(path.dirname(require.resolve('knex')), 'lib', 'dialects', 'sqlite3')
}

/** `db.cluster.role` of the pooled connection (acquired and released). */
async function knexConnection(knex) {
  const conn = await knex.client.acquireConnection()
  try {
    return conn
  } finally {
    await knex.client.releaseConnection(conn)
  }
}

/** Migrations from code: `t` as the test wants it (knex's migration table and lock included). */
const migrationSource = {
  getMigrations: async () => ['001_create_t'],
  getMigrationName: (name) => name,
  getMigration: () => ({
    up: (k) => k.schema.createTable('t', (t) => {
      t.increments('id')
      t.string('c').unique()
      t.binary('b')
      t.datetime('d')
    }),
    down: (k) => k.schema.dropTable('t'),
  }),
}

async function createCounter(knex) {
  await knex.schema.createTable('counter', (t) => {
    t.integer('id').primary()
    t.integer('n').notNullable()
  })
  await knex('counter').insert({ id: 1, n: 0 })
}

module.exports = { knexFor, knexRequireSite, knexConnection, migrationSource, createCounter }
