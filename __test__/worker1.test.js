'use strict'
// Differential tests of `sqlite3-cluster/worker1` against the real Worker1 of
// @sqlite.org/sqlite-wasm@3.54.1-build1 (docs/worker1.md). Every scenario is a sequence of
// requests, run in a fresh temp dir on each side (same relative file names); the normalized
// message lists — row messages, sentinels and final responses — must be equal
// (harness: __test__/worker1/harness.js). A few checks on the reference's own answers pin the
// points of docs/worker1.md a scenario is about.
//
// The reference worker is shared by the whole file (every db it has open is closed before each
// test); each of our workers lives for one test. Cases where the reference is defective
// (docs/worker1.md#reference-defects) and what it cannot do (SQLCipher keys, sharing a db with create()) are tested on
// our worker alone, at the end.
//
// SQLITE3_CLUSTER_W1_REFERENCE_ONLY=1 runs the scenarios on the reference alone (with their
// checks): a test of the harness and of docs/worker1.md's description of the reference.

const fs = require('fs')
const path = require('path')
const { spawnSync } = require('child_process')
const { startWorker, runSteps, closeAll, ourModulePath } = require('./worker1/harness')

const REFERENCE_ONLY = process.env.SQLITE3_CLUSTER_W1_REFERENCE_ONLY === '1'
const oursTest = REFERENCE_ONLY ? test.skip : test

const live = new Set()
let reference = null

async function start(kind) {
  const w = await startWorker(kind)
  live.add(w)
  return w
}

async function sharedReference() {
  if (reference && !reference.broken) {
    await closeAll(reference)
    return reference
  }
  if (reference) await reference.close()
  reference = await startWorker('reference')
  return reference
}

afterEach(async () => {
  const workers = [...live]
  live.clear()
  await Promise.all(workers.map((w) => w.close()))
})
afterAll(async () => {
  if (reference) await reference.close()
})

// Runs the steps on both sides and requires equal normalized results; resolves with the
// reference's results (one entry per step) for the scenario's own checks.
async function same(steps) {
  if (REFERENCE_ONLY) return runSteps(await sharedReference(), steps)
  const [ref, ours] = await Promise.all([sharedReference(), start('ours')])
  const [expected, actual] = await Promise.all([runSteps(ref, steps), runSteps(ours, steps)])
  expect(actual).toStrictEqual(expected)
  return expected
}

const last = (messages) => messages[messages.length - 1]
const errorOf = (messages) => {
  const m = last(messages)
  expect(m.type).toBe('error')
  return m.result
}
const rowsOf = (messages) => last(messages).result.resultRows

const open = (filename, extra = {}) => ({ type: 'open', messageId: `open ${filename}`, args: { filename }, ...extra })
const exec = (args, extra = {}) => ({ type: 'exec', messageId: 'x', args, ...extra })
const select = (sql, args = {}, envelope = {}) => exec({ sql, rowMode: 'object', ...args }, envelope)

describe('handshake, config-get and envelopes', () => {
  test('a worker announces itself with exactly {type: "sqlite3-api", result: "worker1-ready"}', async () => {
    const ref = await start('reference')
    expect(ref.handshake).toStrictEqual({ type: 'sqlite3-api', result: 'worker1-ready' })
    if (REFERENCE_ONLY) return
    const ours = await start('ours')
    expect(ours.handshake).toStrictEqual(ref.handshake)
  })

  test('config-get reports bigIntEnabled, version and vfsList; its dbId is the default db, args are ignored', async () => {
    const r = await same([
      { type: 'config-get', messageId: 'c1' },
      open(':memory:'),
      { type: 'config-get', messageId: 'c2', args: { filename: 'ignored' } },
      { type: 'config-get', messageId: 'c3', dbId: 'nope' },
    ])
    expect(last(r[0])).toStrictEqual({
      type: 'config-get',
      dbId: undefined,
      messageId: 'c1',
      result: {
        bigIntEnabled: true,
        version: { libVersion: 'string', libVersionNumber: 'number', sourceId: 'string', downloadVersion: 'number' },
        vfsList: 'string[]',
      },
    })
    expect(last(r[2]).dbId).toBe('DB1')
    expect(last(r[3]).dbId).toBe('nope')
  })

  test('messageId is echoed verbatim, whatever its type, on success and on error', async () => {
    const ids = [7, 'm-1', { a: [1, 'b'], n: null }, [1, 2], null, 0, '', false, 1.5]
    const steps = []
    for (const messageId of ids) steps.push({ type: 'config-get', messageId }, { type: 'toss', messageId })
    steps.push({ type: 'config-get' }, { type: 'toss' })
    const r = await same(steps)
    ids.forEach((id, i) => {
      expect(last(r[2 * i]).messageId).toStrictEqual(id)
      expect(last(r[2 * i + 1])).toMatchObject({ type: 'error', messageId: id })
    })
    expect('messageId' in last(r[r.length - 1])).toBe(true)
    expect(last(r[r.length - 1]).messageId).toBeUndefined()
  })

  test('unknown message types are errors that echo the whole request; the worker keeps answering', async () => {
    const r = await same([
      { type: 'bogus', messageId: 1, extra: { deep: [1, 'x'] } },
      { type: 'Exec', messageId: 2, args: 'select 1' },
      { type: 'hasOwnProperty', messageId: 3 },
      { type: 'constructor', messageId: 4 },
      { type: '__proto__', messageId: 5 },
      { messageId: 6 },
      'a bare string',
      { type: 'toss', messageId: 7, dbId: 'nope' },
      { type: 'config-get', messageId: 8 },
    ])
    expect(errorOf(r[0])).toStrictEqual({
      operation: 'bogus',
      message: 'Unknown db worker message type: bogus',
      errorClass: 'Error',
      input: { type: 'bogus', messageId: 1, extra: { deep: [1, 'x'] } },
      stack: true,
    })
    expect(errorOf(r[5]).message).toBe('Unknown db worker message type: ')
    expect(errorOf(r[6])).toMatchObject({ operation: undefined, input: 'a bare string' })
    expect(errorOf(r[7])).toMatchObject({ operation: 'toss', message: 'Testing worker exception', errorClass: 'Error' })
    expect(last(r[7]).dbId).toBe('nope')
    expect(last(r[8]).type).toBe('config-get')
  })
})

