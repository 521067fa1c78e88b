'use strict'
// A cluster client's own read connections (docs/sessions.md#client-read-connections): a client
// on the master's machine runs its Databases' reads outside transactions on read connections of
// its own process, when the master says the file may be read there. Everything else goes to the
// master.
//
// Where a test must know that a read ran in the client, the master process is stopped
// (SIGSTOP): a read that answers then cannot have gone through it. Nothing is asserted on time.

const fs = require('fs')
const os = require('os')
const path = require('path')
const sqlite3 = require('sqlite3')
const { agent, killAll } = require('./readers/harness')

jest.setTimeout(60000)

let dir
beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-own-reads-')) })
afterEach(killAll)
afterAll(async () => {
  await killAll()
  fs.rmSync(dir, { recursive: true, force: true })
})

let n = 0
const fileFor = (name) => path.join(dir, `${name}-${++n}.db`)

/** An agent with `options` open; its role must be `role`. */
async function opened(options, role) {
  const a = agent()
  expect((await a.call('open', options)).role).toBe(role)
  return a
}

/** Settles with `{ ok }` or `{ err }` (the error's code), or 'no answer' after `ms`. */
function outcome(promise, ms = 5000) {
  let timer
  const late = new Promise((resolve) => { timer = setTimeout(resolve, ms, 'no answer') })
  const settled = promise.then((ok) => ({ ok }), (e) => ({ err: e.code }))
  return Promise.race([settled, late]).finally(() => clearTimeout(timer))
}

/** `sql` on a node-sqlite3 Database of its own, after `setup`: the reference answer. */
async function real(setup, sql) {
  const db = await new Promise((resolve, reject) => {
    const d = new sqlite3.Database(':memory:', (err) => (err ? reject(err) : resolve(d)))
  })
  try {
    if (setup) await new Promise((resolve, reject) => db.exec(setup, (e) => (e ? reject(e) : resolve())))
    return await new Promise((resolve, reject) => db.get(sql, (e, row) => (e ? reject(e) : resolve(row))))
  } finally {
    await new Promise((resolve) => db.close(resolve))
  }
}

/** Stops the master process until the returned function is called. */
function freeze(master) {
  process.kill(master.pid, 'SIGSTOP')
  return () => process.kill(master.pid, 'SIGCONT')
}

const LIKE = "SELECT 'abc' LIKE 'ABC' AS l"

test('reads answer from the client\'s own connection while the master is stopped: keyed, with each Database\'s pragmas', async () => {
  const file = fileFor('frozen')
  const key = 'own reads key'
  const m = await opened({ filename: file, serve: true, key }, 'master')
  await m.call('exec', "CREATE TABLE t(x); INSERT INTO t VALUES ('one'), ('two')")
  const c = await opened({ filename: file, connect: true, key }, 'client')
  const d = await opened({ filename: file, connect: true, key }, 'client')
  await c.call('run', 'PRAGMA case_sensitive_like = ON')
  const sensitive = await real('PRAGMA case_sensitive_like = ON', LIKE)
  const insensitive = await real(null, LIKE)
  expect([sensitive, insensitive]).toEqual([{ l: 0 }, { l: 1 }])
  // The master has told both clients, with their answers, that they may read themselves.
  expect(await c.call('get', LIKE)).toEqual(sensitive)
  expect(await d.call('get', LIKE)).toEqual(insensitive)

  const thaw = freeze(m)
  try {
    expect(await outcome(c.call('all', 'SELECT x FROM t ORDER BY x'))).toEqual({ ok: [{ x: 'one' }, { x: 'two' }] })
    expect(await outcome(c.call('get', LIKE))).toEqual({ ok: sensitive })
    expect(await outcome(d.call('get', LIKE))).toEqual({ ok: insensitive })
    // A write needs the master: it waits for it, and answers once the master runs again.
    const write = outcome(d.call('run', "INSERT INTO t VALUES ('three')"), 1000)
    expect(await write).toBe('no answer')
  } finally {
    thaw()
  }
  expect(await outcome(d.call('get', 'SELECT count(*) AS n FROM t'))).toEqual({ ok: { n: 3 } })
})

test('reads a client sends in one turn run on its own connection together: each answers its own row, in call order', async () => {
  const file = fileFor('batch')
  const m = await opened({ filename: file, serve: true }, 'master')
  await m.call('exec', 'CREATE TABLE t(id INTEGER PRIMARY KEY, v); WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 200) INSERT INTO t(v) SELECT n * 10 FROM s')
  const c = await opened({ filename: file, connect: true }, 'client')
  await c.call('get', 'SELECT 1')
  const ids = Array.from({ length: 200 }, (_, i) => i + 1)
  const thaw = freeze(m)
  try {
    const got = await outcome(c.call('getMany', { sql: 'SELECT id, v FROM t WHERE id = ?', each: ids }))
    expect(got).toEqual({ ok: { rows: ids.map((id) => ({ id, v: id * 10 })), order: ids.map((id) => id - 1) } })
  } finally {
    thaw()
  }
})

