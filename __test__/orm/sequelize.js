'use strict'
// sequelize 6 in a child process (see orm.test.js): node sequelize.js '<json scenario>'.

const path = require('path')
const { Sequelize, DataTypes, UniqueConstraintError, QueryTypes } = require('sequelize')
const { BLOB, DATE, explicitDriver, whereIsSqlite3, roleOf, wrapped, blobInfo, dateInfo, startTogether, counterLoop, main, attempt } = require('./common')

/**
 * The sqlite dialect on `file`: with `dialectModule` on the driver route, otherwise sequelize
 * loads `sqlite3` itself. With `key`, sequelize's `password` option: it runs
 * `PRAGMA KEY='…'` on every connection it opens (one per transaction).
 */
function sequelizeFor({ file, key }) {
  const driver = explicitDriver()
  const sequelize = new Sequelize({
    dialect: 'sqlite',
    storage: file,
    logging: false,
    ...(driver ? { dialectModule: driver } : {}),
    ...(key ? { password: key } : {}),
  })
  const T = sequelize.define('T', {
    id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
    c: { type: DataTypes.STRING, unique: true },
    b: DataTypes.BLOB,
    d: DataTypes.DATE,
  }, { tableName: 't', timestamps: false })
  const Counter = sequelize.define('Counter', {
    id: { type: DataTypes.INTEGER, primaryKey: true },
    n: { type: DataTypes.INTEGER, allowNull: false },
  }, { tableName: 'counter', timestamps: false })
  return { sequelize, T, Counter }
}

/** Runs `fn(models)` and always closes sequelize (which closes every connection it opened). */
async function withSequelize(scenario, fn) {
  const models = sequelizeFor(scenario)
  try {
    return await fn(models)
  } finally {
    await models.sequelize.close()
  }
}

/** The folder of the file that runs `require('sqlite3')` (its `_loadDialectModule`). */
const requireSite = () => path.join(path.dirname(require.resolve('sequelize')), 'dialects', 'abstract')

/** The default connection (the one outside transactions). */
const connection = (sequelize) => sequelize.connectionManager.getConnection()

/** sequelize's errors keep the driver's error as `parent` (and `original`). */
const parentOf = (e) => e.parent || e.original || e

main({
  crud: (scenario) => withSequelize(scenario, async ({ sequelize, T }) => {
    const sqlite3 = whereIsSqlite3(requireSite())
    await sequelize.authenticate()
    const role = roleOf(await connection(sequelize))
    await sequelize.sync()

    const first = await T.create({ c: 'a', b: BLOB, d: DATE })
    const second = await T.create({ c: 'b' })
    const [updated] = await T.update({ c: 'b2' }, { where: { id: second.id } })
    const [updatedNone] = await T.update({ c: 'none' }, { where: { id: 999 } })
    const deleted = await T.destroy({ where: { id: second.id } })

    // Each transaction runs on a Database of its own, opened for it and closed after it.
    await sequelize.transaction(async (transaction) => {
      await T.create({ c: 'committed' }, { transaction })
    })
    const rolledBack = await attempt(() => sequelize.transaction(async (transaction) => {
      await T.create({ c: 'rolled back' }, { transaction })
      throw new Error('boom')
    }))

    const violation = await attempt(() => T.create({ c: 'a' }))
    const e = violation.ok ? null : violation.error
    const unique = e && wrapped(e, parentOf(e), {
      isOrmClass: e instanceof UniqueConstraintError,
      fields: e.fields,
    })

    const row = await T.findByPk(first.id)
    const [stored] = await sequelize.query('SELECT d, typeof(d) AS type FROM t WHERE id = ?', {
      replacements: [first.id], type: QueryTypes.SELECT,
    })
    return {
      sqlite3,
      role,
      insertIds: [first.id, second.id],
      updated,
      updatedNone,
      deleted,
      rollbackError: rolledBack.ok ? null : rolledBack.error.message,
      values: (await T.findAll({ order: [['id', 'ASC']] })).map((r) => r.c),
      unique,
      blob: blobInfo(row.b),
      date: { ...dateInfo(row.d), stored },
    }
  }),

  'counter-setup': (scenario) => withSequelize(scenario, async ({ Counter }) => {
    await Counter.sync()
    await Counter.create({ id: 1, n: 0 })
    return { ok: true }
  }),

  counter: (scenario) => withSequelize(scenario, async ({ sequelize, Counter }) => {
    const sqlite3 = whereIsSqlite3(requireSite())
    await sequelize.authenticate()
    const role = roleOf(await connection(sequelize))
    await startTogether()
    const loop = await counterLoop(() => sequelize.transaction(async (transaction) => {
      const { n } = await Counter.findByPk(1, { transaction })
      await Counter.update({ n: n + 1 }, { where: { id: 1 }, transaction })
    }), (e) => parentOf(e).code)
    return { sqlite3, role, ...loop }
  }),

  'cipher-write': (scenario) => withSequelize(scenario, async ({ sequelize, T }) => {
    await sequelize.sync()
    await T.create({ c: 'secret row 1', b: BLOB })
    // A transaction opens a second Database in this process: keyed by its own PRAGMA KEY.
    await sequelize.transaction((transaction) => T.create({ c: 'secret row 2' }, { transaction }))
    return { values: (await T.findAll({ order: [['id', 'ASC']] })).map((r) => r.c) }
  }),

  'cipher-read': (scenario) => withSequelize(scenario, async ({ T }) => {
    const first = await attempt(() => T.findAll({ order: [['id', 'ASC']] }))
    if (first.ok) return { values: first.value.map((r) => r.c) }
    const second = await attempt(() => T.count())
    return {
      error: wrapped(first.error, parentOf(first.error)),
      secondError: second.ok ? null : wrapped(second.error, parentOf(second.error)),
    }
  }),
})