describe('open', () => {
  test('a filename opens (and creates) that file; the result is {filename as given, persistent, dbId, vfs}', async () => {
    const r = await same([
      { $exists: '$TMP/a.db' },
      open('$TMP/a.db'),
      { $exists: '$TMP/a.db' },
      exec('create table t(a); insert into t values(1)'),
      open('$TMP/a.db'),
      select('select count(*) as n from t', {}, { dbId: '$DB2' }),
    ])
    expect(r[0]).toStrictEqual({ exists: false })
    expect(last(r[1])).toStrictEqual({
      type: 'open',
      dbId: 'DB1',
      messageId: 'open $TMP/a.db',
      result: { filename: '$TMP/a.db', persistent: false, dbId: 'DB1', vfs: '<vfs>' },
    })
    expect(r[2]).toStrictEqual({ exists: true })
    expect(last(r[4]).result.dbId).toBe('DB2')
    expect(rowsOf(r[5])).toStrictEqual([{ n: 1 }])
  })

  test('no filename, "" and a non-object args open separate anonymous temp dbs; flags are ignored', async () => {
    const r = await same([
      { type: 'open', messageId: 1 },
      { type: 'open', messageId: 2, args: {} },
      { type: 'open', messageId: 3, args: { filename: '' } },
      { type: 'open', messageId: 4, args: 'x.db' },
      exec('create table t(a)', { dbId: '$DB1' }),
      select("select count(*) as n from sqlite_schema where name = 't'", {}, { dbId: '$DB2' }),
      open('$TMP/f.db', { args: { filename: '$TMP/f.db', flags: 'r' } }),
      exec('create table t(a); insert into t values(1)', { dbId: '$DB5' }),
    ])
    for (let i = 0; i < 4; i++) expect(last(r[i]).result).toMatchObject({ filename: '', dbId: `DB${i + 1}` })
    expect(rowsOf(r[5])).toStrictEqual([{ n: 0 }])
    expect(last(r[7]).type).toBe('exec')
  })

  test('":memory:" is a private in-memory db', async () => {
    const r = await same([
      open(':memory:'),
      open(':memory:'),
      exec('create table t(a)', { dbId: '$DB1' }),
      select("select count(*) as n from sqlite_schema where name = 't'", {}, { dbId: '$DB2' }),
      { $exists: ':memory:' },
    ])
    expect(last(r[0]).result.filename).toBe(':memory:')
    expect(rowsOf(r[3])).toStrictEqual([{ n: 0 }])
  })

  test('file: URIs are passed to SQLite and reported verbatim; mode=ro is read-only', async () => {
    const r = await same([
      open('file:$TMP/u.db?mode=rwc'),
      exec('create table t(a); insert into t values(1)'),
      { $exists: '$TMP/u.db' },
      open('file:$TMP/u.db?mode=ro'),
      select('select a from t', {}, { dbId: '$DB2' }),
      exec('insert into t values(2)', { dbId: '$DB2' }),
      open('file:$TMP/missing.db?mode=ro'),
      { $exists: '$TMP/missing.db' },
    ])
    expect(last(r[0]).result.filename).toBe('file:$TMP/u.db?mode=rwc')
    expect(r[2]).toStrictEqual({ exists: true })
    expect(rowsOf(r[4])).toStrictEqual([{ a: 1 }])
    expect(errorOf(r[5]).message).toBe('SQLITE_READONLY: sqlite3 result code 8: attempt to write a readonly database')
    expect(errorOf(r[6])).toMatchObject({
      operation: 'open',
      message: 'SQLITE_CANTOPEN: sqlite3 result code 14: unable to open database file',
      errorClass: 'SQLite3Error',
    })
    expect(r[7]).toStrictEqual({ exists: false })
  })

  test('envelope dbId: the request dbId if given (even for open), else the new id; a failed open reports the default db', async () => {
    const r = await same([
      { type: 'open', messageId: 1, args: { simulateError: true } },
      { type: 'open', messageId: 2, dbId: 'client-chosen', args: { filename: '$TMP/a.db' } },
      { type: 'open', messageId: 3, args: { filename: '$TMP/b.db' } },
      { type: 'open', messageId: 4, args: { filename: '$TMP/c.db', simulateError: 1 } },
      { type: 'open', messageId: 5, dbId: 'x', args: { filename: '$TMP/d.db', vfs: 'no-such-vfs' } },
      { $exists: '$TMP/c.db' },
    ])
    expect(last(r[0])).toMatchObject({ type: 'error', dbId: undefined })
    expect(errorOf(r[0])).toMatchObject({ message: 'Throwing because of simulateError flag.', errorClass: 'Error' })
    expect(last(r[1])).toMatchObject({ dbId: 'client-chosen', result: { dbId: 'DB1' } })
    expect(last(r[2])).toMatchObject({ dbId: 'DB2', result: { dbId: 'DB2' } })
    expect(last(r[3])).toMatchObject({ type: 'error', dbId: 'DB1' })
    expect(last(r[4])).toMatchObject({ type: 'error', dbId: 'x' })
    expect(errorOf(r[4])).toMatchObject({
      message: 'SQLITE_ERROR: sqlite3 result code 1: no such vfs: no-such-vfs',
      errorClass: 'SQLite3Error',
    })
    expect(r[5]).toStrictEqual({ exists: false })
  })

  test('a vfs name is used even for ":memory:" (memdb)', async () => {
    const r = await same([
      { type: 'open', messageId: 1, args: { filename: ':memory:', vfs: 'memdb' } },
      select('select 1 as one'),
    ])
    expect(last(r[0]).type).toBe('open')
  })
})

