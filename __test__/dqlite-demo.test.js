'use strict'
// Compatibility with upstream dqlite nodes: the same dqlite:// Database as dqlite.test.js, but on
// a 3-node cluster of go-dqlite's `dqlite-demo` (Debian package go-dqlite), not of the package's
// own node program. Checked: the node-sqlite3 API answers exactly as the real node-sqlite3 does
// on a temp file; rows written by the demo's own Go client (its HTTP key/value API) and by this
// package are seen by each other; a Database whose URL names only a follower finds the leader;
// and after a kill -9 of the leader (the demo keeps dqlite's 3 s election timeout) a write
// through the same Database commits again, with every row committed before the kill there
// exactly once. dqlite-demo is installed in CI, where its absence fails these tests; elsewhere
// they are skipped without it.

const { spawn } = require('child_process')
const fs = require('fs')
const http = require('http')
const os = require('os')
const path = require('path')
const sqlite3 = require('sqlite3')
const { Database } = require('..')
const { Cluster, call, freePort, until, sleep } = require('./fixtures/dqlite-cluster')

/** Whether an executable `name` is on the PATH. */
function onPath(name) {
  return (process.env.PATH || '').split(path.delimiter).some((dir) => {
    try {
      fs.accessSync(path.join(dir, name), fs.constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}
const installed = onPath('dqlite-demo') && onPath('dqlite')
// In CI the tests run (and beforeAll fails) without the binaries; elsewhere they are skipped.
const describeDemo = installed || process.env.CI ? describe : describe.skip

/** Three dqlite-demo nodes on 127.0.0.1, each in a process group and a data folder of its own. */
class DemoCluster extends Cluster {
  static async create(size = 3) {
    const cluster = new DemoCluster()
    cluster.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-dqlite-demo-'))
    const ports = new Set()
    while (ports.size < 2 * size) ports.add(await freePort())
    const [...free] = ports
    for (let i = 0; i < size; i++) {
      cluster.nodes.push({ api: `127.0.0.1:${free[2 * i]}`, address: `127.0.0.1:${free[2 * i + 1]}`, dir: path.join(cluster.dir, `n${i + 1}`) })
    }
    return cluster
  }

  start(i, join = []) {
    const node = this.nodes[i]
    fs.mkdirSync(node.dir, { recursive: true })
    const args = ['--api', node.api, '--db', node.address, '--dir', node.dir]
    for (const j of join) args.push('--join', j)
    node.log = ''
    // detached: a process group of its own, killed as a whole.
    node.child = spawn('dqlite-demo', args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    const keep = (d) => { node.log = (node.log + d).slice(-20000) }
    node.child.stdout.on('data', keep)
    node.child.stderr.on('data', keep)
    node.exited = new Promise((resolve) => node.child.on('exit', (code, signal) => resolve({ code, signal })))
    node.child.on('error', (e) => { node.log += `spawn error: ${e.message}\n` })
  }

  /** SIGKILL to the node's process group (kill -9). */
  kill(node) {
    if (!this.alive(node) || node.child.pid === undefined) return
    try {
      process.kill(-node.child.pid, 'SIGKILL')
    } catch {
      node.child.kill('SIGKILL')
    }
  }

  /** The first node alone, then the others joining it; ready = 3 voters, a write commits, and every HTTP API answers. */
  async startAll(ms) {
    const deadline = Date.now() + ms
    const left = () => Math.max(0, deadline - Date.now())
    this.start(0)
    if (!(await until(async () => (await this.leader()) === this.nodes[0].address, left()))) {
      throw new Error(`the first dqlite-demo did not lead within ${ms} ms:\n${this.nodes[0].log}`)
    }
    for (let i = 1; i < this.nodes.length; i++) this.start(i, [this.nodes[0].address])
    if (!(await until(async () => (await this.voters()) === this.nodes.length, left()))) {
      throw new Error(`not ${this.nodes.length} voters within ${ms} ms:\n${this.nodes.map((n) => n.log).join('\n')}`)
    }
    const wrote = await until(async () => (await this.shell('CREATE TABLE IF NOT EXISTS r(x)')) !== null &&
      (await this.shell('INSERT INTO r VALUES (1)')) !== null, left())
    if (!wrote) throw new Error(`no write committed within ${ms} ms`)
    // Each demo opens its HTTP API only once its Go app is ready, which can be a little after the
    // cluster shows it as a voter.
    const answering = (node) => api(node, 'GET', 'no-such-key').then(() => true, () => false)
    if (!(await until(async () => (await Promise.all(this.nodes.map(answering))).every(Boolean), left()))) {
      throw new Error(`not every demo's HTTP API answered within ${ms} ms`)
    }
  }
}

/** A Statement's run/get as a promise, as `call` answers. */
function stmtCall(stmt, method, params) {
  return new Promise((resolve, reject) => {
    stmt[method](params, function (err, row) {
      if (err) reject(err)
      else resolve(method === 'run' ? { lastID: this.lastID, changes: this.changes } : row)
    })
  })
}

/** What a call answered, errors included (code, errno, message). */
const outcome = (promise) => promise.then((ok) => ({ ok }), (e) => ({ code: e.code, errno: e.errno, message: e.message }))

/** `new Ctor(filename, cb)` as a promise of the open Database. */
function open(Ctor, filename) {
  return new Promise((resolve, reject) => {
    const db = new Ctor(filename, (err) => (err ? reject(err) : resolve(db)))
  })
}

/** `promise`, or undefined after `ms` (the timer cleared either way, so none is left behind). */
function within(promise, ms) {
  let timer
  const timeout = new Promise((resolve) => { timer = setTimeout(resolve, ms) })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** close(), given at most `ms`: a hung close must not hang afterAll. */
const close = (db, ms = 5000) => within(new Promise((resolve) => db.close(() => resolve())), ms)

/** The demo's HTTP key/value API (its Go client of dqlite): GET or PUT /key. */
function api(node, method, key, body) {
  const [host, port] = node.api.split(':')
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port: Number(port), method, path: `/${key}`, timeout: 5000 }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => { text += d })
      res.on('end', () => resolve({ status: res.statusCode, text: text.trim() }))
    })
    req.on('timeout', () => req.destroy(new Error(`${method} /${key} on ${node.api}: no answer within 5 s`)))
    req.on('error', reject)
    req.end(body)
  })
}

