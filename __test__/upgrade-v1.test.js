'use strict'
// Upgrading from 1.x (docs/upgrading-from-1x.md): files 1.x keyed on SQLCipher 3 (fixtures/v1, see its
// README) open with the options the 1.x app passed, migrated once to SQLCipher 4 with the
// original kept beside them as `<file>.sqlcipher3-backup`; 1.x's own test programs run
// unmodified. Every test works on a copy of a fixture in a fresh temporary folder, in real
// processes (upgrade-v1/reader.js) that are killed after each test.

const { spawn } = require('child_process')
const crypto = require('crypto')
const fs = require('fs')
const os = require('os')
const path = require('path')
const sqlite = require('..')

jest.setTimeout(60000)

const ROOT = path.join(__dirname, '..')
const FIXTURES = path.join(__dirname, 'fixtures', 'v1')
const READER = path.join(__dirname, 'upgrade-v1', 'reader.js')
const V1 = path.dirname(require.resolve('sqlite3-cluster-v1/package.json'))
const BACKUP = '.sqlcipher3-backup'

/** The content of every `.db` fixture (fixtures/v1/README.md). */
const EXPECTED = {
  count: 305,
  userVersion: 7,
  checksum: '1b22202049e1c7966b0b57fd18e0f0b5451c30e40ee9cd102b841eb8cfc869d6',
}