describe('close', () => {
  test('with nothing open close is a no-op answering {filename: undefined}, with or without a dbId', async () => {
    const r = await same([
      { type: 'close', messageId: 1 },
      { type: 'close', messageId: 2, dbId: 'nope' },
      { type: 'close', messageId: 3, args: { unlink: true } },
    ])
    expect(last(r[0])).toStrictEqual({ type: 'close', dbId: undefined, messageId: 1, result: { filename: undefined } })
    expect(last(r[1]).dbId).toBe('nope')
  })

  test('closing twice: the second close finds nothing to close', async () => {
    const r = await same([
      open('$TMP/a.db'),
      { type: 'close', messageId: 1, dbId: '$DB1' },
      { type: 'close', messageId: 2, dbId: '$DB1' },
      { type: 'close', messageId: 3 },
      exec('select 1'),
    ])
    expect(last(r[1])).toStrictEqual({ type: 'close', dbId: 'DB1', messageId: 1, result: { filename: '$TMP/a.db' } })
    expect(last(r[2]).result).toStrictEqual({ filename: undefined })
    expect(errorOf(r[4]).message).toBe('DB is not opened.')
  })

  test('unlink: a truthy unlink removes the file; a non-object args does not; unlinking a temp or memory db is harmless', async () => {
    const r = await same([
      open('$TMP/a.db'),
      exec('create table t(a)'),
      { type: 'close', messageId: 1, args: 'unlink' },
      { $exists: '$TMP/a.db' },
      open('$TMP/a.db'),
      { type: 'close', messageId: 2, args: { unlink: false } },
      { $exists: '$TMP/a.db' },
      open('$TMP/a.db'),
      { type: 'close', messageId: 3, args: { unlink: true } },
      { $exists: '$TMP/a.db' },
      open('$TMP/b.db'),
      exec('create table t(a)'),
      { type: 'close', messageId: 4, args: { unlink: 1 } },
      { $exists: '$TMP/b.db' },
      open(':memory:'),
      { type: 'close', messageId: 5, args: { unlink: true } },
      open(''),
      { type: 'close', messageId: 6, args: { unlink: true } },
    ])
    expect(r[3]).toStrictEqual({ exists: true })
    expect(r[6]).toStrictEqual({ exists: true })
    expect(last(r[8]).result).toStrictEqual({ filename: '$TMP/a.db' })
    expect(r[9]).toStrictEqual({ exists: false })
    expect(r[13]).toStrictEqual({ exists: false })
    expect(last(r[15]).result).toStrictEqual({ filename: ':memory:' })
    expect(last(r[17]).result).toStrictEqual({ filename: '' })
  })

  test('an unknown dbId closes the default db, and is echoed', async () => {
    const r = await same([
      open('$TMP/a.db'),
      { type: 'close', messageId: 1, dbId: 'nope' },
      exec('select 1'),
    ])
    expect(last(r[1])).toStrictEqual({ type: 'close', dbId: 'nope', messageId: 1, result: { filename: '$TMP/a.db' } })
    expect(errorOf(r[2]).message).toBe('DB is not opened.')
  })

  test('without a dbId close closes the first-opened db and reports the new default db', async () => {
    const r = await same([
      open('$TMP/a.db'),
      open('$TMP/b.db'),
      open('$TMP/c.db'),
      { type: 'close', messageId: 1 },
      { type: 'close', messageId: 2, dbId: '$DB3' },
      exec({ sql: 'pragma database_list', rowMode: '$file' }),
      { type: 'close', messageId: 3 },
      { type: 'close', messageId: 4 },
    ])
    expect(last(r[3])).toMatchObject({ dbId: 'DB2', result: { filename: '$TMP/a.db' } })
    expect(last(r[4])).toMatchObject({ dbId: 'DB3', result: { filename: '$TMP/c.db' } })
    expect(last(r[5]).dbId).toBe('DB2')
    expect(last(r[6])).toMatchObject({ dbId: undefined, result: { filename: '$TMP/b.db' } })
    expect(last(r[7]).result).toStrictEqual({ filename: undefined })
  })

  test('a stale dbId closes the default db', async () => {
    const r = await same([
      open('$TMP/a.db'),
      open('$TMP/b.db'),
      { type: 'close', messageId: 1, dbId: '$DB1' },
      { type: 'close', messageId: 2, dbId: '$DB1' },
    ])
    expect(last(r[2])).toMatchObject({ dbId: 'DB1', result: { filename: '$TMP/a.db' } })
    expect(last(r[3])).toMatchObject({ dbId: 'DB1', result: { filename: '$TMP/b.db' } })
  })
})

describe('exec: sql', () => {
  test('a string args is the sql; the result is the options object', async () => {
    const r = await same([
      open('$TMP/a.db'),
      exec("create table t(a, b); insert into t values(1, 'x'), (2, 'y')"),
      exec({ sql: 'insert into t values(3, null)' }),
      exec({ sql: 'select * from t' }),
      select('select a, b from t order by a'),
    ])
    expect(last(r[1]).result).toStrictEqual({ sql: "create table t(a, b); insert into t values(1, 'x'), (2, 'y')" })
    expect(last(r[3]).result).toStrictEqual({ sql: 'select * from t' })
    expect(rowsOf(r[4])).toStrictEqual([{ a: 1, b: 'x' }, { a: 2, b: 'y' }, { a: 3, b: null }])
  })

  test('an array of strings is joined without a separator', async () => {
    const r = await same([
      open(':memory:'),
      exec({ sql: ['create table t(a);', 'insert into t values(1);', 'insert into t values(2)'] }),
      exec({ sql: ['select count(*) ', 'as n from t'], rowMode: 'object' }),
    ])
    expect(rowsOf(r[2])).toStrictEqual([{ n: 2 }])
  })

  test('UTF-8 bytes as sql: Uint8Array, Int8Array and ArrayBuffer', async () => {
    const text = "select 'héllo 🌍' as s"
    const bytes = Buffer.from(text)
    const r = await same([
      open(':memory:'),
      exec({ sql: new Uint8Array(bytes), rowMode: 0 }),
      exec({ sql: new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length), rowMode: 0 }),
      exec({ sql: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length), rowMode: 0 }),
    ])
    for (const i of [1, 2, 3]) expect(rowsOf(r[i])).toStrictEqual(['héllo 🌍'])
  })

  test('empty, missing, [] and unsupported sql are errors', async () => {
    const r = await same([
      open(':memory:'),
      exec(''),
      exec({ sql: '' }),
      { type: 'exec', messageId: 'no args' },
      exec({ sql: null }),
      exec({ sql: [] }),
      exec({ sql: {} }),
      exec({ sql: true }),
    ])
    expect(errorOf(r[1])).toMatchObject({ message: "'exec' requires input SQL.", errorClass: 'Error' })
    expect(errorOf(r[3])).toMatchObject({ message: "'exec' requires input SQL.", input: { type: 'exec', messageId: 'no args' } })
    expect(errorOf(r[5])).toMatchObject({ message: 'exec() requires an SQL string.', errorClass: 'SQLite3Error' })
    expect(errorOf(r[6])).toMatchObject({ message: 'Missing SQL argument or unsupported SQL value type.', errorClass: 'SQLite3Error' })
  })

  test('whitespace, comments and bare semicolons are a successful no-op', async () => {
    const r = await same([
      open(':memory:'),
      exec('  ;  ; '),
      exec({ sql: '-- nothing here', rowMode: 'array' }),
      exec({ sql: ' ; ', callback: 'cb' }),
    ])
    expect(last(r[2]).result).toStrictEqual({ sql: '-- nothing here', rowMode: 'array', resultRows: [] })
    expect(r[3][0]).toStrictEqual({ type: 'cb', columnNames: [], rowNumber: null, row: undefined })
  })

  test('only the first statement with result columns yields rows; every other statement is stepped once', async () => {
    const r = await same([
      open(':memory:'),
      exec('create table t(a); insert into t values(1), (2)'),
      exec({ sql: 'insert into t values(3); select a from t order by a; select a * 10 from t', rowMode: 0 }),
      exec({ sql: 'select a from t where 0; select a from t', resultRows: [], columnNames: [] }),
      exec({ sql: 'insert into t values(4) returning a * 2 as d', rowMode: 'object' }),
      exec({ sql: 'pragma user_version', rowMode: 0 }),
      exec('select a from t; delete from t where a = 1; select 1'),
      select('select count(*) as n, min(a) as lo from t'),
    ])
    expect(rowsOf(r[2])).toStrictEqual([1, 2, 3])
    expect(last(r[3]).result).toMatchObject({ resultRows: [], columnNames: ['a'] })
    expect(rowsOf(r[4])).toStrictEqual([{ d: 8 }])
    expect(rowsOf(r[5])).toStrictEqual([0])
    expect(rowsOf(r[7])).toStrictEqual([{ n: 3, lo: 2 }])
  })

  test("argument checks come first: rowMode 'stmt', then missing sql, then \"DB is not opened.\"", async () => {
    const r = await same([
      exec({ sql: 'select 1', rowMode: 'stmt' }),
      exec({ sql: '' }),
      exec('select 1'),
      { type: 'export', messageId: 'e' },
      open(':memory:'),
      exec({ sql: 'select 1', rowMode: 'stmt' }),
    ])
    expect(errorOf(r[0])).toMatchObject({
      message: "Invalid rowMode for 'exec': stmt mode does not work in the Worker API.",
      errorClass: 'Error',
    })
    expect(errorOf(r[1]).message).toBe("'exec' requires input SQL.")
    expect(last(r[2])).toMatchObject({ type: 'error', dbId: undefined, result: { message: 'DB is not opened.' } })
    expect(errorOf(r[3])).toMatchObject({ operation: 'export', message: 'DB is not opened.' })
    expect(errorOf(r[5]).message).toBe("Invalid rowMode for 'exec': stmt mode does not work in the Worker API.")
  })
})

