'use strict'
// The same API on a dqlite cluster (docs/dqlite.md#sessions): a `dqlite://host:port,…/name`
// filename in create() gives a Database on that dqlite database, through its leader. Checked
// against a 3-node cluster of the package's node program (fixtures/dqlite-cluster.js), with
// the real node-sqlite3 package as the reference for what each call answers, and with real
// writer processes while the leader is killed (kill -9).

const { execFile } = require('child_process')
const fs = require('fs')
const os = require('os')
const path = require('path')
const sqlite3 = require('sqlite3')
const ours = require('..')
const { describeCluster, Cluster, call, until } = require('./fixtures/dqlite-cluster')

jest.setTimeout(90000)

/** What a call answered, errors included (by code and errno). */
const outcome = (promise) => promise.then((ok) => ({ ok }), (e) => ({ code: e.code, errno: e.errno }))

describe('dqlite:// options', () => {
  const refused = { key: 'secret key', bits: 256, serve: true, connect: true, standalone: true, sock: '/tmp/x.sock', secret: 's' }
  test.each(Object.keys(refused))('`%s` is refused with a TypeError that names it', async (name) => {
    const opening = ours.create({ filename: 'dqlite://127.0.0.1:9/app', [name]: refused[name] })
    await expect(opening).rejects.toThrow(TypeError)
    await expect(opening).rejects.toThrow(`option \`${name}\` does not apply to a dqlite:// database`)
  })

  test('a URL without nodes or database name is refused', async () => {
    await expect(ours.create('dqlite://127.0.0.1:9')).rejects.toThrow(/dqlite:\/\/host:port/)
  })
})

