'use strict'
// The dqlite node program (dqlite-node/, docs/dqlite.md#running-nodes): a 3-node cluster on
// 127.0.0.1 started from it, a graceful stop of the leader (leadership handed over first), a
// restart, and kill -9 of the leader (writes resume; the followers survive, which they did not
// before SIGPIPE was ignored). The client here is go-dqlite's `dqlite` shell, Debian's own.
// Also the backup route the README gives (the shell's .dump, read by the real node-sqlite3) and
// `npx sqlite3-cluster-node` (bin/). Every process is started by the fixture and killed by pid
// at the end.

const { execFile } = require('child_process')
const fs = require('fs')
const os = require('os')
const path = require('path')
const sqlite3 = require('sqlite3')
const { create } = require('..')
const { describeCluster, Cluster, call, until } = require('./fixtures/dqlite-cluster')

const SHIM = path.join(__dirname, '..', 'bin', 'sqlite3-cluster-node.js')

jest.setTimeout(90000)

describeCluster('sqlite3-cluster-node: a 3-node cluster on 127.0.0.1', () => {
  let cluster
  beforeAll(async () => { cluster = await Cluster.create(3) })
  afterAll(() => cluster.stopAll())

  test('three nodes form a cluster of three voters that commits writes', async () => {
    await cluster.startAll()
    expect(await cluster.shell('CREATE TABLE t(n INTEGER)')).not.toBeNull()
    expect(await cluster.shell('INSERT INTO t VALUES (1)')).not.toBeNull()
    expect(await cluster.shell('SELECT count(*) FROM t', [cluster.nodes[2].address])).toBe('1')
  })

  test('SIGTERM: the leader hands leadership to another voter, then stops; restarted, it rejoins', async () => {
    const before = await cluster.leader()
    const node = cluster.node(before)
    process.kill(node.child.pid, 'SIGTERM')
    expect(await node.exited).toEqual({ code: 0, signal: null })
    expect(node.log).toMatch(/leadership handed to node \d+/)
    const after = await until(() => cluster.leader(), 5000)
    expect(after).not.toBeNull()
    expect(after).not.toBe(before)
    expect(await cluster.shell('INSERT INTO t VALUES (2)')).not.toBeNull()
    // A restart needs no --join: its id and membership are in its folder.
    cluster.start(cluster.nodes.indexOf(node))
    expect(await until(() => /serving .* \(restarted\)/.test(node.log), 10000)).toBe(true)
    expect(await until(async () => (await cluster.voters()) === 3, 20000)).toBe(true)
    expect(await cluster.shell('SELECT count(*) FROM t', [node.address])).toBe('2')
  })

  test('kill -9 of the leader: the followers live on and a write commits on the new leader', async () => {
    const before = await until(() => cluster.leader(), 5000)
    const node = cluster.node(before)
    const others = cluster.addresses().filter((a) => a !== before)
    const killedAt = Date.now()
    process.kill(node.child.pid, 'SIGKILL')
    const wrote = await until(() => cluster.shell('INSERT INTO t VALUES (3)', others).then((out) => out !== null), 15000)
    const ms = Date.now() - killedAt
    console.log(`sqlite3-cluster-node, --latency-ms 10: first committed write ${ms} ms after kill -9 of the leader ` +
      '(measured through the dqlite shell, whose start is part of each try)')
    expect(wrote).toBe(true)
    expect(cluster.nodes.filter((n) => n !== node).every((n) => cluster.alive(n))).toBe(true)
    expect(await cluster.shell('SELECT count(*) FROM t', others)).toBe('3')
  })
})

describeCluster('backups: the dqlite shell\'s .dump (README, Beyond one machine)', () => {
  let cluster
  beforeAll(async () => {
    cluster = await Cluster.create(3)
    await cluster.startAll()
  })
  afterAll(() => cluster.stopAll())

  test('.dump writes a SQLite file (and its -wal) that the real node-sqlite3 opens: same rows, integrity ok', async () => {
    const db = await create(cluster.url('shop'))
    await call(db, 'run', 'CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, data BLOB)')
    for (let i = 1; i <= 50; i++) await call(db, 'run', 'INSERT INTO item(name, data) VALUES (?, ?)', [`item ${i}`, Buffer.alloc(1000, i)])
    await new Promise((resolve) => db.close(resolve))

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-dump-'))
    try {
      const leader = await cluster.leader()
      await new Promise((resolve, reject) => execFile('dqlite', ['-s', leader, 'shop', `.dump ${leader} shop`], { cwd: dir, timeout: 10000 },
        (err) => (err ? reject(err) : resolve())))
      expect(fs.readdirSync(dir).sort()).toEqual(['shop', 'shop-wal'])
      const copy = new sqlite3.Database(path.join(dir, 'shop'))
      const all = (sql) => new Promise((resolve, reject) => copy.all(sql, (err, rows) => (err ? reject(err) : resolve(rows))))
      expect(await all('PRAGMA integrity_check')).toEqual([{ integrity_check: 'ok' }])
      const rows = await all('SELECT id, name, length(data) AS n, hex(substr(data, 1, 1)) AS b FROM item ORDER BY id')
      expect(rows).toHaveLength(50)
      expect(rows[49]).toEqual({ id: 50, name: 'item 50', n: 1000, b: '32' })
      await new Promise((resolve) => copy.close(resolve))
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describeCluster('npx sqlite3-cluster-node (bin/sqlite3-cluster-node.js)', () => {
  let cluster
  beforeAll(async () => {
    cluster = await Cluster.create(1)
    cluster.command = [process.execPath, SHIM]
  })
  afterAll(() => cluster.stopAll())

  test('runs the program with the arguments given, and passes SIGTERM on: the node stops cleanly, with its status', async () => {
    const usage = await new Promise((resolve) => execFile(process.execPath, [SHIM, '--help'], { encoding: 'utf8' },
      (err, stdout) => resolve({ code: err ? err.code : 0, stdout })))
    expect(usage).toEqual({ code: 0, stdout: expect.stringContaining('usage: sqlite3-cluster-node --listen HOST:PORT') })

    await cluster.startAll()
    expect(await cluster.shell('CREATE TABLE t(n)')).not.toBeNull()
    const [node] = cluster.nodes
    process.kill(node.child.pid, 'SIGTERM')
    expect(await node.exited).toEqual({ code: 0, signal: null })
    expect(node.log).toMatch(/node 1 stopped/)
  })
})