describe('exec: bind', () => {
  test('array, object (:a, $a, @a) and scalar binds; unbound parameters are NULL', async () => {
    const r = await same([
      open(':memory:'),
      select('select ?1 as a, ?2 as b, ?3 as c', { bind: [1, 'two', null] }),
      select('select :a as a, $b as b, @c as c, :d as d', { bind: { ':a': 1, $b: 'x', '@c': 2.5 } }),
      select('select ? as a, ? as b', { bind: 5 }),
      select('select ?1 as a, ?2 as b', { bind: [1] }),
      select('select ?1 as a', { bind: 'text' }),
    ])
    expect(rowsOf(r[1])).toStrictEqual([{ a: 1, b: 'two', c: null }])
    expect(rowsOf(r[2])).toStrictEqual([{ a: 1, b: 'x', c: 2.5, d: null }])
    expect(rowsOf(r[3])).toStrictEqual([{ a: 5, b: null }])
    expect(rowsOf(r[4])).toStrictEqual([{ a: 1, b: null }])
  })

  test('bind errors: prefix-less or unknown names, too many values, unsupported types, BigInt out of range', async () => {
    const r = await same([
      open(':memory:'),
      select('select :a as a', { bind: { a: 1 } }),
      select('select :a as a', { bind: { ':zz': 1 } }),
      select('select ? as a', { bind: [1, 2] }),
      select('select ? as a', { bind: [{}] }),
      select('select ? as a', { bind: [2n ** 70n] }),
    ])
    expect(errorOf(r[1])).toMatchObject({ message: 'Invalid bind() parameter name: a', errorClass: 'SQLite3Error' })
    expect(errorOf(r[2]).message).toBe('Invalid bind() parameter name: :zz')
    expect(errorOf(r[3]).message).toBe('Bind index 2 is out of range.')
    expect(errorOf(r[4]).message).toBe('Unsupported bind() argument type: object')
    expect(errorOf(r[5]).message).toBe('BigInt value is too big to store without precision loss: 1180591620717411303424')
  })

  test('a falsy scalar bind (0, "", false) is not bound: the parameter stays NULL', async () => {
    const r = await same([
      open(':memory:'),
      select('select ? as v', { bind: 0 }),
      select('select ? as v', { bind: '' }),
      select('select ? as v', { bind: false }),
      select('select ? as v', { bind: [0] }),
    ])
    for (const i of [1, 2, 3]) expect(rowsOf(r[i])).toStrictEqual([{ v: null }])
    expect(rowsOf(r[4])).toStrictEqual([{ v: 0 }])
  })

  test('bound value types: booleans, integers, doubles, BigInt, NULL, text, blobs', async () => {
    const values = [
      true, false, 7, 2 ** 31, 2 ** 40, -(2 ** 53 - 1), 1.5, NaN, 2n ** 60n, -5n, null, undefined, 'text',
      new Uint8Array([1, 2, 3]), new Uint8Array(0), new Int8Array([-1, 2]), new Uint8Array([4, 5]).buffer,
    ]
    const r = await same([
      open(':memory:'),
      ...values.map((v) => select('select ?1 as v, typeof(?1) as t', { bind: [v] })),
    ])
    expect(rowsOf(r[1])).toStrictEqual([{ v: 1, t: 'integer' }])
    expect(rowsOf(r[9])).toStrictEqual([{ v: { bigint: String(2n ** 60n) }, t: 'integer' }])
    expect(rowsOf(r[14])).toStrictEqual([{ v: { bytes: [1, 2, 3] }, t: 'blob' }])
    expect(rowsOf(r[16])).toStrictEqual([{ v: { bytes: [255, 2] }, t: 'blob' }])
  })

  test('bind goes to the first statement that has parameters, and is ignored when none has', async () => {
    const r = await same([
      open(':memory:'),
      exec({ sql: 'create table t(a); insert into t values(?); insert into t values(?)', bind: [5] }),
      exec({ sql: 'select a from t order by rowid', rowMode: 0 }),
      exec({ sql: 'select 1 as x', bind: [1, 2], rowMode: 0 }),
    ])
    expect(rowsOf(r[2])).toStrictEqual([5, null])
    expect(rowsOf(r[3])).toStrictEqual([1])
  })
})