describeCluster('a Database on a 3-node dqlite cluster', () => {
  let cluster
  const writers = new Set()
  beforeAll(async () => {
    cluster = await Cluster.create(3)
    await cluster.startAll()
  })
  afterAll(async () => {
    for (const child of writers) if (child.exitCode === null) child.kill('SIGKILL')
    await cluster.stopAll()
  })

  test('run/get/all/each/exec answer as node-sqlite3 answers', async () => {
    const db = await ours.create(cluster.url('values'))
    expect(db.cluster.role).toBe('dqlite')
    expect(db.cluster.leader).toBe(await cluster.leader())
    const real = new sqlite3.Database(':memory:')
    const script = [
      ['run', 'CREATE TABLE v(id INTEGER PRIMARY KEY, i, f, t, b, n)'],
      ['run', 'INSERT INTO v(i, f, t, b, n) VALUES (?, ?, ?, ?, ?)', [42, 1.5, 'héllo', Buffer.from([0, 1, 255]), null]],
      ['run', 'INSERT INTO v(i, t) VALUES ($i, $t)', { $i: -7, $t: '' }],
      ['run', 'INSERT INTO v(i, f) VALUES (?, ?)', [true, 2 ** 40 + 0.25]],
      ['get', 'SELECT * FROM v WHERE id = ?', [1]],
      ['get', 'SELECT * FROM v WHERE id = 99'],
      ['all', 'SELECT id, i, f, t, b, n FROM v ORDER BY id'],
      ['each', 'SELECT id, typeof(i) AS k FROM v ORDER BY id'],
      ['all', 'INSERT INTO v(i) VALUES (5)'],
      ['run', 'SELECT count(*) FROM v'],
      ['exec', 'CREATE UNIQUE INDEX u ON v(i); UPDATE v SET n = 0 WHERE id = 1'],
      ['run', 'INSERT INTO v(i) VALUES (42)'],
      ['run', 'SELEC 1'],
      ['get', 'SELECT count(*) AS c, sum(i) AS s FROM v'],
    ]
    const ran = []
    for (const [method, sql, params] of script) {
      ran.push([sql, await outcome(call(db, method, sql, params)), await outcome(call(real, method, sql, params))])
    }
    for (const [sql, got, expected] of ran) expect({ sql, got }).toEqual({ sql, got: expected })
    await new Promise((resolve) => real.close(resolve))
    await new Promise((resolve) => db.close(resolve))
  })

  test('prepared statements answer as node-sqlite3\'s: bound values, a get() cursor, reset, finalize', async () => {
    const db = await ours.create(cluster.url('prepared'))
    const real = new sqlite3.Database(':memory:')
    const steps = async (d) => {
      const out = []
      const stmtCall = (stmt, method, ...args) => new Promise((resolve) => {
        stmt[method](...args, function (err, row) {
          resolve(err ? { code: err.code } : method === 'run' ? { lastID: this.lastID, changes: this.changes } : row ?? null)
        })
      })
      await call(d, 'run', 'CREATE TABLE p(id INTEGER PRIMARY KEY, v)')
      const insert = d.prepare('INSERT INTO p(v) VALUES (?)')
      for (const v of ['a', 'b', 'c']) out.push(await stmtCall(insert, 'run', [v]))
      const byId = d.prepare('SELECT v FROM p WHERE id = $id')
      out.push(await stmtCall(byId, 'get', { $id: 2 }))
      const every = d.prepare('SELECT id, v FROM p ORDER BY id')
      // get() without values goes on from the last row it gave, and stays at the end.
      for (let i = 0; i < 5; i++) out.push(await stmtCall(every, 'get'))
      await new Promise((resolve) => every.reset(resolve))
      out.push(await stmtCall(every, 'get'))
      out.push(await stmtCall(every, 'all'))
      out.push(await stmtCall(insert, 'bind', ['d']))
      out.push(await stmtCall(insert, 'run'))
      out.push(await new Promise((resolve) => d.prepare('SELEC 1', (err) => resolve(err ? { code: err.code } : 'compiled'))))
      for (const stmt of [insert, byId, every]) await new Promise((resolve) => stmt.finalize(resolve))
      return out
    }
    expect(await steps(db)).toEqual(await steps(real))
    await new Promise((resolve) => real.close(resolve))
    await new Promise((resolve) => db.close(resolve))
  })

  test('guarded inputs are refused with clear errors, and every node is still alive after them', async () => {
    const db = await ours.create(cluster.url('guards'))
    await call(db, 'run', 'CREATE TABLE g(id INTEGER PRIMARY KEY, x, d DATETIME)')
    // A write with RETURNING would leave a write pending that stops a 1.11 leader.
    await expect(call(db, 'get', 'INSERT INTO g(x) VALUES (1) RETURNING id')).rejects.toThrow(/RETURNING on a write is refused/)
    // …in any statement of an exec() script, not only the first.
    await expect(call(db, 'exec', 'SELECT 1; INSERT INTO g(x) VALUES (2) RETURNING id')).rejects.toThrow(/RETURNING on a write is refused/)
    // Text with NUL would be cut by dqlite.
    await expect(call(db, 'run', 'INSERT INTO g(x) VALUES (?)', ['a\0b'])).rejects.toThrow(/NUL/)
    // A Date binds as its milliseconds, an integer: a DATETIME column stays readable.
    await call(db, 'run', 'INSERT INTO g(x, d) VALUES (?, ?)', [1, new Date(1700000000123)])
    expect(await call(db, 'get', 'SELECT d FROM g WHERE x = 1')).toEqual({ d: 1700000000123 })
    expect(await call(db, 'get', 'SELECT count(*) AS n FROM g')).toEqual({ n: 1 })
    // A REAL or BLOB in a DATETIME column, or anything but an integer in a BOOLEAN one, stops
    // the node that reads it back: such binds are refused where they would be stored, and only there.
    await call(db, 'run', 'CREATE TABLE typed(id INTEGER PRIMARY KEY, price REAL, at DATETIME, ok BOOLEAN)')
    const refused = /parameter \d+ holds .* dqlite 1\.11 node that reads it back stops/
    await expect(call(db, 'run', 'INSERT INTO typed(at) VALUES (?)', [1.5])).rejects.toThrow(/holds a REAL, and would land in typed\.at, declared DATETIME/)
    await expect(call(db, 'run', 'INSERT INTO typed VALUES (?, ?, ?, ?)', [1, 2.5, Buffer.from([1]), 1])).rejects.toThrow(refused)
    await expect(call(db, 'run', 'UPDATE typed SET ok = ? WHERE price = ?', ['yes', 1.5])).rejects.toThrow(/holds text, and would land in typed\.ok, declared BOOLEAN/)
    await expect(call(db, 'run', 'INSERT INTO typed(price) SELECT ?', [0.5])).rejects.toMatchObject({ code: 'SQLITE_MISMATCH' })
    const stmt = db.prepare('INSERT INTO typed(price, at, ok) VALUES (?, ?, ?)')
    await expect(new Promise((resolve, reject) => stmt.run([1.5, 'tomorrow', 0.5], (e) => (e ? reject(e) : resolve())))).rejects.toThrow(refused)
    await new Promise((resolve) => stmt.finalize(resolve))
    // The same values where they are safe: a REAL column, a WHERE, whole numbers, text in DATETIME.
    await call(db, 'run', 'INSERT INTO typed(price, at, ok) VALUES (?, ?, ?)', [1.5, new Date(1700000000123), 1])
    await call(db, 'run', 'INSERT INTO typed(price, at, ok) VALUES (?, ?, ?)', [2.5, '2026-12-03 10:00:00', '0'])
    expect(await call(db, 'run', 'UPDATE typed SET ok = ? WHERE price = ?', [0, 1.5])).toEqual({ lastID: 2, changes: 1 })
    // A column this session adds is known at once (what it learnt of the table is dropped).
    await call(db, 'run', 'ALTER TABLE typed ADD COLUMN later DATE')
    await expect(call(db, 'run', 'UPDATE typed SET later = ?', [0.25])).rejects.toThrow(/typed\.later, declared DATE/)
    expect(await call(db, 'all', 'SELECT price, at, ok FROM typed ORDER BY id')).toEqual([
      { price: 1.5, at: 1700000000123, ok: 0 },
      { price: 2.5, at: '2026-12-03 10:00:00', ok: 0 },
    ])
    // A value written in the SQL itself, as a whole expression, is read the same way, in every
    // statement of an exec() script (none of which runs then).
    await expect(call(db, 'run', 'INSERT INTO typed(at) VALUES (1.5)')).rejects.toThrow(/the value 1\.5 written in the SQL is a REAL, and would land in typed\.at, declared DATETIME: .* Write an integer or text there/)
    await expect(call(db, 'run', "UPDATE typed SET ok = 'yes' WHERE id = 1")).rejects.toThrow(/written in the SQL is text, and would land in typed\.ok, declared BOOLEAN/)
    await expect(call(db, 'exec', "INSERT INTO typed(price) VALUES (3.5); INSERT INTO typed(at) VALUES (X'00')")).rejects.toThrow(/X'00' written in the SQL is a BLOB/)
    await call(db, 'run', "INSERT INTO typed(price, at, ok) VALUES (3.5, '2026-12-04', 1)")
    expect(await call(db, 'all', 'SELECT price, at, ok FROM typed WHERE id > 2')).toEqual([{ price: 3.5, at: '2026-12-04', ok: 1 }])
    expect(cluster.nodes.every((n) => cluster.alive(n))).toBe(true)
    await new Promise((resolve) => db.close(resolve))
  })

  test('kill -9 of the leader under two writer processes: writes resume, acknowledged writes are there once, errors only CLUSTER_MASTER_LOST', async () => {
    const db = await ours.create(cluster.url('failover'))
    await call(db, 'run', 'CREATE TABLE w(writer TEXT, seq INTEGER)')
    const WRITER = path.join(__dirname, 'dqlite', 'writer.js')
    const run = (name) => new Promise((resolve) => {
      const child = execFile(process.execPath, [WRITER, cluster.url('failover'), name, '5000'], { encoding: 'utf8' },
        (err, stdout) => resolve(err && !stdout ? { failed: String(err) } : JSON.parse(stdout)))
      writers.add(child)
    })
    const results = Promise.all([run('a'), run('b')])
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const leader = await cluster.leader()
    const killedAt = Date.now()
    process.kill(cluster.node(leader).child.pid, 'SIGKILL')
    const [a, b] = await results
    expect(a.failed).toBeUndefined()
    expect(b.failed).toBeUndefined()

    const outcomes = [...a.outcomes, ...b.outcomes]
    const errors = outcomes.filter(([, what]) => what !== 'ok').map(([, what]) => what)
    const resumed = outcomes.filter(([at, what]) => what === 'ok' && at > killedAt).map(([at]) => at - killedAt).sort((x, y) => x - y)[0]
    const rows = await call(db, 'all', 'SELECT writer, seq, count(*) AS n FROM w GROUP BY writer, seq')
    const count = new Map(rows.map((r) => [`${r.writer}:${r.seq}`, r.n]))
    const missing = [...a.acked.map((s) => `a:${s}`), ...b.acked.map((s) => `b:${s}`)].filter((k) => count.get(k) !== 1)
    const twice = rows.filter((r) => r.n > 1)
    console.log(`dqlite failover: ${a.acked.length + b.acked.length} acknowledged writes from 2 processes; leader killed, ` +
      `first acknowledged write ${resumed} ms later; errors ${JSON.stringify(errors)}; ` +
      `acknowledged writes missing or doubled: ${missing.length}; rows stored twice: ${twice.length}`)
    expect(resumed).toBeDefined()
    expect(errors.filter((code) => code !== 'CLUSTER_MASTER_LOST')).toEqual([])
    expect(missing).toEqual([])
    expect(twice).toEqual([])
    await new Promise((resolve) => db.close(resolve))
  })
})

