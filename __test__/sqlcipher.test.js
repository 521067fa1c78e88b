'use strict'
// SQLCipher: encryption at rest, key checking at open, deferred keying, quiet failures.

const fs = require('fs')
const os = require('os')
const path = require('path')
const { spawnSync } = require('child_process')
const sqlite = require('..')

const ROOT = path.join(__dirname, '..')
let dir
beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-cipher-')) })
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const call = (db, method, ...args) =>
  new Promise((resolve, reject) => db[method](...args, (err, result) => (err ? reject(err) : resolve(result))))

async function makeEncrypted(file, key) {
  const db = await sqlite.create({ filename: file, key })
  await call(db, 'exec', "CREATE TABLE secrets (v TEXT); INSERT INTO secrets VALUES ('the plans')")
  await call(db, 'close')
}

describe('encryption at rest', () => {
  test('an encrypted file starts with random salt, not the SQLite header, and hides its text', async () => {
    const file = path.join(dir, 'header.db')
    await makeEncrypted(file, 'passphrase one')
    const bytes = fs.readFileSync(file)
    expect(bytes.subarray(0, 16).toString('latin1')).not.toBe('SQLite format 3\0')
    expect(bytes.includes(Buffer.from('the plans'))).toBe(false)
    expect(bytes.includes(Buffer.from('CREATE TABLE'))).toBe(false)
  })

  test('the right passphrase reads the data back', async () => {
    const file = path.join(dir, 'roundtrip.db')
    await makeEncrypted(file, 'passphrase two')
    const db = await sqlite.create({ filename: file, key: 'passphrase two' })
    expect(await call(db, 'get', 'SELECT v FROM secrets')).toEqual({ v: 'the plans' })
    await call(db, 'close')
  })

  test('a raw key of 64 hex digits and the same 32 bytes as a Buffer open the same database', async () => {
    const file = path.join(dir, 'raw.db')
    const hex = 'a1'.repeat(32)
    await makeEncrypted(file, hex)
    const db = await sqlite.create({ filename: file, key: Buffer.from(hex, 'hex') })
    expect(await call(db, 'get', 'SELECT v FROM secrets')).toEqual({ v: 'the plans' })
    await call(db, 'close')
    // 64 hex digits are a raw key; the same digits with a quote around them are a passphrase,
    // which derives a different key.
    await expect(sqlite.create({ filename: file, key: `'${hex}'` })).rejects.toMatchObject({ code: 'SQLITE_NOTADB' })
  })
})

describe('wrong or missing key', () => {
  test('create() rejects with SQLITE_NOTADB and a message that suggests a wrong key', async () => {
    const file = path.join(dir, 'wrong.db')
    await makeEncrypted(file, 'right key')
    const err = await sqlite.create({ filename: file, key: 'wrong key' }).catch((e) => e)
    expect(err).toBeInstanceOf(Error)
    expect(err.code).toBe('SQLITE_NOTADB')
    expect(err.errno).toBe(sqlite.NOTADB)
    expect(err.message).toMatch(/^SQLITE_NOTADB: file is not a database: the key is wrong/)
    expect(err.message).not.toContain('wrong key') // never echo key material
  })

  test('opening an encrypted file without a key rejects and says it may be encrypted', async () => {
    const file = path.join(dir, 'nokey.db')
    await makeEncrypted(file, 'some key')
    await expect(sqlite.create(file)).rejects.toMatchObject({
      code: 'SQLITE_NOTADB',
      message: expect.stringContaining('encrypted'),
    })
  })

  test('SQLCipher prints nothing on stderr for a wrong key unless verbose', async () => {
    const file = path.join(dir, 'quiet.db')
    await makeEncrypted(file, 'k1')
    const script = (verbose) => `require(${JSON.stringify(ROOT)}).create({ filename: ${JSON.stringify(file)}, key: 'k2', verbose: ${verbose} })
      .then(() => process.exit(3), (e) => { console.log(e.code); })`
    const quiet = spawnSync(process.execPath, ['-e', script(false)], { encoding: 'utf8', timeout: 20000 })
    expect(quiet.stdout.trim()).toBe('SQLITE_NOTADB')
    expect(quiet.stderr).toBe('')
    const loud = spawnSync(process.execPath, ['-e', script(true)], { encoding: 'utf8', timeout: 20000 })
    expect(loud.stdout.trim()).toBe('SQLITE_NOTADB')
    expect(loud.stderr).toMatch(/hmac|ERROR/i)
  })
})

describe('deferred keying (bits without key, then init)', () => {
  test('statements fail with a clear error until init({ key }); a wrong key rejects; the right one unlocks', async () => {
    const file = path.join(dir, 'deferred.db')
    await makeEncrypted(file, 'later key')
    const db = await sqlite.create({ filename: file, bits: 128 })
    const before = await call(db, 'get', 'SELECT v FROM secrets').catch((e) => e)
    expect(before.message).toMatch(/waiting for its key: call db\.init\(\{ key \}\)/)
    await expect(db.init({ key: 'not it' })).rejects.toMatchObject({ code: 'SQLITE_NOTADB' })
    await expect(db.init({ key: 'later key' })).resolves.toBe(db)
    expect(await call(db, 'get', 'SELECT v FROM secrets')).toEqual({ v: 'the plans' })
    // Already keyed: init resolves at once.
    await expect(db.init({ key: 'later key' })).resolves.toBe(db)
    await call(db, 'close')
  })

  test('init() without a usable key is a TypeError', async () => {
    const db = await sqlite.create({ filename: path.join(dir, 'deferred2.db'), bits: 256 })
    await expect(db.init({})).rejects.toThrow(TypeError)
    await expect(db.init({ key: 42 })).rejects.toThrow(/key must be a non-empty string or a Buffer/)
    await call(db, 'close')
  })

  test('a new deferred database is created encrypted by init()', async () => {
    const file = path.join(dir, 'deferred-new.db')
    const db = await sqlite.create({ filename: file, bits: 256 })
    await db.init({ key: 'fresh' })
    await call(db, 'run', 'CREATE TABLE t (x)')
    await call(db, 'close')
    expect(fs.readFileSync(file).subarray(0, 15).toString('latin1')).not.toBe('SQLite format 3')
    await expect(sqlite.create(file)).rejects.toMatchObject({ code: 'SQLITE_NOTADB' })
  })
})

describe('several create() of one encrypted file in one process', () => {
  test('share the connection when the key matches, and a different key is refused', async () => {
    const file = path.join(dir, 'shared.db')
    await makeEncrypted(file, 'shared key')
    const a = await sqlite.create({ filename: file, key: 'shared key' })
    const b = await sqlite.create({ filename: file, key: 'shared key' })
    await call(a, 'run', "INSERT INTO secrets VALUES ('from a')")
    expect(await call(b, 'all', 'SELECT v FROM secrets ORDER BY rowid')).toEqual([{ v: 'the plans' }, { v: 'from a' }])
    await expect(sqlite.create({ filename: file, key: 'other key' })).rejects.toMatchObject({ code: 'SQLITE_NOTADB' })
    await expect(sqlite.create({ filename: file })).rejects.toMatchObject({ code: 'SQLITE_NOTADB' })
    await call(a, 'close')
    await call(b, 'close')
  })
})