describe('exec: rowMode, resultRows, columnNames', () => {
  const setup = [open(':memory:'), exec("create table t(a, b); insert into t values(1, 'x'), (2, 'y')")]
  const q = 'select a, b from t order by a'

  test("'array', 'object', a column index and '$name'", async () => {
    const r = await same([
      ...setup,
      exec({ sql: q, rowMode: 'array' }),
      exec({ sql: q, rowMode: 'object' }),
      exec({ sql: q, rowMode: 0 }),
      exec({ sql: q, rowMode: 1 }),
      exec({ sql: q, rowMode: '$b' }),
      exec({ sql: 'select 1 as k, 2 as k', rowMode: 'object' }),
    ])
    expect(rowsOf(r[2])).toStrictEqual([[1, 'x'], [2, 'y']])
    expect(rowsOf(r[3])).toStrictEqual([{ a: 1, b: 'x' }, { a: 2, b: 'y' }])
    expect(rowsOf(r[4])).toStrictEqual([1, 2])
    expect(rowsOf(r[5])).toStrictEqual(['x', 'y'])
    expect(rowsOf(r[6])).toStrictEqual(['x', 'y'])
    expect(rowsOf(r[7])).toStrictEqual([{ k: 2 }])
  })

  test('out-of-range indexes and unknown $names fail on the first row (not without rows)', async () => {
    const r = await same([
      ...setup,
      exec({ sql: q, rowMode: 2 }),
      exec({ sql: q, rowMode: -1 }),
      exec({ sql: q, rowMode: '$B' }),
      exec({ sql: q, rowMode: '$zz' }),
      exec({ sql: 'select a from t where 0', rowMode: '$zz' }),
    ])
    expect(errorOf(r[2]).message).toBe('Column index 2 is out of range.')
    expect(errorOf(r[3]).message).toBe('Column index -1 is out of range.')
    expect(errorOf(r[4]).message).toBe('SQLITE_NOTFOUND: exec(): unknown result column: B')
    expect(errorOf(r[5])).toMatchObject({
      message: 'SQLITE_NOTFOUND: exec(): unknown result column: zz',
      errorClass: 'SQLite3Error',
      input: { args: { sql: q, rowMode: '$zz', resultRows: [] } },
    })
    expect(last(r[6]).result).toStrictEqual({ sql: 'select a from t where 0', rowMode: '$zz', resultRows: [] })
  })

  test("invalid rowModes: 'stmt', 'bogus', '0', '$', 1.5", async () => {
    const r = await same([
      ...setup,
      exec({ sql: q, rowMode: 'stmt' }),
      exec({ sql: q, rowMode: 'bogus' }),
      exec({ sql: q, rowMode: '0' }),
      exec({ sql: q, rowMode: '$' }),
      exec({ sql: q, rowMode: 1.5 }),
    ])
    expect(errorOf(r[2]).errorClass).toBe('Error')
    expect(errorOf(r[3])).toMatchObject({ message: 'Invalid rowMode: bogus', errorClass: 'SQLite3Error' })
    expect(errorOf(r[4]).message).toBe('Invalid rowMode: 0')
    expect(errorOf(r[5]).message).toBe('Invalid rowMode: $')
    expect(errorOf(r[6]).message).toBe('Invalid rowMode: 1.5')
  })

  // oo1 builds these messages as `new SQLite3Error('Invalid rowMode:', value)`, and a second
  // argument of type 'object' (null too) becomes Error's options: no value, no trailing space.
  test('a null or object rowMode or returnValue is invalid, and the message names no value', async () => {
    const r = await same([
      ...setup,
      exec({ sql: q, rowMode: null }),
      exec({ sql: q, rowMode: {} }),
      exec({ sql: q, returnValue: null }),
    ])
    expect(errorOf(r[2]).message).toBe('Invalid rowMode:')
    expect(last(r[2]).result.input.args.resultRows).toStrictEqual([])
    expect(errorOf(r[3]).message).toBe('Invalid rowMode:')
    expect(errorOf(r[4]).message).toBe('Invalid returnValue value:')
  })

  test('resultRows is created when rowMode is set without callback or returnValue, or by returnValue "resultRows"', async () => {
    const r = await same([
      ...setup,
      exec({ sql: q }),
      exec({ sql: q, rowMode: 'array' }),
      exec({ sql: q, resultRows: [] }),
      exec({ sql: q, resultRows: [['pre']], rowMode: 0 }),
      exec({ sql: q, rowMode: 'array', returnValue: 'this' }),
      exec({ sql: q, returnValue: 'resultRows' }),
      exec({ sql: q, rowMode: 'object', callback: 'cb' }),
      exec({ sql: q, rowMode: 'array', callback: 'cb', returnValue: 'resultRows' }),
    ])
    expect(last(r[2]).result).toStrictEqual({ sql: q })
    expect(last(r[3]).result.resultRows).toStrictEqual([[1, 'x'], [2, 'y']])
    expect(last(r[4]).result.resultRows).toStrictEqual([[1, 'x'], [2, 'y']])
    expect(last(r[5]).result.resultRows).toStrictEqual([['pre'], 1, 2])
    expect(last(r[6]).result).toStrictEqual({ sql: q, rowMode: 'array', returnValue: 'this' })
    expect(last(r[7]).result.resultRows).toStrictEqual([[1, 'x'], [2, 'y']])
    expect('resultRows' in last(r[8]).result).toBe(false)
    expect(last(r[9]).result.resultRows).toStrictEqual([[1, 'x'], [2, 'y']])
  })

  test('columnNames are appended to a given array, from the first statement with result columns, even without rows', async () => {
    const r = await same([
      ...setup,
      exec({ sql: 'select 1 as k, 2 as k', columnNames: ['pre-existing'] }),
      exec({ sql: 'select a from t where 0', columnNames: [] }),
      exec({ sql: 'insert into t values(3, null)', columnNames: [] }),
      exec({ sql: 'insert into t values(4, null); select b, a from t limit 1', columnNames: ['c0'], rowMode: 0 }),
    ])
    expect(last(r[2]).result.columnNames).toStrictEqual(['pre-existing', 'k', 'k'])
    expect(last(r[3]).result.columnNames).toStrictEqual(['a'])
    expect(last(r[4]).result.columnNames).toStrictEqual([])
    expect(last(r[5]).result).toMatchObject({ columnNames: ['c0', 'b', 'a'], resultRows: ['x'] })
  })
})

