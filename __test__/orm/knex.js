'use strict'
// knex 3 in a child process (see orm.test.js): node knex.js '<json scenario>'.

const { BLOB, DATE, whereIsSqlite3, roleOf, wrapped, blobInfo, dateInfo, startTogether, counterLoop, main, attempt } = require('./common')
const { knexFor, knexRequireSite, knexConnection, migrationSource, createCounter } = require('./knex-setup')

/** Opens knex, runs `fn(knex)`, and always destroys knex (which closes the connection). */
async function withKnex(scenario, fn) {
  const knex = knexFor(scenario)
  try {
    return await fn(knex)
  } finally {
    await knex.destroy()
  }
}

main({
  crud: (scenario) => withKnex(scenario, async (knex) => {
    const sqlite3 = whereIsSqlite3(knexRequireSite())
    const role = roleOf(await knexConnection(knex))
    await knex.migrate.latest({ migrationSource })

    const [id1] = await knex('t').insert({ c: 'a', b: BLOB, d: DATE })
    const [id2] = await knex('t').insert({ c: 'b' })
    const updated = await knex('t').where({ id: id2 }).update({ c: 'b2' })
    const updatedNone = await knex('t').where({ id: 999 }).update({ c: 'none' })
    const deleted = await knex('t').where({ id: id2 }).del()

    await knex.transaction(async (trx) => {
      await trx('t').insert({ c: 'committed' })
    })
    const rolledBack = await attempt(() => knex.transaction(async (trx) => {
      await trx('t').insert({ c: 'rolled back' })
      throw new Error('boom')
    }))

    // knex has no error class of its own: it rejects with the driver's error, its message
    // prefixed with the query.
    const violation = await attempt(() => knex('t').insert({ c: 'a' }))
    const unique = violation.ok ? null : wrapped(violation.error, violation.error)

    const row = await knex('t').where({ id: id1 }).first()
    return {
      sqlite3,
      role,
      insertIds: [id1, id2],
      updated,
      updatedNone,
      deleted,
      rollbackError: rolledBack.ok ? null : rolledBack.error.message,
      values: await knex('t').orderBy('id').pluck('c'),
      unique,
      blob: blobInfo(row.b),
      date: dateInfo(row.d),
    }
  }),

  'counter-setup': (scenario) => withKnex(scenario, (knex) => createCounter(knex).then(() => ({ ok: true }))),

  counter: (scenario) => withKnex(scenario, async (knex) => {
    const sqlite3 = whereIsSqlite3(knexRequireSite())
    const role = roleOf(await knexConnection(knex))
    await startTogether()
    const loop = await counterLoop(() => knex.transaction(async (trx) => {
      const { n } = await trx('counter').where({ id: 1 }).first('n')
      await trx('counter').where({ id: 1 }).update({ n: n + 1 })
    }), (e) => e.code)
    return { sqlite3, role, ...loop }
  }),

  'cipher-write': (scenario) => withKnex(scenario, async (knex) => {
    await knex.migrate.latest({ migrationSource })
    await knex('t').insert({ c: 'secret row 1', b: BLOB })
    await knex.transaction((trx) => trx('t').insert({ c: 'secret row 2' }))
    return { values: await knex('t').orderBy('id').pluck('c') }
  }),

  'cipher-read': (scenario) => withKnex(scenario, async (knex) => {
    const first = await attempt(() => knex('t').orderBy('id').pluck('c'))
    if (first.ok) return { values: first.value }
    const second = await attempt(() => knex('t').count({ n: '*' }))
    return { error: wrapped(first.error, first.error), secondError: second.ok ? null : wrapped(second.error, second.error) }
  }),
})
