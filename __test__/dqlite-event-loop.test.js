'use strict'
// The event-loop path of a dqlite Database (docs/dqlite.md#the-event-loop-path): when a session
// is idle and connected, the JavaScript thread itself sends a run/get/all and Node's event loop
// (an unreferenced uv_poll on a duplicate of the socket) watches for the answer; anything that
// may wait goes to the session's own thread, whose watchdog shuts the socket down when an
// answer sent that way has not come within 10 s. Checked against a 3-node cluster of the
// package's node program (fixtures/dqlite-cluster.js):
// - a frozen leader (SIGSTOP) while a read waits on the loop: the loop keeps turning, the read is
//   answered by the new leader, and the Database writes afterwards;
// - an idle Database keeps neither a process nor a Worker alive, but a statement waiting on the
//   loop does (the last one is sent from a timer: its answer must come before the exit), and a
//   terminated Worker's Database harms nothing (the loop's handle is closed with its thread);
// - many statements of 4 Databases at once (point reads, autocommit inserts, transactions that
//   make the others wait on SQLITE_BUSY, a prepared cursor, all() of several parts): nothing is
//   lost, doubled, cut or reordered between the loop and the sessions' threads;
// - a Statement's answers on the loop are node-sqlite3's (the real package as the reference);
// - the callbacks of answers delivered from the loop's event (not through a threadsafe function)
//   run as node-sqlite3's: async context, nextTick and promise reactions, uncaught exceptions.

const { execFile } = require('child_process')
const fs = require('fs')
const os = require('os')
const path = require('path')
const { Worker } = require('worker_threads')
const sqlite3 = require('sqlite3')
const ours = require('..')
const { describeCluster, Cluster, call, until, sleep } = require('./fixtures/dqlite-cluster')

jest.setTimeout(90000)

const IDLE = path.join(__dirname, 'dqlite', 'idle-exit.js')
const CALLBACK_SCOPE = path.join(__dirname, 'dqlite', 'callback-scope.js')

/** Whether every thread of process `pid` is stopped (state T in /proc). */
function everyThreadStopped(pid) {
  const tasks = fs.readdirSync(`/proc/${pid}/task`)
  return tasks.every((task) => {
    const stat = fs.readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T')
  })
}
/** What idle-exit.js reports: its row, and the count it asked for from a timer. */
const ROWS = { row: { id: 2, v: 'two' }, later: { n: 200000 } }
const close = (db) => new Promise((resolve, reject) => db.close((err) => (err ? reject(err) : resolve())))
/** One Statement call as a promise, as `call` does for a Database; without params, none are passed. */
const stmtCall = (stmt, method, params) => new Promise((resolve, reject) => {
  stmt[method](...(params ? [params] : []), function (err, row) {
    if (err) reject(err)
    else resolve(method === 'run' ? { lastID: this.lastID, changes: this.changes } : row)
  })
})
/** What a call answered, errors included (by code and errno). */
const outcome = (promise) => promise.then((ok) => ({ ok }), (e) => ({ code: e.code, errno: e.errno }))

