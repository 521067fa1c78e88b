'use strict'
// TypeORM 0.3 in a child process (see orm.test.js): node typeorm.js '<json scenario>'.
// Entities are EntitySchemas: no decorators, no reflect-metadata of our own.

const path = require('path')
const { DataSource, EntitySchema, QueryFailedError } = require('typeorm')
const { BLOB, DATE, explicitDriver, whereIsSqlite3, roleOf, wrapped, blobInfo, dateInfo, startTogether, counterLoop, main, attempt } = require('./common')

const T = new EntitySchema({
  name: 'T',
  tableName: 't',
  columns: {
    id: { type: 'integer', primary: true, generated: 'increment' },
    c: { type: 'text', unique: true, nullable: true },
    b: { type: 'blob', nullable: true },
    d: { type: 'datetime', nullable: true },
  },
})

const Counter = new EntitySchema({
  name: 'Counter',
  tableName: 'counter',
  columns: {
    id: { type: 'integer', primary: true },
    n: { type: 'integer' },
  },
})

/**
 * `type: 'sqlite'` on `file`, with `driver` on the driver route (otherwise TypeORM loads
 * `sqlite3` itself). With `key`, TypeORM's own SQLCipher option: it runs `PRAGMA key = "…"`
 * right after opening.
 */
function dataSourceFor({ file, key }) {
  const driver = explicitDriver()
  return new DataSource({
    type: 'sqlite',
    database: file,
    entities: [T, Counter],
    logging: false,
    ...(driver ? { driver } : {}),
    ...(key ? { key } : {}),
  })
}

/** Initializes the DataSource, runs `fn(ds)`, and always destroys it (closing the connection). */
async function withDataSource(scenario, fn) {
  const ds = dataSourceFor(scenario)
  await ds.initialize()
  try {
    return await fn(ds)
  } finally {
    await ds.destroy()
  }
}

/** The folder of the file that runs `require('sqlite3')` (PlatformTools.load). */
const requireSite = () => path.join(path.dirname(require.resolve('typeorm')), 'platform')

/** TypeORM's QueryFailedError keeps the driver's error as `driverError`. */
const driverErrorOf = (e) => e.driverError || e

main({
  crud: (scenario) => withDataSource(scenario, async (ds) => {
    const sqlite3 = whereIsSqlite3(requireSite())
    const role = roleOf(ds.driver.databaseConnection)
    await ds.synchronize()
    const repo = ds.getRepository(T)

    const first = await repo.insert({ c: 'a', b: BLOB, d: DATE })
    const second = await repo.insert({ c: 'b' })
    const id1 = first.identifiers[0].id
    const id2 = second.identifiers[0].id
    const updated = (await repo.update({ id: id2 }, { c: 'b2' })).affected
    const updatedNone = (await repo.update({ id: 999 }, { c: 'none' })).affected
    const deleted = (await repo.delete({ id: id2 })).affected

    await ds.transaction(async (manager) => {
      await manager.insert(T, { c: 'committed' })
    })
    const rolledBack = await attempt(() => ds.transaction(async (manager) => {
      await manager.insert(T, { c: 'rolled back' })
      throw new Error('boom')
    }))

    const violation = await attempt(() => repo.insert({ c: 'a' }))
    const e = violation.ok ? null : violation.error
    const unique = e && wrapped(e, driverErrorOf(e), { isOrmClass: e instanceof QueryFailedError })

    const row = await repo.findOneBy({ id: id1 })
    const [stored] = await ds.query('SELECT d, typeof(d) AS type FROM t WHERE id = ?', [id1])
    return {
      sqlite3,
      role,
      insertIds: [id1, id2],
      insertRaw: [first.raw, second.raw],
      updated,
      updatedNone,
      deleted,
      rollbackError: rolledBack.ok ? null : rolledBack.error.message,
      values: (await repo.find({ order: { id: 'ASC' } })).map((r) => r.c),
      unique,
      blob: blobInfo(row.b),
      date: { ...dateInfo(row.d), stored },
    }
  }),

  'counter-setup': (scenario) => withDataSource(scenario, async (ds) => {
    await ds.synchronize()
    await ds.getRepository(Counter).insert({ id: 1, n: 0 })
    return { ok: true }
  }),

  counter: (scenario) => withDataSource(scenario, async (ds) => {
    const sqlite3 = whereIsSqlite3(requireSite())
    const role = roleOf(ds.driver.databaseConnection)
    await startTogether()
    const loop = await counterLoop(() => ds.transaction(async (manager) => {
      const { n } = await manager.findOneBy(Counter, { id: 1 })
      await manager.update(Counter, { id: 1 }, { n: n + 1 })
    }), (e) => driverErrorOf(e).code)
    return { sqlite3, role, ...loop }
  }),

  'cipher-write': (scenario) => withDataSource(scenario, async (ds) => {
    await ds.synchronize()
    const repo = ds.getRepository(T)
    await repo.insert({ c: 'secret row 1', b: BLOB })
    await ds.transaction((manager) => manager.insert(T, { c: 'secret row 2' }))
    return { values: (await repo.find({ order: { id: 'ASC' } })).map((r) => r.c) }
  }),

  'cipher-read': (scenario) => withDataSource(scenario, async (ds) => {
    const repo = ds.getRepository(T)
    const first = await attempt(() => repo.find({ order: { id: 'ASC' } }))
    if (first.ok) return { values: first.value.map((r) => r.c) }
    const second = await attempt(() => repo.count())
    return {
      error: wrapped(first.error, driverErrorOf(first.error)),
      secondError: second.ok ? null : wrapped(second.error, driverErrorOf(second.error)),
    }
  }),
})