describeCluster('a graceful leadership transfer with a transaction open', () => {
  let cluster
  beforeAll(async () => {
    cluster = await Cluster.create(3)
    await cluster.startAll()
  })
  afterAll(() => cluster.stopAll())

  test('SIGTERM to the leader: the open transaction is aborted until ROLLBACK, the next one commits on the new leader, the leader event says so', async () => {
    const db = await ours.create(cluster.url('handover'))
    await call(db, 'run', 'CREATE TABLE t(x)')
    const first = db.cluster.leader
    expect(first).toBe(await cluster.leader())
    const moves = []
    db.on('leader', (address, previous) => moves.push([address, previous]))

    await call(db, 'run', 'BEGIN')
    await call(db, 'run', 'INSERT INTO t VALUES (1)')
    const node = cluster.node(first)
    process.kill(node.child.pid, 'SIGTERM')
    // The node hands leadership over, then stops (dqlite-node/src/main.rs).
    expect(await node.exited).toEqual({ code: 0, signal: null })
    expect(node.log).toMatch(/leadership handed to node/)

    const aborted = (promise) => promise.then(() => 'answered', (e) => e.code)
    expect(await aborted(call(db, 'run', 'INSERT INTO t VALUES (2)'))).toBe('CLUSTER_TXN_ABORTED')
    expect(await aborted(call(db, 'run', 'COMMIT'))).toBe('CLUSTER_TXN_ABORTED')
    await call(db, 'run', 'ROLLBACK')

    await call(db, 'run', 'BEGIN')
    await call(db, 'run', 'INSERT INTO t VALUES (3)')
    await call(db, 'run', 'COMMIT')
    const now = await cluster.leader(cluster.addresses().filter((a) => a !== first))
    expect(db.cluster.leader).toBe(now)
    expect(now).not.toBe(first)
    expect(moves).toEqual([[now, first]])
    // Nothing of the aborted transaction was committed.
    expect(await call(db, 'all', 'SELECT x FROM t')).toEqual([{ x: 3 }])
    await new Promise((resolve) => db.close(resolve))
  })

  test('kill -9 of the leader during a COMMIT: CLUSTER_MASTER_LOST (outcome unknown), not an aborted transaction; the Database goes on', async () => {
    // The node the test before stopped comes back (its id is in its folder), so that two of
    // three nodes are left after the kill.
    cluster.nodes.forEach((node, i) => { if (!cluster.alive(node)) cluster.start(i) })
    expect(await until(async () => (await cluster.voters()) === 3, 20000)).toBe(true)
    const db = await ours.create(cluster.url('commit-lost'))
    await call(db, 'run', 'CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB)')
    // A large commit: its pages are replicated at COMMIT, which takes long enough to be cut.
    await call(db, 'run', 'BEGIN')
    for (let i = 0; i < 8; i++) await call(db, 'run', 'INSERT INTO big(b) VALUES (?)', [Buffer.alloc(4 << 20, i)])
    const leader = db.cluster.leader
    const committing = call(db, 'run', 'COMMIT').then(() => 'committed', (e) => e.code)
    await new Promise((resolve) => setTimeout(resolve, 30))
    process.kill(cluster.node(leader).child.pid, 'SIGKILL')
    const outcome = await committing
    // Committed before the kill is possible on a fast machine; aborted never is.
    expect(['committed', 'CLUSTER_MASTER_LOST']).toContain(outcome)
    console.log(`dqlite COMMIT cut by kill -9 of the leader: ${outcome}`)
    // No transaction is left open or aborted: the next statements run on the new leader.
    const rows = (await call(db, 'get', 'SELECT count(*) AS n FROM big')).n
    expect([0, 8]).toContain(rows)
    await call(db, 'run', 'BEGIN')
    await call(db, 'run', 'INSERT INTO big(b) VALUES (?)', [Buffer.from('after')])
    await call(db, 'run', 'COMMIT')
    expect((await call(db, 'get', 'SELECT count(*) AS n FROM big')).n).toBe(rows + 1)
    await new Promise((resolve) => db.close(resolve))
  })
})