describeCluster('dqlite statements answered on the event loop', () => {
  let cluster
  const children = new Set() // child processes, killed by pid if still running
  const workers = new Set()
  const stopped = new Set() // pids of nodes sent SIGSTOP and not yet SIGCONT
  beforeAll(async () => {
    cluster = await Cluster.create(3)
    await cluster.startAll()
  })
  afterAll(async () => {
    for (const pid of stopped) process.kill(pid, 'SIGCONT')
    for (const child of children) if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL')
    for (const worker of workers) await worker.terminate()
    await cluster.stopAll()
  })

  test('a frozen leader (SIGSTOP) while a read waits on the loop: the loop keeps turning, the read is answered by the new leader, writes go on', async () => {
    // The leader is the URL's first seed: the one a search for the leader would ask first.
    const leading = await cluster.leader()
    const db = await ours.create(cluster.url('frozen', [leading, ...cluster.addresses().filter((a) => a !== leading)]))
    await call(db, 'run', 'CREATE TABLE f(id INTEGER PRIMARY KEY, v TEXT)')
    for (const v of ['a', 'b', 'c']) await call(db, 'run', 'INSERT INTO f(v) VALUES (?)', [v])
    // A statement first, so that the session is connected and idle when the get is sent.
    expect(await call(db, 'get', 'SELECT count(*) AS n FROM f')).toEqual({ n: 3 })
    const frozen = db.cluster.leader
    expect(frozen).toBe(await cluster.leader())
    const pid = cluster.node(frozen).child.pid
    let ticks = 0
    let ticker = null
    let started = 0
    const moves = []
    db.on('leader', (address, previous) => moves.push({ address, previous, ms: Date.now() - started }))
    let got
    let ms
    try {
      process.kill(pid, 'SIGSTOP')
      stopped.add(pid)
      // A process stops once each of its threads has seen the signal: one busy in the kernel
      // (a log write under load) lets the others serve a while longer. The read is sent only
      // when every thread of the node is stopped.
      expect(await until(() => everyThreadStopped(pid), 5000)).toBe(true)
      ticker = setInterval(() => { ticks++ }, 50)
      started = Date.now()
      got = await outcome(call(db, 'get', 'SELECT id, v FROM f WHERE id = ?', [2]))
      ms = Date.now() - started
    } finally {
      if (ticker) clearInterval(ticker)
      process.kill(pid, 'SIGCONT')
      stopped.delete(pid)
    }
    console.log(`dqlite frozen leader: the get waiting on the event loop was answered ${JSON.stringify(got)} ` +
      `after ${ms} ms, ${ticks} ticks of a 50 ms interval meanwhile; leader events ${JSON.stringify(moves)}`)
    // Resent to the leader the other two elected, after the 10 s watchdog: not a hang. The
    // frozen node is the URL's first seed, yet it is asked last (the leader just lost), and a
    // node asked for the leader has 2 s to answer: 11 s measured, 21 s before both rules.
    expect(got).toEqual({ ok: { id: 2, v: 'b' } })
    expect(ms).toBeGreaterThanOrEqual(9000)
    expect(ms).toBeLessThan(17000)
    // The loop was never blocked: about one tick per 50 ms of the wait.
    expect(ticks).toBeGreaterThan((ms / 50) * 0.5)
    expect(db.cluster.leader).not.toBe(frozen)
    expect(moves.map(({ address, previous }) => [address, previous])).toEqual([[db.cluster.leader, frozen]])

    // The same Database writes, on the new leader, and reads its write back.
    expect(await call(db, 'run', 'INSERT INTO f(v) VALUES (?)', ['after'])).toEqual({ lastID: 4, changes: 1 })
    expect(await call(db, 'all', 'SELECT v FROM f ORDER BY id')).toEqual([{ v: 'a' }, { v: 'b' }, { v: 'c' }, { v: 'after' }])
    await close(db)
    // The node thawed is a member again (three voters) for the tests after this one.
    expect(await until(async () => (await cluster.voters()) === 3, 20000)).toBe(true)
  })

  /** Runs `node script ...args`; one still running after 10 s is killed by its pid. */
  function runNode(script, args) {
    const started = Date.now()
    return new Promise((resolve) => {
      const child = execFile(process.execPath, [script, ...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
        clearTimeout(timer)
        resolve({ code: child.exitCode, signal: child.signalCode, stdout, stderr, ms: Date.now() - started })
      })
      children.add(child)
      const timer = setTimeout(() => { if (child.exitCode === null) process.kill(child.pid, 'SIGKILL') }, 10000)
    })
  }

  test('callbacks of answers read on the loop run as node-sqlite3\'s: in the caller\'s async context, their nextTick and promise reactions before the next answer, a thrown exception uncaught and the Database going on', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'dqlite-scope-')), 'reference.db')
    const reference = await runNode(CALLBACK_SCOPE, ['sqlite3', file])
    const result = await runNode(CALLBACK_SCOPE, ['ours', cluster.url('scope')])
    const expected = ['get: 1, context first', 'tick', 'promise', 'second get', 'all', 'uncaught: boom', 'after: 1']
    // node-sqlite3 aborts while its process exits after an uncaught exception; its line is printed before.
    expect(JSON.parse(reference.stdout.split('\n')[0])).toEqual(expected)
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' })
    expect(JSON.parse(result.stdout)).toEqual(expected)
  })

  test('an idle Database, never closed, does not keep a process alive: it prints both answers and exits 0 by itself', async () => {
    const db = await ours.create(cluster.url('idle'))
    await call(db, 'run', 'CREATE TABLE IF NOT EXISTS idle(id INTEGER PRIMARY KEY, v TEXT)')
    await call(db, 'run', 'INSERT OR IGNORE INTO idle(id, v) VALUES (1, \'one\'), (2, \'two\')')
    await close(db)
    const result = await runNode(IDLE, [cluster.url('idle')])
    console.log(`dqlite idle Database: the process exited by itself ${result.ms} ms after it started`)
    expect({ code: result.code, signal: result.signal, stderr: result.stderr }).toEqual({ code: 0, signal: null, stderr: '' })
    expect(JSON.parse(result.stdout)).toEqual(ROWS)
    expect(result.ms).toBeLessThan(10000)
  })

  test('worker_threads: a Worker that ends with its Database open and one terminated while it is idle; the main thread goes on', async () => {
    const db = await ours.create(cluster.url('idle'))
    await call(db, 'run', 'CREATE TABLE IF NOT EXISTS idle(id INTEGER PRIMARY KEY, v TEXT)')
    await call(db, 'run', 'INSERT OR IGNORE INTO idle(id, v) VALUES (1, \'one\'), (2, \'two\')')
    const start = (stay) => {
      const worker = new Worker(IDLE, { workerData: { url: cluster.url('idle'), stay } })
      workers.add(worker)
      const messages = []
      worker.on('message', (m) => messages.push(m))
      const errors = []
      worker.on('error', (e) => errors.push(String(e)))
      const exited = new Promise((resolve) => worker.on('exit', (code) => resolve(code)))
      return { worker, messages, errors, exited }
    }
    const ending = start(false)
    const staying = start(true)
    // Each posts its row; the one that stays keeps running with its Database idle.
    let timer
    const ended = await Promise.race([ending.exited, new Promise((resolve) => { timer = setTimeout(resolve, 10000, 'still running after 10 s') })])
    clearTimeout(timer)
    expect(await until(() => staying.messages.length > 0, 10000)).toBe(true)
    await sleep(200)
    const terminated = await staying.worker.terminate()
    expect(await staying.exited).toBe(1)
    expect({ ended, messages: ending.messages, errors: ending.errors }).toEqual({ ended: 0, messages: [ROWS], errors: [] })
    expect({ terminated, messages: staying.messages, errors: staying.errors }).toEqual({ terminated: 1, messages: [ROWS], errors: [] })

    // The main thread is healthy: its Database and a new one answer, on the loop and not.
    expect(await call(db, 'get', 'SELECT v FROM idle WHERE id = 1')).toEqual({ v: 'one' })
    expect(await call(db, 'each', 'SELECT id FROM idle ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }])
    const again = await ours.create(cluster.url('idle'))
    expect(await call(again, 'all', 'SELECT count(*) AS n FROM idle')).toEqual([{ n: 2 }])
    await close(again)
    await close(db)
    // A Worker started after them still opens and reads.
    const later = start(false)
    expect(await later.exited).toBe(0)
    expect(later.messages).toEqual([ROWS])
  })

  test('4 Databases at once for 2 s: point reads, autocommit inserts, transactions, a prepared cursor, all() of several parts', async () => {
    const url = cluster.url('mixed')
    const dbs = []
    for (let i = 0; i < 4; i++) dbs.push(await ours.create({ filename: url, busyTimeout: 10000 }))
    const [txn, one, two, three] = dbs
    const BIG = 3000
    await call(one, 'run', 'CREATE TABLE big(id INTEGER PRIMARY KEY, v TEXT)')
    await call(one, 'run', `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ${BIG}) ` +
      'INSERT INTO big(id, v) SELECT i, printf(\'%0100d\', i) FROM c')
    await call(one, 'run', 'CREATE TABLE w(k TEXT)')
    const errors = []
    const inserted = []
    const counts = { get: 0, insert: 0, txn: 0, cursor: 0, all: 0 }
    const deadline = Date.now() + 2000
    const loop = async (body) => {
      while (Date.now() < deadline) {
        try {
          await body()
        } catch (e) {
          errors.push(`${e.code}: ${e.message}`)
        }
      }
    }
    const pointRead = (db) => async () => {
      const id = 1 + Math.floor(Math.random() * BIG)
      const row = await call(db, 'get', 'SELECT id, v FROM big WHERE id = ?', [id])
      if (!row || row.id !== id || row.v !== String(id).padStart(100, '0')) errors.push(`get ${id}: ${JSON.stringify(row)}`)
      counts.get++
    }
    const insert = (db, name) => {
      let n = 0
      return async () => {
        const k = `${name}:${++n}`
        await call(db, 'run', 'INSERT INTO w(k) VALUES (?)', [k])
        inserted.push(k)
        counts.insert++
      }
    }
    let t = 0
    const transaction = async () => {
      const keys = [1, 2, 3].map((i) => `txn:${t}:${i}`)
      t++
      await call(txn, 'run', 'BEGIN')
      try {
        for (const k of keys) await call(txn, 'run', 'INSERT INTO w(k) VALUES (?)', [k])
        await call(txn, 'run', 'COMMIT')
      } catch (e) {
        await call(txn, 'run', 'ROLLBACK').catch(() => {})
        throw e
      }
      inserted.push(...keys)
      counts.txn++
    }
    const all = (db) => async () => {
      const rows = await call(db, 'all', 'SELECT id, v FROM big ORDER BY id')
      const wrong = rows.findIndex((r, i) => r.id !== i + 1 || r.v.length !== 100)
      if (rows.length !== BIG || wrong !== -1) errors.push(`all(): ${rows.length} rows, first wrong at ${wrong}`)
      counts.all++
    }
    // A cursor over a result of several parts, stepped between the other statements of its Database.
    const CURSOR = 300
    const cursors = [one, two].map((db) => db.prepare(`SELECT id, v FROM big WHERE id <= ${CURSOR} ORDER BY id`))
    const stepping = (cursor) => async () => {
      const ids = []
      for (let row = await stmtCall(cursor, 'get'); row; row = await stmtCall(cursor, 'get')) ids.push(row.id)
      await new Promise((resolve) => cursor.reset(resolve))
      if (ids.length !== CURSOR || ids.some((id, i) => id !== i + 1)) errors.push(`cursor: ${JSON.stringify(ids)}`)
      counts.cursor++
    }
    const started = Date.now()
    await Promise.all([
      // The transactions' Database does nothing else: a read inside one would pin its snapshot.
      loop(transaction),
      loop(insert(one, 'one')), loop(stepping(cursors[0])), loop(pointRead(one)),
      loop(pointRead(two)), loop(stepping(cursors[1])), loop(all(two)),
      loop(insert(three, 'three')), loop(all(three)), loop(pointRead(three)),
    ])
    const ms = Date.now() - started
    for (const cursor of cursors) await new Promise((resolve) => cursor.finalize(resolve))
    console.log(`dqlite 4 Databases at once for ${ms} ms: ${JSON.stringify(counts)}; errors ${errors.length}`)
    expect(errors).toEqual([])
    for (const kind of Object.keys(counts)) expect({ kind, some: counts[kind] > 0 }).toEqual({ kind, some: true })
    // Every acknowledged insert is stored exactly once, and nothing else is.
    const rows = await call(two, 'all', 'SELECT k, count(*) AS n FROM w GROUP BY k')
    expect(rows.filter((r) => r.n !== 1)).toEqual([])
    expect(rows.map((r) => r.k).sort()).toEqual([...inserted].sort())
    for (const db of dbs) await close(db)
  })

  test('a Statement\'s answers on the loop are node-sqlite3\'s: run\'s lastID/changes, no row, no rows, a UNIQUE violation', async () => {
    const steps = async (db) => {
      const out = []
      await call(db, 'run', 'CREATE TABLE u(id INTEGER PRIMARY KEY, k TEXT UNIQUE, n INTEGER)')
      const insert = db.prepare('INSERT INTO u(k, n) VALUES (?, ?)')
      out.push(await outcome(stmtCall(insert, 'run', ['a', 1])))
      out.push(await outcome(stmtCall(insert, 'run', ['b', 2])))
      out.push(await outcome(stmtCall(insert, 'run', ['a', 3])))
      out.push(await outcome(stmtCall(insert, 'run', ['c', 3])))
      const byK = db.prepare('SELECT id, k, n FROM u WHERE k = ?')
      out.push(await outcome(stmtCall(byK, 'get', ['b'])))
      out.push(await outcome(stmtCall(byK, 'get', ['zz'])))
      out.push(await outcome(stmtCall(byK, 'all', ['zz'])))
      out.push(await outcome(stmtCall(byK, 'all', ['c'])))
      const update = db.prepare('UPDATE u SET n = n + 10 WHERE n >= ?')
      out.push(await outcome(stmtCall(update, 'run', [2])))
      out.push(await outcome(stmtCall(update, 'run', [1000])))
      const remove = db.prepare('DELETE FROM u WHERE id = ?')
      out.push(await outcome(stmtCall(remove, 'run', [1])))
      out.push(await outcome(call(db, 'run', 'INSERT INTO u(k) VALUES (?)', ['b'])))
      out.push(await outcome(call(db, 'get', 'SELECT * FROM u WHERE id = 99')))
      out.push(await outcome(call(db, 'all', 'SELECT * FROM u WHERE id > 99')))
      out.push(await outcome(call(db, 'run', 'INSERT INTO u(id, k) VALUES (?, ?)', [2, 'x'])))
      out.push(await outcome(call(db, 'all', 'SELECT id, k, n FROM u ORDER BY id')))
      for (const stmt of [insert, byK, update, remove]) await new Promise((resolve) => stmt.finalize(resolve))
      return out
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-loop-'))
    const real = new sqlite3.Database(path.join(dir, 'u.db'))
    const db = await ours.create(cluster.url('answers'))
    try {
      const got = await steps(db)
      const expected = await steps(real)
      expect(got).toEqual(expected)
      // The reference said what this test means: a UNIQUE violation is SQLITE_CONSTRAINT, 19.
      expect(got[2]).toEqual({ code: 'SQLITE_CONSTRAINT', errno: 19 })
      expect(got[5]).toEqual({ ok: undefined })
      expect(got[6]).toEqual({ ok: [] })
    } finally {
      await close(db)
      await close(real)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
