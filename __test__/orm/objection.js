'use strict'
// objection 3 (on knex 3) in a child process (see orm.test.js): node objection.js '<json scenario>'.

const { Model, UniqueViolationError } = require('objection')
const { BLOB, DATE, whereIsSqlite3, roleOf, wrapped, blobInfo, dateInfo, startTogether, counterLoop, main, attempt } = require('./common')
const { knexFor, knexRequireSite, knexConnection, migrationSource, createCounter } = require('./knex-setup')

class T extends Model {
  static get tableName() {
    return 't'
  }
}

class Counter extends Model {
  static get tableName() {
    return 'counter'
  }
}

/** Binds the models to a knex instance, runs `fn(knex)`, and always destroys knex. */
async function withModels(scenario, fn) {
  const knex = knexFor(scenario)
  Model.knex(knex)
  try {
    return await fn(knex)
  } finally {
    await knex.destroy()
  }
}

/** objection wraps driver errors (db-errors): the driver's error is `nativeError`. */
const nativeOf = (e) => e.nativeError || e

main({
  crud: (scenario) => withModels(scenario, async (knex) => {
    const sqlite3 = whereIsSqlite3(knexRequireSite())
    const role = roleOf(await knexConnection(knex))
    await knex.migrate.latest({ migrationSource })

    const first = await T.query().insert({ c: 'a', b: BLOB, d: DATE })
    const second = await T.query().insert({ c: 'b' })
    const updated = await T.query().patch({ c: 'b2' }).where('id', second.id)
    const updatedNone = await T.query().patch({ c: 'none' }).where('id', 999)
    const deleted = await T.query().deleteById(second.id)

    await T.transaction(async (trx) => {
      await T.query(trx).insert({ c: 'committed' })
    })
    const rolledBack = await attempt(() => T.transaction(async (trx) => {
      await T.query(trx).insert({ c: 'rolled back' })
      throw new Error('boom')
    }))

    const violation = await attempt(() => T.query().insert({ c: 'a' }))
    const e = violation.ok ? null : violation.error
    const unique = e && wrapped(e, nativeOf(e), {
      isOrmClass: e instanceof UniqueViolationError,
      table: e.table,
      columns: e.columns,
      client: e.client,
    })

    const row = await T.query().findById(first.id)
    return {
      sqlite3,
      role,
      insertIds: [first.id, second.id],
      updated,
      updatedNone,
      deleted,
      rollbackError: rolledBack.ok ? null : rolledBack.error.message,
      values: (await T.query().orderBy('id')).map((r) => r.c),
      unique,
      blob: blobInfo(row.b),
      date: dateInfo(row.d),
    }
  }),

  'counter-setup': (scenario) => withModels(scenario, (knex) => createCounter(knex).then(() => ({ ok: true }))),

  counter: (scenario) => withModels(scenario, async (knex) => {
    const sqlite3 = whereIsSqlite3(knexRequireSite())
    const role = roleOf(await knexConnection(knex))
    await startTogether()
    const loop = await counterLoop(() => Counter.transaction(async (trx) => {
      const { n } = await Counter.query(trx).findById(1)
      await Counter.query(trx).findById(1).patch({ n: n + 1 })
    }), (e) => nativeOf(e).code)
    return { sqlite3, role, ...loop }
  }),

  'cipher-write': (scenario) => withModels(scenario, async (knex) => {
    await knex.migrate.latest({ migrationSource })
    await T.query().insert({ c: 'secret row 1', b: BLOB })
    await T.transaction((trx) => T.query(trx).insert({ c: 'secret row 2' }))
    return { values: (await T.query().orderBy('id')).map((r) => r.c) }
  }),

  'cipher-read': (scenario) => withModels(scenario, async () => {
    const first = await attempt(() => T.query().orderBy('id'))
    if (first.ok) return { values: first.value.map((r) => r.c) }
    const second = await attempt(() => T.query().resultSize())
    return {
      error: wrapped(first.error, nativeOf(first.error)),
      secondError: second.ok ? null : wrapped(second.error, nativeOf(second.error)),
    }
  }),
})