describeCluster('ORMs and the module routes on a dqlite cluster', () => {

  let cluster
  beforeAll(async () => {
    cluster = await Cluster.create(3)
    await cluster.startAll()
  })
  afterAll(() => cluster.stopAll())

  test('Worker1 (the Promiser) opens the URL; its exec answers as on a local file, oo1\'s bind errors included', async () => {
    const { sqlite3Worker1Promiser } = require('../promiser')
    const { wrapWorker } = require('./worker1/harness')
    const side = async (filename) => {
      const worker = wrapWorker('ours')
      const promiser = await sqlite3Worker1Promiser.v2({ worker })
      const answers = []
      const ask = (type, args, dbId) => promiser({ type, dbId, args }).then((m) => m.result, (m) => ({ error: m.result.message }))
      const { dbId } = await ask('open', { filename })
      answers.push(await ask('exec', { sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT); ; INSERT INTO t(name) VALUES (?), (?)', bind: ['a', 'b'], countChanges: true, lastInsertRowId: true }, dbId))
      answers.push(await ask('exec', { sql: 'SELECT id, name FROM t ORDER BY id; SELECT 1', rowMode: 'object', resultRows: [], columnNames: [] }, dbId))
      answers.push(await ask('exec', { sql: 'SELECT name FROM t WHERE id = $id', bind: { $id: 2 }, rowMode: 'array', resultRows: [] }, dbId))
      answers.push(await ask('exec', { sql: 'INSERT INTO t(name) VALUES (?)', bind: ['x', 'y'] }, dbId))
      answers.push(await ask('exec', { sql: 'SELECT * FROM t WHERE id = :id', bind: { $nope: 1 } }, dbId))
      answers.push(await ask('exec', { sql: 'BEGIN; UPDATE t SET name = upper(name); COMMIT; SELECT group_concat(name) AS g FROM t', rowMode: 'object', resultRows: [] }, dbId))
      answers.push(await ask('exec', { sql: 'INSERT INTO t(id, name) VALUES (1, \'dup\')' }, dbId))
      await ask('close', {}, dbId)
      await worker.close()
      // The fields that name the database differ by design.
      return answers.map((a) => ({ ...a, dbId: undefined, filename: undefined }))
    }
    const local = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-w1-')), 'w1.db')
    const dqlite = await side(cluster.url('worker1'))
    expect(dqlite).toEqual(await side(local))
    expect(dqlite[1].resultRows).toEqual([{ id: 1, name: 'a' }, { id: 2, name: 'b' }])
    expect(dqlite[3].error).toMatch(/Bind index 2 is out of range/)
  })

  test('knex through driver(): schema, inserts with ids, update, transaction committed and rolled back, unique violation', async () => {
    const Sqlite3Client = require('knex/lib/dialects/sqlite3')
    const driver = ours.driver({ busyTimeout: 5000 })
    const client = class extends Sqlite3Client {
      _driver() {
        return driver
      }
    }
    const knex = require('knex')({ client, connection: { filename: cluster.url('knex') }, useNullAsDefault: true, acquireConnectionTimeout: 10000 })
    try {
      await knex.schema.createTable('t', (table) => {
        table.increments('id')
        table.string('c').unique()
      })
      expect(await knex.schema.hasTable('t')).toBe(true)
      expect(await knex('t').insert({ c: 'a' })).toEqual([1])
      expect(await knex('t').insert({ c: 'b' })).toEqual([2])
      expect(await knex('t').where({ id: 2 }).update({ c: 'b2' })).toBe(1)
      await knex.transaction(async (trx) => { await trx('t').insert({ c: 'committed' }) })
      await expect(knex.transaction(async (trx) => {
        await trx('t').insert({ c: 'rolled back' })
        throw new Error('boom')
      })).rejects.toThrow('boom')
      await expect(knex('t').insert({ c: 'a' })).rejects.toMatchObject({ code: 'SQLITE_CONSTRAINT', errno: 19 })
      expect(await knex('t').orderBy('id').pluck('c')).toEqual(['a', 'b2', 'committed'])
    } finally {
      await knex.destroy()
    }
  })

  test('the `sqlite` wrapper, the module\'s own Database and cached.Database take the URL as it is', async () => {
    const { open } = require('sqlite')
    const db = await open({ filename: cluster.url('wrapper'), driver: ours.Database })
    await db.exec('CREATE TABLE t(x INTEGER PRIMARY KEY, y TEXT)')
    expect(await db.run('INSERT INTO t(y) VALUES (?)', 'one')).toMatchObject({ lastID: 1, changes: 1 })
    expect(await db.get('SELECT y FROM t WHERE x = ?', 1)).toEqual({ y: 'one' })
    await db.close()

    const cached = await new Promise((resolve, reject) => {
      const d = ours.cached.Database(cluster.url('wrapper'), (err) => (err ? reject(err) : resolve(d)))
    })
    expect(cached.filename).toBe(cluster.url('wrapper'))
    expect(ours.cached.Database(cluster.url('wrapper'))).toBe(cached)
    expect(await call(cached, 'all', 'SELECT y FROM t')).toEqual([{ y: 'one' }])
    await new Promise((resolve) => cached.close(resolve))
  })
})