/** The same node-sqlite3 calls, on any Database: every answer, in order. */
async function script(db) {
  const out = {}
  out.create = await call(db, 'run', 'CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER, price REAL, data BLOB)')
  out.insert1 = await call(db, 'run', 'INSERT INTO items(name, qty, price, data) VALUES (?, ?, ?, ?)', ['apple', 3, 0.5, Buffer.from([0, 1, 255])])
  out.insert2 = await call(db, 'run', 'INSERT INTO items(name, qty, price) VALUES ($name, $qty, $price)', { $name: 'pear', $qty: 7, $price: 1.25 })
  out.insert3 = await call(db, 'run', 'INSERT INTO items(name) VALUES (?)', ['fig'])
  out.update = await call(db, 'run', 'UPDATE items SET qty = qty + 1 WHERE qty IS NOT NULL')
  out.get = await call(db, 'get', 'SELECT * FROM items WHERE id = ?', [1])
  out.getNone = await call(db, 'get', 'SELECT * FROM items WHERE id = ?', [99])
  out.all = await call(db, 'all', 'SELECT id, name, qty, price FROM items ORDER BY id')
  out.each = await call(db, 'each', 'SELECT name, typeof(qty) AS k FROM items ORDER BY id')

  // One prepared Statement, used twice for writes; another used twice for reads.
  const insert = await new Promise((resolve, reject) => {
    const stmt = db.prepare('INSERT INTO items(name, qty) VALUES (?, ?)', (err) => (err ? reject(err) : resolve(stmt)))
  })
  out.prepared = [await stmtCall(insert, 'run', ['kiwi', 10]), await stmtCall(insert, 'run', ['lime', 20])]
  await new Promise((resolve) => insert.finalize(resolve))
  const byId = db.prepare('SELECT name, qty FROM items WHERE id = ?')
  out.preparedGet = [await stmtCall(byId, 'get', [4]), await stmtCall(byId, 'get', [5])]
  await new Promise((resolve) => byId.finalize(resolve))

  out.exec = await call(db, 'exec', "CREATE TABLE log(msg TEXT); INSERT INTO log VALUES ('one'); " +
    "INSERT INTO log VALUES ('two'); UPDATE items SET price = 2.5 WHERE name = 'fig'")
  out.log = await call(db, 'all', 'SELECT msg FROM log ORDER BY rowid')

  // A committed transaction, and one rolled back.
  out.txn = [
    await call(db, 'run', 'BEGIN'),
    await call(db, 'run', 'INSERT INTO items(name, qty) VALUES (?, ?)', ['plum', 4]),
    await call(db, 'run', 'UPDATE items SET qty = qty * 2 WHERE name = ?', ['plum']),
    await call(db, 'run', 'COMMIT'),
  ]
  await call(db, 'run', 'BEGIN')
  out.rolledBack = await call(db, 'run', 'INSERT INTO items(name) VALUES (?)', ['ghost'])
  await call(db, 'run', 'ROLLBACK')

  out.constraint = await outcome(call(db, 'run', 'INSERT INTO items(name) VALUES (NULL)'))
  out.final = await call(db, 'all', 'SELECT * FROM items ORDER BY id')
  out.sums = await call(db, 'get', 'SELECT count(*) AS n, sum(qty) AS q, total(price) AS p FROM items')
  return out
}