describe('exec: string callback', () => {
  const setup = [open(':memory:'), exec("create table t(a, b); insert into t values(1, 'x'), (2, 'y')")]
  const q = 'select a, b from t order by a'

  test('one message per row, then the end-of-rows sentinel (rowNumber null, row undefined), then the response', async () => {
    const r = await same([
      ...setup,
      exec({ sql: q, callback: 'row' }, { messageId: 'cb1', dbId: '$DB1' }),
      exec({ sql: q, callback: 'row', rowMode: 'object' }),
      exec({ sql: q, callback: 'row', rowMode: '$b', resultRows: [] }),
    ])
    expect(r[2]).toStrictEqual([
      { type: 'row', columnNames: ['a', 'b'], rowNumber: 1, row: [1, 'x'] },
      { type: 'row', columnNames: ['a', 'b'], rowNumber: 2, row: [2, 'y'] },
      { type: 'row', columnNames: ['a', 'b'], rowNumber: null, row: undefined },
      { type: 'exec', dbId: 'DB1', messageId: 'cb1', result: { sql: q, callback: 'row', columnNames: ['a', 'b'] } },
    ])
    expect(r[3][0].row).toStrictEqual({ a: 1, b: 'x' })
    expect(r[4].map((m) => m.row)).toStrictEqual(['x', 'y', undefined, undefined])
    expect(last(r[4]).result.resultRows).toStrictEqual(['x', 'y'])
  })

  test('no rows: only the sentinel; no result columns at all: the sentinel with columnNames []', async () => {
    const r = await same([
      ...setup,
      exec({ sql: 'select a from t where 0', callback: 'row' }),
      exec({ sql: 'create table u(x)', callback: 'row' }),
    ])
    expect(r[2]).toHaveLength(2)
    expect(r[2][0]).toStrictEqual({ type: 'row', columnNames: ['a'], rowNumber: null, row: undefined })
    expect(r[3][0]).toStrictEqual({ type: 'row', columnNames: [], rowNumber: null, row: undefined })
  })

  test('row messages carry the given columnNames array, appended to', async () => {
    const r = await same([...setup, exec({ sql: q, callback: 'row', columnNames: ['given'] })])
    expect(r[2][0].columnNames).toStrictEqual(['given', 'a', 'b'])
  })

  test('an error mid-stream: the rows already sent stay, no sentinel, then the error with the mutated args', async () => {
    const sql = 'select a, abs(a) as m from (select 1 as a union all select 2 union all select -9223372036854775808)'
    const r = await same([
      open(':memory:'),
      exec({ sql, callback: 'row', resultRows: [] }),
      exec({ sql, callback: 'row', rowMode: '$nope' }),
    ])
    expect(r[1].map((m) => m.type)).toStrictEqual(['row', 'row', 'error'])
    expect(errorOf(r[1])).toMatchObject({
      message: 'SQLITE_ERROR: sqlite3 result code 1: integer overflow',
      input: { args: { resultRows: [[1, 1], [2, 2]], callback: 'row', columnNames: ['a', 'm'] } },
    })
    expect(r[2].map((m) => m.type)).toStrictEqual(['error'])
  })

  test('blobs reach a callback and resultRows (when not both at once)', async () => {
    const r = await same([
      open(':memory:'),
      exec({ sql: "select x'0102' as b, zeroblob(0) as z, x'' as e", callback: 'row' }),
      exec({ sql: "select x'0304' as b", resultRows: [] }),
      exec({ sql: "select x'0506' as b", rowMode: 'object' }),
    ])
    expect(r[1][0].row).toStrictEqual([{ bytes: [1, 2] }, { bytes: [] }, { bytes: [] }])
    expect(rowsOf(r[2])).toStrictEqual([[{ bytes: [3, 4] }]])
    expect(rowsOf(r[3])).toStrictEqual([{ b: { bytes: [5, 6] } }])
  })
})

describe('exec: returnValue, saveSql, countChanges, lastInsertRowId', () => {
  test("returnValue 'resultRows' / 'saveSql' / 'this' create what they name; anything else is an error", async () => {
    const r = await same([
      open(':memory:'),
      exec({ sql: 'select 1 as a', returnValue: 'resultRows' }),
      exec({ sql: 'select 1 as a', returnValue: 'saveSql' }),
      exec({ sql: 'select 1 as a', returnValue: 'this' }),
      exec({ sql: 'select 1 as a', returnValue: 'bogus' }),
    ])
    expect(last(r[1]).result.resultRows).toStrictEqual([[1]])
    expect(last(r[2]).result.saveSql).toStrictEqual(['select 1 as a'])
    expect(last(r[3]).result).toStrictEqual({ sql: 'select 1 as a', returnValue: 'this' })
    expect(errorOf(r[4])).toMatchObject({ message: 'Invalid returnValue value: bogus', errorClass: 'SQLite3Error' })
  })

  test('saveSql collects each statement, trimmed, with empty statements folded into the next', async () => {
    const r = await same([
      open(':memory:'),
      exec({ sql: 'create table t(a);insert into t values(1) ; ; select * from t', saveSql: [] }),
      exec({ sql: '  select 2;\n  select 3  ', saveSql: ['given'], rowMode: 0 }),
    ])
    expect(last(r[1]).result.saveSql).toStrictEqual(['create table t(a);', 'insert into t values(1) ;', '; select * from t'])
    expect(last(r[2]).result).toMatchObject({ resultRows: [2] })
  })

  test('countChanges sums every statement including trigger changes; 64 gives a BigInt; DDL counts 0', async () => {
    const r = await same([
      open(':memory:'),
      exec({ sql: 'create table t(a); create table log(x)', countChanges: true }),
      exec({
        sql: 'create trigger tr after insert on t begin insert into log values(new.a); end',
        countChanges: 1,
      }),
      exec({ sql: 'insert into t values(1), (2); update t set a = a + 10', countChanges: true }),
      exec({ sql: 'delete from log', countChanges: 64 }),
      exec({ sql: 'begin; insert into t values(3); commit', countChanges: true }),
      exec({ sql: 'select * from t', countChanges: false }),
    ])
    expect(last(r[1]).result.changeCount).toBe(0)
    expect(last(r[3]).result.changeCount).toBe(6)
    expect(last(r[4]).result.changeCount).toStrictEqual({ bigint: '2' })
    expect(last(r[5]).result.changeCount).toBe(2)
    expect('changeCount' in last(r[6]).result).toBe(false)
  })

  test('lastInsertRowId is a BigInt read after all the sql; 0n before any insert; unchanged by update/delete', async () => {
    const r = await same([
      open(':memory:'),
      exec({ sql: 'create table t(a)', lastInsertRowId: true }),
      exec({ sql: 'insert into t values(1), (2); insert into t values(3)', lastInsertRowId: true }),
      exec({ sql: 'update t set a = 0; delete from t where rowid = 1', lastInsertRowId: 1 }),
      exec({ sql: 'insert into t(rowid, a) values(9007199254740993, 4)', lastInsertRowId: true, countChanges: true }),
      exec({ sql: 'select 1', lastInsertRowId: false }),
    ])
    expect(last(r[1]).result.lastInsertRowId).toStrictEqual({ bigint: '0' })
    expect(last(r[2]).result.lastInsertRowId).toStrictEqual({ bigint: '3' })
    expect(last(r[3]).result.lastInsertRowId).toStrictEqual({ bigint: '3' })
    expect(last(r[4]).result).toMatchObject({ lastInsertRowId: { bigint: '9007199254740993' }, changeCount: 1 })
    expect(last(r[5]).result).toStrictEqual({ sql: 'select 1', lastInsertRowId: false })
  })
})