/** The options the 1.x app passed for each fixture. */
const V1_OPTIONS = {
  'aes128.db': { key: '0123456789abcdef0123456789abcdef', bits: 128 },
  'aes256.db': { key: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', bits: 256 },
  'aes256-short-key.db': { key: '0123456789abcdef0123456789abcdef', bits: 256 },
  'nobits.db': { key: 'fedcba9876543210fedcba9876543210' },
}

// ---- processes and folders, all cleaned up after each test ----

const live = new Set()
const dirs = []

afterEach(async () => {
  await Promise.all([...live].map((p) => p.kill()))
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})

/** A node process in its own process group (node:cluster forks workers into it). */
class Proc {
  constructor(args, { cwd, nodeArgs = [], name = args[0] } = {}) {
    this.name = name
    this.child = spawn(process.execPath, [...nodeArgs, ...args], { cwd, detached: true, stdio: ['pipe', 'pipe', 'pipe'] })
    live.add(this)
    this.stdout = ''
    this.stderr = ''
    this.child.stdout.setEncoding('utf8').on('data', (d) => (this.stdout += d))
    this.child.stderr.setEncoding('utf8').on('data', (d) => (this.stderr += d))
    this.child.stdin.on('error', () => {}) // the process may be gone when we write or end
    this.status = null
    // 'close', not 'exit': by then everything the process wrote has been read.
    this.exited = new Promise((resolve) => this.child.on('close', (code, signal) => {
      live.delete(this)
      this.status = { code, signal }
      resolve(this.status)
    }))
  }

  /** The JSON lines reader.js printed so far. */
  events() {
    return this.stdout.split('\n').slice(0, -1).filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
  }

  /** Polls `check()` until it returns something, the process exits or `ms` pass. */
  async until(check, ms, what) {
    const end = Date.now() + ms
    for (;;) {
      const value = check()
      if (value) return value
      const why = this.status ? `exited ${JSON.stringify(this.status)}` : Date.now() > end ? `no ${what} in ${ms} ms` : null
      if (why) throw new Error(`${this.name}: ${why}\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  /** The first `result` (or `error`) event of reader.js, with this process's stderr. */
  outcome(ms = 30000) {
    return this.until(() => {
      const e = this.events().find((ev) => ev.event === 'result' || ev.event === 'error')
      return e && { ...e, stderr: this.stderr }
    }, ms, 'result')
  }

  kill() {
    try {
      process.kill(-this.child.pid, 'SIGKILL')
    } catch {
      // the process group has already exited
    }
    return this.exited
  }
}

/** Starts reader.js with these create() options and plan. */
function reader(options, plan = {}) {
  return new Proc([READER, JSON.stringify(options), JSON.stringify(plan)], { name: `reader.js ${JSON.stringify(options)}` })
}

/** Runs reader.js to its end; resolves with its result or error event. */
async function read(options, plan = {}) {
  const p = reader(options, plan)
  p.child.stdin.end()
  const outcome = await p.outcome()
  await p.exited
  return outcome
}

function freshDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-v1-'))
  dirs.push(dir)
  return dir
}

/** A copy of a fixture in a fresh folder. */
function copyFixture(name, as = 'app.db') {
  const dir = freshDir()
  const file = path.join(dir, as)
  fs.copyFileSync(path.join(FIXTURES, name), file)
  return { dir, file, original: fs.readFileSync(file) }
}

const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')
const backupsIn = (dir) => fs.readdirSync(dir).filter((f) => f.includes(BACKUP))

/**
 * The folder holds the database and its backup and nothing else left behind by the migration
 * (no lock or temporary file); the database's own -wal/-shm and, in cluster mode, its socket
 * folder may be there.
 */
function expectMigratedFolder(dir, file, { cluster = false } = {}) {
  const base = path.basename(file)
  const allowed = [base, base + BACKUP, `${base}-wal`, `${base}-shm`, ...(cluster ? [`.${base}.cluster`] : [])]
  const listing = fs.readdirSync(dir).sort()
  expect(listing).toEqual(expect.arrayContaining([base, base + BACKUP]))
  expect(listing.filter((f) => !allowed.includes(f))).toEqual([])
}

function expectMigrated(file, original) {
  expect(fs.readFileSync(file + BACKUP).equals(original)).toBe(true)
  const migrated = fs.readFileSync(file)
  expect(migrated.equals(original)).toBe(false)
  expect(migrated.subarray(0, 16).toString('latin1')).not.toBe('SQLite format 3\0')
  expect(migrated.includes('CREATE TABLE')).toBe(false) // encrypted, not a plain copy
}

// ---- 1.x's own test programs ----

/**
 * Copies 1.x's test-cluster.js and test-standalone.js into `dir`, changing only the database
 * path, with cluster.js and standalone.js beside them that load this package (1.x's files
 * require './cluster' and './standalone').
 */
function installV1Tests(dir, file) {
  for (const name of ['test-cluster.js', 'test-standalone.js']) {
    const source = fs.readFileSync(path.join(V1, name), 'utf8')
    expect(source).toContain("'/tmp/test.cluster.sqlcipher'")
    fs.writeFileSync(path.join(dir, name), source.split("'/tmp/test.cluster.sqlcipher'").join(JSON.stringify(file)))
  }
  for (const name of ['cluster', 'standalone']) {
    fs.writeFileSync(path.join(dir, `${name}.js`), `module.exports = require(${JSON.stringify(path.join(ROOT, name))})\n`)
  }
}

/**
 * Runs test-cluster.js until every worker printed its `[result]` (it forks one worker per CPU
 * and never exits), then kills its process group. Worker 1 of that program ends with
 * `init().then(testSelect)` where init() resolves with undefined: the TypeError was only a
 * warning on the Node versions 1.x ran on, so the program runs with
 * --unhandled-rejections=warn, as it did then.
 */
async function runV1TestCluster(dir) {
  const workers = os.cpus().length
  const p = new Proc(['test-cluster.js'], { cwd: dir, nodeArgs: ['--unhandled-rejections=warn'] })
  const results = () => Array.from({ length: workers }, (_, i) => new RegExp(`^\\[result\\] ${i + 1}$`, 'm'))
  try {
    await p.until(() => /\[ERROR/.test(p.stdout + p.stderr) || results().every((r) => r.test(p.stdout)), 40000, 'worker results')
  } finally {
    await p.kill()
  }
  return { workers, stdout: p.stdout, stderr: p.stderr, results }
}

/** Runs test-standalone.js until it printed its result (it does not exit either). */
async function runV1TestStandalone(dir) {
  const p = new Proc(['test-standalone.js'], { cwd: dir })
  try {
    await p.until(() => /\[ERROR/.test(p.stdout + p.stderr) || /\[result\] standalone[\s\S]*Hello World!/.test(p.stdout), 30000, 'result')
  } finally {
    await p.kill()
  }
  return { stdout: p.stdout, stderr: p.stderr }
}

describe("1.x's test programs run unmodified", () => {
  test.each([
    ['on the file 1.x left (SQLCipher 3, key of 32 zeros, bits 128)', true],
    ['on a new file', false],
  ])('test-cluster.js then test-standalone.js %s', async (_, fromV1) => {
    const fixture = fromV1 ? copyFixture('test-cluster.sqlcipher', 'test.cluster.sqlcipher') : null
    const dir = fixture ? fixture.dir : freshDir()
    const file = path.join(dir, 'test.cluster.sqlcipher')
    installV1Tests(dir, file)

    const cluster = await runV1TestCluster(dir)
    expect(cluster.stdout + cluster.stderr).not.toMatch(/\[ERROR/)
    for (const r of cluster.results()) expect(cluster.stdout).toMatch(r)
    expect(cluster.stdout).toMatch(/^\[INIT\] begin$/m)

    const standalone = await runV1TestStandalone(dir)
    expect(standalone.stdout + standalone.stderr).not.toMatch(/\[ERROR/)
    expect(standalone.stdout).toMatch(/\[result\] standalone\n\[ \{ .*'Hello World!' \} \]/)

    if (fromV1) {
      expect(backupsIn(dir)).toEqual([path.basename(file) + BACKUP])
      expectMigrated(file, fixture.original)
    } else {
      expect(backupsIn(dir)).toEqual([])
    }
  })
})

// ---- the fixtures ----

describe('a 1.x file opens with the options the 1.x app passed, migrated once', () => {
  test.each(Object.keys(V1_OPTIONS))('%s', async (name) => {
    const { dir, file, original } = copyFixture(name)
    const options = { filename: file, ...V1_OPTIONS[name], standalone: true }

    expect(await read(options)).toMatchObject({ event: 'result', role: 'standalone', ...EXPECTED })
    expectMigrated(file, original)
    expectMigratedFolder(dir, file)

    // A new process with the same options: no second migration (same file, same backup).
    const before = { db: fs.statSync(file), backup: fs.statSync(file + BACKUP) }
    expect(await read(options, { integrity: true })).toMatchObject({ event: 'result', ...EXPECTED, integrity: 'ok' })
    expect(fs.statSync(file).ino).toBe(before.db.ino)
    expect(fs.statSync(file + BACKUP).mtimeMs).toBe(before.backup.mtimeMs)
    expect(fs.readFileSync(file + BACKUP).equals(original)).toBe(true)
    expect(backupsIn(dir)).toEqual([path.basename(file) + BACKUP])
    expectMigratedFolder(dir, file)
  })
})

describe('a wrong key changes nothing', () => {
  const call = (db, method, ...args) =>
    new Promise((resolve, reject) => db[method](...args, (err, result) => (err ? reject(err) : resolve(result))))

  test.each([
    ['aes128.db', { key: 'ffeeddccbbaa99887766554433221100', bits: 128 }],
    ['aes256.db', { key: 'ff'.repeat(32), bits: 256 }],
    ['aes256-short-key.db', { key: '0123456789abcdef0123456789abcdee', bits: 256 }],
    ['nobits.db', { key: '0123456789abcdef0123456789abcdef' }],
  ])('%s with %j: SQLITE_NOTADB, same bytes, no new file', async (name, keying) => {
    const { dir, file } = copyFixture(name)
    const hash = sha256(file)
    const err = await sqlite.create({ filename: file, ...keying, standalone: true }).then(
      (db) => call(db, 'close').then(() => null), (e) => e)
    expect(err).toBeInstanceOf(Error)
    expect(err.code).toBe('SQLITE_NOTADB')
    expect(fs.readdirSync(dir)).toEqual(['app.db'])
    expect(sha256(file)).toBe(hash)
  })

  test('aes128.db with the right key but bits 256 either opens it correctly or changes nothing', async () => {
    const { dir, file, original } = copyFixture('aes128.db')
    const outcome = await read({ filename: file, key: V1_OPTIONS['aes128.db'].key, bits: 256, standalone: true })
    if (outcome.event === 'result') {
      expect(outcome).toMatchObject(EXPECTED)
      expectMigrated(file, original)
      expectMigratedFolder(dir, file)
    } else {
      expect(outcome.code).toBe('SQLITE_NOTADB')
      expect(fs.readdirSync(dir)).toEqual(['app.db'])
      expect(fs.readFileSync(file).equals(original)).toBe(true)
    }
  })
})

describe('only one process migrates', () => {
  test('six processes (3 standalone, 3 auto cluster) open aes128.db at the same moment', async () => {
    const { dir, file, original } = copyFixture('aes128.db')
    const keying = V1_OPTIONS['aes128.db']
    const procs = [
      ...Array.from({ length: 3 }, () => reader({ filename: file, ...keying, standalone: true }, { waitForGo: true, stay: true })),
      ...Array.from({ length: 3 }, () => reader({ filename: file, ...keying }, { waitForGo: true, stay: true })),
    ]
    // Everyone has loaded the addon; then all open at once.
    await Promise.all(procs.map((p) => p.until(() => p.events().some((e) => e.event === 'ready'), 30000, 'ready')))
    for (const p of procs) p.child.stdin.write('go\n')
    const outcomes = await Promise.all(procs.map((p) => p.outcome(40000)))
    expect(outcomes.filter((o) => o.event !== 'result')).toEqual([]) // prints the errors whole
    for (const o of outcomes) expect(o).toMatchObject({ event: 'result', ...EXPECTED })
    expect(outcomes.slice(0, 3).map((o) => o.role)).toEqual(['standalone', 'standalone', 'standalone'])
    expect(outcomes.slice(3).map((o) => o.role).sort()).toEqual(['client', 'client', 'master'])

    for (const p of procs) p.child.stdin.end()
    const exits = await Promise.all(procs.map((p) => p.exited))
    expect(exits.map((e) => e.code)).toEqual([0, 0, 0, 0, 0, 0])

    expect(backupsIn(dir)).toEqual(['app.db' + BACKUP])
    expectMigrated(file, original)
    expectMigratedFolder(dir, file, { cluster: true })
    expect(await read({ filename: file, ...keying, standalone: true }, { integrity: true }))
      .toMatchObject({ event: 'result', ...EXPECTED, integrity: 'ok' })
  })
})

describe('deferred keying in a cluster (1.x test-cluster.js flow)', () => {
  test('a master opened with bits and no key; a client init({ key, bits }) reads the v1 file, migrated once', async () => {
    const { dir, file, original } = copyFixture('aes128.db')
    const keying = V1_OPTIONS['aes128.db']
    const master = reader({ filename: file, bits: 128, serve: true }, { read: false, stay: true })
    expect(await master.outcome()).toMatchObject({ event: 'result', role: 'master' })
    // Nothing is migrated before anyone gave the key.
    expect(backupsIn(dir)).toEqual([])
    expect(fs.readFileSync(file).equals(original)).toBe(true)

    const client = await read({ filename: file, bits: 128, connect: true }, { init: keying })
    expect(client).toMatchObject({ event: 'result', role: 'client', ...EXPECTED })
    expect(backupsIn(dir)).toEqual(['app.db' + BACKUP])
    expectMigrated(file, original)

    master.child.stdin.end()
    expect((await master.exited).code).toBe(0)
    const ino = fs.statSync(file).ino
    expect(await read({ filename: file, ...keying, standalone: true }, { integrity: true }))
      .toMatchObject({ event: 'result', ...EXPECTED, integrity: 'ok' })
    expect(fs.statSync(file).ino).toBe(ino)
    expect(backupsIn(dir)).toEqual(['app.db' + BACKUP])
    expectMigratedFolder(dir, file, { cluster: true })
  })
})