describeDemo('a dqlite:// Database on a 3-node dqlite-demo cluster', () => {
  let cluster
  let db
  let tmp
  const opened = []

  beforeAll(async () => {
    if (!installed) throw new Error('dqlite-demo and dqlite are not on the PATH: CI installs Debian\'s go-dqlite')
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-demo-ref-'))
    cluster = await DemoCluster.create(3)
    const started = Date.now()
    await cluster.startAll(30000)
    console.log(`dqlite-demo: 3 voters, a committed write and 3 HTTP APIs ${Date.now() - started} ms after the first spawn`)
    db = await open(Database, cluster.url('demo'))
    opened.push(db)
  }, 45000)

  afterAll(async () => {
    for (const d of opened) await close(d)
    if (cluster) await cluster.stopAll()
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
  }, 20000)

  test('run/get/all/each, a prepared Statement, exec() and transactions answer as node-sqlite3 on a file', async () => {
    expect(db.cluster.role).toBe('dqlite')
    const real = await open(sqlite3.Database, path.join(tmp, 'reference.db'))
    const ours = await script(db)
    const reference = await script(real)
    await close(real)
    expect(ours).toEqual(reference)

    // And the exact values, not only agreement.
    expect(ours.create).toEqual({ lastID: 0, changes: 0 })
    expect(ours.insert1).toEqual({ lastID: 1, changes: 1 })
    expect(ours.insert2).toEqual({ lastID: 2, changes: 1 })
    expect(ours.insert3).toEqual({ lastID: 3, changes: 1 })
    expect(ours.update).toEqual({ lastID: 3, changes: 2 })
    expect(ours.get).toEqual({ id: 1, name: 'apple', qty: 4, price: 0.5, data: Buffer.from([0, 1, 255]) })
    expect(ours.getNone).toBeUndefined()
    expect(ours.all).toEqual([
      { id: 1, name: 'apple', qty: 4, price: 0.5 },
      { id: 2, name: 'pear', qty: 8, price: 1.25 },
      { id: 3, name: 'fig', qty: null, price: null },
    ])
    expect(ours.each).toEqual([{ name: 'apple', k: 'integer' }, { name: 'pear', k: 'integer' }, { name: 'fig', k: 'null' }])
    expect(ours.prepared).toEqual([{ lastID: 4, changes: 1 }, { lastID: 5, changes: 1 }])
    expect(ours.preparedGet).toEqual([{ name: 'kiwi', qty: 10 }, { name: 'lime', qty: 20 }])
    expect(ours.exec).toBeNull()
    expect(ours.log).toEqual([{ msg: 'one' }, { msg: 'two' }])
    expect(ours.txn[1]).toEqual({ lastID: 6, changes: 1 })
    expect(ours.txn[2]).toEqual({ lastID: 6, changes: 1 })
    expect(ours.rolledBack).toEqual({ lastID: 7, changes: 1 })
    expect(ours.constraint).toEqual({ code: 'SQLITE_CONSTRAINT', errno: 19, message: 'SQLITE_CONSTRAINT: NOT NULL constraint failed: items.name' })
    expect(ours.final.map((r) => [r.id, r.name, r.qty, r.price])).toEqual([
      [1, 'apple', 4, 0.5], [2, 'pear', 8, 1.25], [3, 'fig', null, 2.5], [4, 'kiwi', 10, null], [5, 'lime', 20, null], [6, 'plum', 8, null],
    ])
    expect(ours.sums).toEqual({ n: 6, q: 50, p: 4.25 })
  }, 20000)

  test('rows of the demo\'s own Go client and of this package are seen by each other; a follower-only URL finds the leader', async () => {
    const [n1, n2, n3] = cluster.nodes
    // dqlite-demo keeps its keys in the table `model` of the database `demo`.
    expect(await api(n2, 'PUT', 'colour', 'blue')).toEqual({ status: 200, text: 'done' })
    expect(await call(db, 'get', 'SELECT value FROM model WHERE key = ?', ['colour'])).toEqual({ value: 'blue' })
    expect(await call(db, 'run', 'INSERT INTO model(key, value) VALUES (?, ?)', ['shape', 'round'])).toEqual({ lastID: 2, changes: 1 })
    expect(await api(n3, 'GET', 'shape')).toEqual({ status: 200, text: 'round' })

    const leader = await cluster.leader()
    const follower = cluster.nodes.find((n) => n.address !== leader)
    expect([n1, n2, n3].map((n) => n.address)).toContain(leader)
    const viaFollower = await open(Database, cluster.url('demo', [follower.address]))
    opened.push(viaFollower)
    expect(await call(viaFollower, 'get', 'SELECT count(*) AS n FROM items')).toEqual({ n: 6 })
    expect(await call(viaFollower, 'run', 'INSERT INTO log VALUES (?)', ['three'])).toEqual({ lastID: 3, changes: 1 })
    expect(await call(db, 'all', 'SELECT msg FROM log ORDER BY rowid')).toEqual([{ msg: 'one' }, { msg: 'two' }, { msg: 'three' }])
  }, 15000)

  test('kill -9 of the leader: a write through the same Database commits again, and every row committed before is there once', async () => {
    const before = {
      items: await call(db, 'all', 'SELECT * FROM items ORDER BY id'),
      log: await call(db, 'all', 'SELECT rowid, msg FROM log ORDER BY rowid'),
      model: await call(db, 'all', 'SELECT key, value FROM model ORDER BY key'),
    }
    expect(before.items).toHaveLength(6)

    const leader = await cluster.leader()
    const killed = cluster.node(leader)
    expect(killed).toBeDefined()
    const killedAt = Date.now()
    cluster.kill(killed)
    await within(killed.exited, 3000)
    expect(cluster.alive(killed)).toBe(false)

    // Each try writes a name of its own, so a try whose outcome is unknown (CLUSTER_MASTER_LOST)
    // is told apart from the one acknowledged. A Database looks for a leader for 10 s before it
    // answers CLUSTER_NO_MASTER, and two surviving voters can split their votes for a few rounds
    // of the demo's 3-6 s election timeout, so the tries go on for up to 20 s.
    const retryable = /^CLUSTER_(MASTER_LOST|NO_MASTER|MASTER_UNRESPONSIVE)$|^SQLITE_BUSY$/
    const errors = []
    let acked = null
    for (let attempt = 1; !acked && Date.now() - killedAt < 20000; attempt++) {
      const name = `after-kill-${attempt}`
      try {
        acked = { name, qty: attempt, ...(await call(db, 'run', 'INSERT INTO items(name, qty) VALUES (?, ?)', [name, attempt])) }
      } catch (e) {
        errors.push(e.code || e.message)
        if (!retryable.test(e.code)) throw e
        await sleep(100)
      }
    }
    const resumed = Date.now() - killedAt
    const survivors = cluster.addresses().filter((a) => a !== leader)
    const newLeader = await until(() => cluster.leader(survivors), 5000)
    console.log(`dqlite-demo failover: leader ${leader} killed; a write through the same Database committed ` +
      `${acked ? `${resumed} ms later` : 'never (20 s)'}; new leader ${newLeader}; errors before it ${JSON.stringify(errors)}`)
    expect(acked).not.toBeNull()
    expect(acked.changes).toBe(1)
    expect(errors.filter((code) => !retryable.test(code))).toEqual([])
    expect(survivors).toContain(newLeader)
    expect(cluster.nodes.filter((n) => cluster.alive(n))).toHaveLength(2)

    // Every row committed before the kill, exactly once; then the acknowledged write once, and
    // of the tries in doubt at most one row each.
    const items = await call(db, 'all', 'SELECT * FROM items ORDER BY id')
    expect(items.slice(0, before.items.length)).toEqual(before.items)
    const after = items.slice(before.items.length)
    expect(after.filter((r) => !/^after-kill-\d+$/.test(r.name))).toEqual([])
    expect(after.filter((r) => r.name === acked.name)).toEqual([{ id: acked.lastID, name: acked.name, qty: acked.qty, price: null, data: null }])
    expect(new Set(after.map((r) => r.name)).size).toBe(after.length)
    const counts = await call(db, 'all', 'SELECT name, count(*) AS n FROM items GROUP BY name HAVING n > 1')
    expect(counts).toEqual([])
    expect(await call(db, 'all', 'SELECT rowid, msg FROM log ORDER BY rowid')).toEqual(before.log)
    expect(await call(db, 'all', 'SELECT key, value FROM model ORDER BY key')).toEqual(before.model)

    // The demo's Go client on a surviving node reads through the new leader too (its driver
    // may need a moment to find it).
    const survivor = cluster.nodes.find((n) => cluster.alive(n))
    const read = () => api(survivor, 'GET', 'colour').catch((e) => ({ error: e.message }))
    expect(await until(async () => (await read()).text === 'blue', 5000)).toBe(true)
  }, 40000)
})