describe('values', () => {
  test('integers beyond ±(2^53−1) come back as BigInt; REAL, ±Infinity, NULL, TEXT, BLOB', async () => {
    const r = await same([
      open(':memory:'),
      select(
        'select 9007199254740991 as a, 9007199254740992 as b, -9007199254740991 as c, -9007199254740992 as d, ' +
        '9223372036854775807 as e, -9223372036854775808 as f',
      ),
      select("select 1.5 as r, 1e999 as inf, -1e999 as ninf, null as n, 'héllo 🌍' as s, x'00ff' as b, zeroblob(0) as z"),
      exec('create table t(a integer)'),
      exec({ sql: 'insert into t values(?), (?)', bind: [2n ** 62n, 12n] }),
      exec({ sql: 'select a, typeof(a) from t order by a', rowMode: 'array' }),
    ])
    expect(rowsOf(r[1])).toStrictEqual([{
      a: 9007199254740991,
      b: { bigint: '9007199254740992' },
      c: -9007199254740991,
      d: { bigint: '-9007199254740992' },
      e: { bigint: '9223372036854775807' },
      f: { bigint: '-9223372036854775808' },
    }])
    expect(rowsOf(r[2])).toStrictEqual([{
      r: 1.5, inf: Infinity, ninf: -Infinity, n: null, s: 'héllo 🌍', b: { bytes: [0, 255] }, z: { bytes: [] },
    }])
    expect(rowsOf(r[5])).toStrictEqual([[12, 'integer'], [{ bigint: String(2n ** 62n) }, 'integer']])
  })
})

describe('errors', () => {
  test('SQLite errors name the extended result code; constraint failures', async () => {
    const r = await same([
      open('$TMP/a.db'),
      exec('selec 1'),
      exec('select * from nope'),
      exec('create table t(a primary key, b not null, c check (c > 0), d unique); insert into t values(1, 1, 1, 1)'),
      exec('insert into t values(1, 1, 1, 5)'),
      exec('insert into t values(3, null, 1, 5)'),
      exec('insert into t values(3, 3, 0, 5)'),
      exec('insert into t values(3, 3, 1, 1)'),
      exec('pragma foreign_keys = on; create table c(p references t(a)); insert into c values(99)'),
      exec('select abs(-9223372036854775808)'),
    ])
    expect(errorOf(r[1])).toStrictEqual({
      operation: 'exec',
      message: 'SQLITE_ERROR: sqlite3 result code 1: near "selec": syntax error',
      errorClass: 'SQLite3Error',
      input: { type: 'exec', messageId: 'x', args: 'selec 1' },
      stack: true,
    })
    expect(errorOf(r[2]).message).toBe('SQLITE_ERROR: sqlite3 result code 1: no such table: nope')
    expect(errorOf(r[4]).message).toBe('SQLITE_CONSTRAINT_PRIMARYKEY: sqlite3 result code 1555: UNIQUE constraint failed: t.a')
    expect(errorOf(r[5]).message).toBe('SQLITE_CONSTRAINT_NOTNULL: sqlite3 result code 1299: NOT NULL constraint failed: t.b')
    expect(errorOf(r[6]).message).toBe('SQLITE_CONSTRAINT_CHECK: sqlite3 result code 275: CHECK constraint failed: c > 0')
    expect(errorOf(r[7]).message).toBe('SQLITE_CONSTRAINT_UNIQUE: sqlite3 result code 2067: UNIQUE constraint failed: t.d')
    expect(errorOf(r[8]).message).toBe('SQLITE_CONSTRAINT_FOREIGNKEY: sqlite3 result code 787: FOREIGN KEY constraint failed')
    expect(errorOf(r[9]).message).toBe('SQLITE_ERROR: sqlite3 result code 1: integer overflow')
  })

  test('a failing statement does not undo the statements before it (autocommit)', async () => {
    const r = await same([
      open(':memory:'),
      exec('create table t(a)'),
      exec('insert into t values(5); insert into nope values(1)'),
      exec({ sql: 'select a from t', rowMode: 0 }),
    ])
    expect(last(r[2]).type).toBe('error')
    expect(rowsOf(r[3])).toStrictEqual([5])
  })
})

describe('dbId resolution (docs/worker1.md#dbid-resolution)', () => {
  // Each db knows its own name, so a query shows which db a request ran on.
  // (page_size: see export below.)
  const named = (name) => [
    open(`$TMP/${name}.db`),
    exec(`pragma page_size = 4096; create table which(name); insert into which values('${name}')`,
      { dbId: `$DB${name === 'A' ? 1 : 2}` }),
  ]
  const which = (extra) => exec({ sql: 'select name from which', rowMode: 0 }, extra)

  test('exec without dbId runs on the first-opened db; an unknown or closed dbId falls back to the default db and is echoed', async () => {
    const r = await same([
      ...named('A'),
      ...named('B'),
      which({}),
      which({ dbId: 'nope' }),
      which({ dbId: '$DB2' }),
      { type: 'close', messageId: 'c', dbId: '$DB1' },
      which({ dbId: '$DB1' }),
      which({}),
      { type: 'export', messageId: 'e', dbId: 'nope' },
      { type: 'config-get', messageId: 'g', dbId: '$DB1' },
    ])
    expect(last(r[4])).toMatchObject({ dbId: 'DB1', result: { resultRows: ['A'] } })
    expect(last(r[5])).toMatchObject({ dbId: 'nope', result: { resultRows: ['A'] } })
    expect(last(r[6])).toMatchObject({ dbId: 'DB2', result: { resultRows: ['B'] } })
    expect(last(r[8])).toMatchObject({ dbId: 'DB1', result: { resultRows: ['B'] } })
    expect(last(r[9])).toMatchObject({ dbId: 'DB2', result: { resultRows: ['B'] } })
    expect(last(r[10])).toMatchObject({ type: 'export', dbId: 'nope', result: { filename: '$TMP/B.db' } })
    expect(last(r[11]).dbId).toBe('DB1')
  })

  test('with no db open: exec fails with "DB is not opened." and close is a no-op, both echoing the request dbId', async () => {
    const r = await same([
      open('$TMP/A.db'),
      { type: 'close', messageId: 'c' },
      which({ dbId: '$DB1' }),
      which({}),
      { type: 'close', messageId: 'c', dbId: '$DB1' },
    ])
    expect(last(r[2])).toMatchObject({ type: 'error', dbId: 'DB1', result: { message: 'DB is not opened.' } })
    expect(last(r[3])).toMatchObject({ type: 'error', dbId: undefined })
    expect(last(r[4])).toStrictEqual({ type: 'close', dbId: 'DB1', messageId: 'c', result: { filename: undefined } })
  })
})

describe('export', () => {
  // The reference build's default page size is 8192 (SQLITE_DEFAULT_PAGE_SIZE); a stock build's
  // is 4096. The scenarios set it, so that equal contents give images of equal length.
  test('export returns the db image, its filename and mimetype', async () => {
    const r = await same([
      open('$TMP/e.db'),
      exec('pragma page_size = 4096; create table t(a); insert into t values(1), (2)'),
      { type: 'export', messageId: 'e1' },
      open(':memory:'),
      exec('pragma page_size = 4096; create table u(b)', { dbId: '$DB2' }),
      { type: 'export', messageId: 'e2', dbId: '$DB2', args: { ignored: true } },
    ])
    expect(last(r[2])).toStrictEqual({
      type: 'export',
      dbId: 'DB1',
      messageId: 'e1',
      result: {
        byteArray: { header: 'SQLite format 3\0', length: 8192 },
        filename: '$TMP/e.db',
        mimetype: 'application/x-sqlite3',
      },
    })
    expect(last(r[5]).result).toMatchObject({ byteArray: { header: 'SQLite format 3\0' }, filename: ':memory:' })
  })
})