test('a TEMP table another client creates sends every client\'s reads to the master; DROP gives them back', async () => {
  const file = fileFor('temp')
  const m = await opened({ filename: file, serve: true }, 'master')
  await m.call('exec', "CREATE TABLE t(x); INSERT INTO t VALUES ('main')")
  const a = await opened({ filename: file, connect: true }, 'client')
  const b = await opened({ filename: file, connect: true }, 'client')
  const read = 'SELECT x FROM t'
  expect(await b.call('get', read)).toEqual({ x: 'main' })

  // The Databases share the master's write connection, so its TEMP table hides the main one for
  // all of them (README, "Connection-local state").
  await a.call('exec', "CREATE TEMP TABLE t(x); INSERT INTO temp.t VALUES ('temp')")
  expect(await a.call('get', read)).toEqual({ x: 'temp' })
  // The master told b when it flushed its answers to a; any answer b receives after that comes
  // after the word.
  await b.call('run', 'SELECT 1')
  expect(await b.call('get', read)).toEqual({ x: 'temp' })
  expect(await b.call('all', read)).toEqual([{ x: 'temp' }])

  await a.call('run', 'DROP TABLE temp.t')
  expect(await a.call('get', read)).toEqual({ x: 'main' })
  await b.call('run', 'SELECT 1')
  const thaw = freeze(m)
  try {
    // Without the TEMP table, b reads itself again: it answers with the master stopped.
    expect(await outcome(b.call('get', read))).toEqual({ ok: { x: 'main' } })
  } finally {
    thaw()
  }
})

test('a client inside a transaction reads its own uncommitted rows at the master; another client reads the last commit itself', async () => {
  const file = fileFor('txn')
  const m = await opened({ filename: file, serve: true }, 'master')
  await m.call('exec', "CREATE TABLE t(x); INSERT INTO t VALUES ('committed')")
  const a = await opened({ filename: file, connect: true }, 'client')
  const b = await opened({ filename: file, connect: true }, 'client')
  await a.call('run', 'BEGIN')
  await a.call('run', "INSERT INTO t VALUES ('mine')")
  expect(await a.call('all', 'SELECT x FROM t ORDER BY x')).toEqual([{ x: 'committed' }, { x: 'mine' }])
  const thaw = freeze(m)
  try {
    expect(await outcome(b.call('all', 'SELECT x FROM t ORDER BY x'))).toEqual({ ok: [{ x: 'committed' }] })
    // a's read belongs to its transaction, which only the master has.
    expect(await outcome(a.call('get', 'SELECT count(*) AS n FROM t'), 1000)).toBe('no answer')
  } finally {
    thaw()
  }
  await a.call('run', 'COMMIT')
  expect(await b.call('get', 'SELECT count(*) AS n FROM t')).toEqual({ n: 2 })
})

test('two client processes scanning in turn beside a writer: the -wal file stays bounded', async () => {
  // Each scan walks every page of the growing table, so one of the two clients is nearly always
  // inside a read on its own connection: the log restarts only because the master tells the
  // clients to stop while it empties it (src/engine/log_limit.rs).
  const file = fileFor('wal')
  const m = await opened({ filename: file, serve: true }, 'master')
  await m.call('run', 'CREATE TABLE log(id INTEGER PRIMARY KEY, b BLOB)')
  const pageSize = (await m.call('get', 'PRAGMA page_size')).page_size
  const w = await opened({ filename: file, connect: true }, 'client')
  const r1 = await opened({ filename: file, connect: true }, 'client')
  const r2 = await opened({ filename: file, connect: true }, 'client')
  await r1.call('get', 'SELECT 1')
  await r2.call('get', 'SELECT 1')
  const ms = 10000
  const [commits, s1, s2] = await Promise.all([w.call('fillLog', { ms }), r1.call('scanLog', { ms }), r2.call('scanLog', { ms })])
  const walBytes = fs.statSync(`${file}-wal`).size
  const log = 1000 * (pageSize + 24)
  const written = commits * 8 * (pageSize + 24)
  console.log(`own reads, WAL: ${commits} commits, >= ${(written / 1048576).toFixed(1)} MiB of frames written, ` +
    `-wal ${(walBytes / 1048576).toFixed(1)} MiB; scans ${s1.scans} + ${s2.scans}`)
  expect([s1.problems, s2.problems]).toEqual([[], []])
  expect(s1.scans > 0 && s2.scans > 0).toBe(true)
  expect(written).toBeGreaterThan(6 * log)
  expect(walBytes).toBeLessThan(2 * log)
})
