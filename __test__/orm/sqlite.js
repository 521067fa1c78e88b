'use strict'
// The `sqlite` 5 package (promise wrapper over a sqlite3 Database class) in a child process
// (see orm.test.js): node sqlite.js '<json scenario>'.

const { open } = require('sqlite')
const { BLOB, DATE, ownSqlite3, whereIsSqlite3, roleOf, wrapped, blobInfo, dateInfo, startTogether, counterLoop, main, attempt } = require('./common')

const migrations = [{
  id: 1,
  name: 'create-t',
  up: 'CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, c TEXT UNIQUE, b BLOB, d DATETIME)',
  down: 'DROP TABLE t',
}]

/**
 * `open({ filename, driver: sqlite3.Database })`; the app loads `sqlite3` itself on the alias
 * and real routes. With `key`, the app keys the file with `PRAGMA key` as its first statement.
 */
async function withDb({ file, key }, fn) {
  const db = await open({ filename: file, driver: ownSqlite3().Database })
  try {
    if (key) await db.run(`PRAGMA key = '${key.replace(/'/g, "''")}'`)
    return await fn(db)
  } finally {
    await db.close()
  }
}

/** This package has no transaction helper: the usual BEGIN / COMMIT / ROLLBACK. */
async function transaction(db, fn) {
  await db.run('BEGIN')
  try {
    const result = await fn()
    await db.run('COMMIT')
    return result
  } catch (e) {
    await db.run('ROLLBACK')
    throw e
  }
}

main({
  crud: (scenario) => withDb(scenario, async (db) => {
    const sqlite3 = whereIsSqlite3(__dirname)
    const role = roleOf(db.getDatabaseInstance())
    await db.migrate({ migrations })

    const first = await db.run('INSERT INTO t (c, b, d) VALUES (?, ?, ?)', 'a', BLOB, DATE)
    // Through a prepared Statement too.
    const insert = await db.prepare('INSERT INTO t (c) VALUES (?)')
    const second = await insert.run('b')
    await insert.finalize()
    const updated = (await db.run('UPDATE t SET c = ? WHERE id = ?', 'b2', second.lastID)).changes
    const updatedNone = (await db.run('UPDATE t SET c = ? WHERE id = ?', 'none', 999)).changes
    const deleted = (await db.run('DELETE FROM t WHERE id = ?', second.lastID)).changes

    await transaction(db, () => db.run('INSERT INTO t (c) VALUES (?)', 'committed'))
    const rolledBack = await attempt(() => transaction(db, async () => {
      await db.run('INSERT INTO t (c) VALUES (?)', 'rolled back')
      throw new Error('boom')
    }))

    // No error class of its own: the driver's error as it is.
    const violation = await attempt(() => db.run('INSERT INTO t (c) VALUES (?)', 'a'))
    const unique = violation.ok ? null : wrapped(violation.error, violation.error)

    const row = await db.get('SELECT * FROM t WHERE id = ?', first.lastID)
    return {
      sqlite3,
      role,
      insertIds: [first.lastID, second.lastID],
      updated,
      updatedNone,
      deleted,
      rollbackError: rolledBack.ok ? null : rolledBack.error.message,
      values: (await db.all('SELECT c FROM t ORDER BY id')).map((r) => r.c),
      unique,
      blob: blobInfo(row.b),
      date: dateInfo(row.d),
    }
  }),

  'counter-setup': (scenario) => withDb(scenario, async (db) => {
    await db.exec('CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO counter VALUES (1, 0)')
    return { ok: true }
  }),

  counter: (scenario) => withDb(scenario, async (db) => {
    const sqlite3 = whereIsSqlite3(__dirname)
    const role = roleOf(db.getDatabaseInstance())
    await startTogether()
    const loop = await counterLoop(() => transaction(db, async () => {
      const { n } = await db.get('SELECT n FROM counter WHERE id = 1')
      await db.run('UPDATE counter SET n = ? WHERE id = 1', n + 1)
    }), (e) => e.code)
    return { sqlite3, role, ...loop }
  }),

  'cipher-write': (scenario) => withDb(scenario, async (db) => {
    await db.migrate({ migrations })
    await db.run('INSERT INTO t (c, b) VALUES (?, ?)', 'secret row 1', BLOB)
    await transaction(db, () => db.run('INSERT INTO t (c) VALUES (?)', 'secret row 2'))
    return { values: (await db.all('SELECT c FROM t ORDER BY id')).map((r) => r.c) }
  }),

  'cipher-read': (scenario) => withDb(scenario, async (db) => {
    const first = await attempt(() => db.all('SELECT c FROM t ORDER BY id'))
    if (first.ok) return { values: first.value.map((r) => r.c) }
    const second = await attempt(() => db.get('SELECT count(*) AS n FROM t'))
    return {
      error: wrapped(first.error, first.error),
      secondError: second.ok ? null : wrapped(second.error, second.error),
    }
  }),
})