describe('transactions', () => {
  test('a transaction spans messages; errors inside it leave it open', async () => {
    const r = await same([
      open('$TMP/a.db'),
      exec('create table t(a)'),
      exec('begin'),
      exec('insert into t values(1)'),
      exec({ sql: 'select count(*) from t', rowMode: 0 }),
      exec('rollback'),
      exec({ sql: 'select count(*) from t', rowMode: 0 }),
      exec('begin; insert into t values(2)'),
      exec('begin'),
      exec('insert into nope values(1)'),
      exec('commit'),
      exec({ sql: 'select a from t', rowMode: 0 }),
      exec('savepoint s1; insert into t values(3)'),
      exec('rollback to s1; release s1'),
      exec({ sql: 'select a from t', rowMode: 0 }),
    ])
    expect(rowsOf(r[4])).toStrictEqual([1])
    expect(rowsOf(r[6])).toStrictEqual([0])
    expect(errorOf(r[8]).message).toBe('SQLITE_ERROR: sqlite3 result code 1: cannot start a transaction within a transaction')
    expect(rowsOf(r[11])).toStrictEqual([2])
    expect(rowsOf(r[14])).toStrictEqual([2])
  })
})

// ---------------------------------------------------------------------------------------------
// What the reference gets wrong or cannot do: our worker alone.

describe('beyond the reference (our worker only)', () => {
  const ourRun = async (steps) => runSteps(await start('ours'), steps)

  oursTest('blobs with a string callback and resultRows: rows, sentinel and a normal response (the reference never answers)', async () => {
    const r = await ourRun([
      open(':memory:'),
      exec({ sql: "select x'0102' as b union all select x'03'", callback: 'row', resultRows: [] }, { messageId: 'blob' }),
    ])
    expect(r[1]).toStrictEqual([
      { type: 'row', columnNames: ['b'], rowNumber: 1, row: [{ bytes: [1, 2] }] },
      { type: 'row', columnNames: ['b'], rowNumber: 2, row: [{ bytes: [3] }] },
      { type: 'row', columnNames: ['b'], rowNumber: null, row: undefined },
      {
        type: 'exec',
        dbId: 'DB1',
        messageId: 'blob',
        result: {
          sql: "select x'0102' as b union all select x'03'",
          callback: 'row',
          resultRows: [[{ bytes: [1, 2] }], [{ bytes: [3] }]],
          columnNames: ['b'],
        },
      },
    ])
  })

  oursTest('a numeric sql is an error, not a pointer (the reference reads wasm memory)', async () => {
    const r = await ourRun([open(':memory:'), exec({ sql: 42 }, { messageId: 'n' })])
    expect(r[1]).toStrictEqual([{
      type: 'error',
      dbId: 'DB1',
      messageId: 'n',
      result: {
        operation: 'exec',
        message: 'Missing SQL argument or unsupported SQL value type.',
        errorClass: 'SQLite3Error',
        input: { type: 'exec', messageId: 'n', args: { sql: 42 } },
        stack: true,
      },
    }])
  })

  oursTest('open with a key creates an SQLCipher file; a wrong key fails with SQLITE_NOTADB', async () => {
    const w = await start('ours')
    const r = await runSteps(w, [
      open('$TMP/secret.db', { args: { filename: '$TMP/secret.db', key: 'k' } }),
      exec("create table t(v); insert into t values('the plans')"),
      { type: 'close', messageId: 'c' },
      open('$TMP/secret.db', { args: { filename: '$TMP/secret.db', key: 'k' } }),
      exec({ sql: 'select v from t', rowMode: 0 }),
      { type: 'close', messageId: 'c' },
      open('$TMP/secret.db', { args: { filename: '$TMP/secret.db', key: 'wrong' } }),
    ])
    expect(last(r[0]).type).toBe('open')
    expect(rowsOf(r[4])).toStrictEqual(['the plans'])
    const file = path.join(w.channel.dirs[0], 'secret.db')
    const bytes = fs.readFileSync(file)
    expect(bytes.subarray(0, 16).toString('latin1')).not.toBe('SQLite format 3\0')
    expect(bytes.includes(Buffer.from('the plans'))).toBe(false)
    const err = errorOf(r[6])
    expect(err.operation).toBe('open')
    expect(err.message).toMatch(/^SQLITE_NOTADB/)
  })

  oursTest('terminating the worker while dbs are open does not take the process down', () => {
    // In a child process: when this fails, it aborts the process that terminated the worker.
    const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'sqlite3-cluster-w1-'))
    const script = `
      const { Worker } = require('worker_threads')
      const w = new Worker(${JSON.stringify(ourModulePath('worker1'))})
      w.on('message', (m) => {
        if (m.type === 'sqlite3-api') {
          w.postMessage({ type: 'open', messageId: 1, args: { filename: ':memory:' } })
          w.postMessage({ type: 'open', messageId: 2, args: { filename: ${JSON.stringify(path.join(dir, 'a.db'))} } })
          w.postMessage({ type: 'exec', messageId: 3, args: 'begin; create table t(a)' })
        }
        if (m.messageId === 3) w.terminate().then(() => console.log('terminated'))
      })`
    try {
      const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 })
      expect({ status: child.status, signal: child.signal, stdout: child.stdout.trim() })
        .toStrictEqual({ status: 0, signal: null, stdout: 'terminated' })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  oursTest('a Worker1 db and a create() Database share one encrypted file both ways', async () => {
    const sqlite = require('..')
    const call = (db, method, ...args) =>
      new Promise((resolve, reject) => db[method](...args, (err, result) => (err ? reject(err) : resolve(result))))
    const w = await start('ours')
    const dir = await w.mkdtemp()
    const filename = path.join(dir, 'shared.db')
    const key = 'shared secret'
    const one = async (msg) => last(await w.request(msg))

    expect((await one({ type: 'open', messageId: 1, args: { filename, key } })).type).toBe('open')
    expect((await one(exec("create table t(v); insert into t values('from worker1')"))).type).toBe('exec')
    const db = await sqlite.create({ filename, key })
    try {
      expect(await call(db, 'all', 'select v from t order by rowid')).toEqual([{ v: 'from worker1' }])
      await call(db, 'run', "insert into t values('from create()')")
      const res = await one(exec({ sql: 'select v from t order by rowid', rowMode: 0 }))
      expect(res.result.resultRows).toEqual(['from worker1', 'from create()'])
    } finally {
      await call(db, 'close')
    }
    expect((await one({ type: 'close', messageId: 2 })).result.filename).toBe(filename)
  })
})
