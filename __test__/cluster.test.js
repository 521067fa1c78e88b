'use strict'
// Cluster mode with real processes, real sockets and real kill -9 (docs/election.md, failover.md, sessions.md, security.md).

const fs = require('fs')
const net = require('net')
const path = require('path')
const { agent, killAll, tmpDir, runScript, sleep, until } = require('./cluster/harness')
const sqlite = require('..')

jest.setTimeout(60000)
afterEach(killAll)

const KEY = 'correct horse battery staple'

function sockOf(file) {
  return path.join(fs.realpathSync(path.dirname(file)), `.${path.basename(file)}.cluster`, 'sock')
}

/** A master agent (serve) and its database, with a `log` table. */
async function master(file, options = {}) {
  const m = agent()
  const info = await m.call('open', { filename: file, serve: true, key: KEY, ...options })
  expect(info.role).toBe('master')
  await m.call('exec', 'PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS log(id INTEGER PRIMARY KEY, v TEXT)')
  return m
}

async function client(file, options = {}) {
  const c = agent()
  const info = await c.call('open', { filename: file, connect: true, ...options })
  expect(info.role).toBe('client')
  return c
}

/** Opens the file in this process, standalone, to check what is really stored. */
async function inspect(file, sql, params = []) {
  const db = await sqlite.create({ filename: file, standalone: true, key: KEY })
  try {
    return await new Promise((resolve, reject) => db.all(sql, params, (e, rows) => (e ? reject(e) : resolve(rows))))
  } finally {
    await new Promise((resolve) => db.close(resolve))
  }
}

describe('roles and election', () => {
  test('node:cluster: the primary serves, workers connect (require("sqlite3-cluster/cluster"))', async () => {
    const dir = tmpDir('nodecluster')
    const out = await runScript(path.join(__dirname, 'cluster', 'node-cluster.js'), [path.join(dir, 'app.db')], {}, 45000)
    expect(out.stderr).toBe('')
    const summary = JSON.parse(out.stdout.trim().split('\n').pop())
    expect(summary.primary.role).toBe('master')
    expect(summary.workers).toHaveLength(3)
    for (const w of summary.workers) {
      expect(w.role).toBe('client')
      expect(w.masterPid).toBe(summary.primary.masterPid)
    }
    expect(summary.rows).toBe(3 * 200)
    expect(out.code).toBe(0)
  })

  test('unrelated processes in auto mode: the first becomes master, the others its clients', async () => {
    const file = path.join(tmpDir('auto'), 'auto.db')
    const a = agent()
    const first = await a.call('open', { filename: file, key: KEY })
    expect(first).toEqual({ role: 'master', sock: sockOf(file), masterPid: a.pid })
    const others = [agent(), agent()]
    for (const o of others) {
      expect(await o.call('open', { filename: file, key: KEY })).toEqual({ role: 'client', sock: sockOf(file), masterPid: a.pid })
    }
    await others[0].call('exec', 'CREATE TABLE t(x)')
    await others[1].call('run', 'INSERT INTO t VALUES (?)', [42])
    expect(await a.call('all', 'SELECT x FROM t')).toEqual([{ x: 42 }])
  })

  test('a process that joined but has not sent its open yet does not become master before it', async () => {
    // The master must have the file open before it serves anyone: a client that joined in
    // between used to get CLUSTER_MASTER_LOST.
    const file = path.join(tmpDir('join'), 'join.db')
    const early = agent()
    await early.call('joinOnly', file, sockOf(file))
    await sleep(300) // far longer than an election takes
    const late = agent()
    expect(await late.call('open', { filename: file, key: KEY })).toEqual({ role: 'master', sock: sockOf(file), masterPid: late.pid })
    await late.call('exec', 'CREATE TABLE t(x); INSERT INTO t VALUES (1)')
    expect(await late.call('all', 'SELECT x FROM t')).toEqual([{ x: 1 }])
  })

  test('ten processes starting together elect exactly one master', async () => {
    const file = path.join(tmpDir('race'), 'race.db')
    const agents = Array.from({ length: 10 }, () => agent())
    await Promise.all(agents.map((a) => a.ready))
    const infos = await Promise.all(agents.map((a) => a.call('open', { filename: file, key: KEY })))
    const masters = infos.filter((i) => i.role === 'master')
    expect(masters).toHaveLength(1)
    const masterPid = masters[0].masterPid
    expect(agents.map((a) => a.pid)).toContain(masterPid)
    for (const info of infos) expect(info.masterPid).toBe(masterPid)
    // Every one of them writes through the same connection.
    await agents[0].call('exec', 'CREATE TABLE t(x)')
    await Promise.all(agents.map((a, i) => a.call('run', 'INSERT INTO t VALUES (?)', [i])))
    expect((await agents[3].call('get', 'SELECT count(*) AS n FROM t')).n).toBe(10)
  })

  test('serve with a live master rejects CLUSTER_MASTER_EXISTS naming its pid; connect without one rejects CLUSTER_NO_MASTER', async () => {
    const dir = tmpDir('exists')
    const file = path.join(dir, 'x.db')
    const m = await master(file)
    const second = agent()
    const failed = await second.attempt('open', { filename: file, serve: true, key: KEY })
    expect(failed.ok).toBe(false)
    expect(failed.error.code).toBe('CLUSTER_MASTER_EXISTS')
    expect(failed.error.masterPid).toBe(m.pid)
    expect(failed.error.message).toContain(String(m.pid))

    const lonely = path.join(dir, 'nobody.db')
    const t0 = Date.now()
    const none = await agent().attempt('open', { filename: lonely, connect: true, connectTimeout: 300 })
    expect(none.ok).toBe(false)
    expect(none.error.code).toBe('CLUSTER_NO_MASTER')
    expect(none.error.message).toMatch(/no master/)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300)
  })

  test('a stopped (SIGSTOP) master keeps the lock: no second master, clients fail clearly with CLUSTER_NO_MASTER', async () => {
    const file = path.join(tmpDir('stopped'), 's.db')
    const m = await master(file)
    process.kill(m.pid, 'SIGSTOP')
    try {
      const c = await agent().attempt('open', { filename: file, key: KEY, connectTimeout: 400 })
      expect(c.ok).toBe(false)
      expect(c.error.code).toBe('CLUSTER_NO_MASTER')
      expect(c.error.message).toContain(String(m.pid))
    } finally {
      process.kill(m.pid, 'SIGCONT')
    }
  })
})

describe('failover', () => {
  test('after kill -9 of the master an auto client takes over; a lost transaction is aborted until ROLLBACK', async () => {
    const file = path.join(tmpDir('failover'), 'f.db')
    const m = agent()
    await m.call('open', { filename: file, key: KEY })
    await m.call('exec', 'CREATE TABLE log(id INTEGER PRIMARY KEY, v TEXT)')
    const a = agent()
    const b = agent()
    expect((await a.call('open', { filename: file, key: KEY })).role).toBe('client')
    expect((await b.call('open', { filename: file, key: KEY })).role).toBe('client')
    await a.call('exec', 'BEGIN')
    await a.call('run', 'INSERT INTO log(v) VALUES (?)', ['in the lost transaction'])
    await m.kill()

    // b goes on writing: its request reaches whichever process is master now.
    await b.call('run', 'INSERT INTO log(v) VALUES (?)', ['after failover'])
    const roles = [await a.call('cluster'), await b.call('cluster')]
    expect(roles.filter((r) => r.role === 'master')).toHaveLength(1)
    const newMaster = roles.find((r) => r.role === 'master').masterPid
    expect([a.pid, b.pid]).toContain(newMaster)
    expect(roles.every((r) => r.masterPid === newMaster)).toBe(true)
    const promoted = newMaster === a.pid ? a : b
    expect(promoted.events.some((e) => e.event === 'role' && e.role === 'master')).toBe(true)

    // a's transaction died with the old master.
    const next = await a.attempt('run', 'INSERT INTO log(v) VALUES (?)', ['x'])
    expect(next.error.code).toBe('CLUSTER_TXN_ABORTED')
    const commit = await a.attempt('exec', 'COMMIT')
    expect(commit.error.code).toBe('CLUSTER_TXN_ABORTED')
    await a.call('exec', 'ROLLBACK')
    await a.call('run', 'INSERT INTO log(v) VALUES (?)', ['a again'])
    expect((await b.call('all', 'SELECT v FROM log ORDER BY id')).map((r) => r.v)).toEqual(['after failover', 'a again'])
  })

  test('kill -9 loop under concurrent inserts: every acknowledged insert is stored exactly once, integrity ok', async () => {
    const file = path.join(tmpDir('killloop'), 'k.db')
    const first = agent()
    await first.call('open', { filename: file, key: KEY })
    await first.call('exec', 'PRAGMA journal_mode=WAL; CREATE TABLE log(id INTEGER PRIMARY KEY, v TEXT)')
    const agents = [first, agent(), agent(), agent()]
    await Promise.all(agents.slice(1).map((a) => a.call('open', { filename: file, key: KEY })))
    const loops = agents.map((a, i) => a.attempt('insertLoop', { ms: 4500, tag: `w${i}` }))
    const recoveries = []
    const kills = 4
    for (let k = 0; k < kills; k++) {
      await sleep(700)
      const alive = agents.filter((a) => a.child.exitCode === null && a.child.signalCode === null)
      const info = await alive[0].call('cluster')
      const victim = agents.find((a) => a.pid === info.masterPid)
      if (!victim || alive.length < 2) break
      const killedAt = Date.now()
      await victim.kill()
      // Recovered when a survivor reports being master.
      const at = await until(() => {
        const e = agents.flatMap((a) => a.events).find((ev) => ev.event === 'role' && ev.role === 'master' && ev.at >= killedAt)
        return e && e.at
      }, 10000, 2)
      recoveries.push(at - killedAt)
    }
    const results = await Promise.all(loops)
    const survivors = results.filter((r) => r.ok).map((r) => r.result)
    expect(survivors.length).toBeGreaterThanOrEqual(1)
    for (const s of survivors) {
      const unexpected = Object.keys(s.failures).filter((c) => c !== 'CLUSTER_MASTER_LOST')
      expect(unexpected).toEqual([])
    }
    await Promise.all(agents.map((a) => (a.child.exitCode === null && a.child.signalCode === null ? a.call('close') : null)))
    await killAll()

    const acked = agents.flatMap((a) => a.acked)
    const counts = new Map((await inspect(file, 'SELECT v, count(*) AS n FROM log GROUP BY v')).map((r) => [r.v, r.n]))
    const missing = acked.filter((v) => counts.get(v) !== 1)
    expect(missing).toEqual([])
    expect([...counts.values()].every((n) => n === 1)).toBe(true) // nothing was sent twice
    expect(await inspect(file, 'PRAGMA integrity_check')).toEqual([{ integrity_check: 'ok' }])
    expect(recoveries.length).toBeGreaterThanOrEqual(2)
    const lost = survivors.reduce((n, s) => n + (s.failures.CLUSTER_MASTER_LOST || 0), 0)
    console.log(`failover: ${recoveries.length} recoveries, ms to a new master: ${recoveries.join(', ')}; ` +
      `${acked.length} acknowledged inserts all stored once; ${lost} requests in flight reported CLUSTER_MASTER_LOST`)
  })

  test('graceful close of the master hands over: clients keep writing without a single error', async () => {
    const file = path.join(tmpDir('handover'), 'h.db')
    const m = agent()
    await m.call('open', { filename: file, key: KEY })
    await m.call('exec', 'CREATE TABLE log(id INTEGER PRIMARY KEY, v TEXT)')
    const c = agent()
    expect((await c.call('open', { filename: file, key: KEY })).role).toBe('client')
    const loop = c.call('insertLoop', { ms: 1200, tag: 'c', inFlight: 16 })
    await sleep(300)
    await m.call('close')
    const result = await loop
    expect(result.failures).toEqual({})
    expect(result.role).toBe('master')
    expect((await c.call('get', 'SELECT count(*) AS n FROM log')).n).toBe(result.acked)
  })
})

describe('sessions and transactions', () => {
  test('a client inside a transaction runs alone: another client waits and never runs inside it', async () => {
    const file = path.join(tmpDir('isolation'), 'i.db')
    const m = await master(file)
    const a = await client(file)
    const b = await client(file)
    await a.call('exec', 'BEGIN')
    await a.call('run', 'INSERT INTO log(v) VALUES (?)', ['a1'])
    let bDone = 0
    const bWrite = b.call('run', 'INSERT INTO log(v) VALUES (?)', ['b1']).then((r) => { bDone = Date.now(); return r })
    const bRead = b.call('all', 'SELECT v FROM log ORDER BY id')
    await sleep(200)
    expect(bDone).toBe(0) // waiting for a's transaction
    await a.call('run', 'INSERT INTO log(v) VALUES (?)', ['a2'])
    await a.call('exec', 'ROLLBACK')
    await bWrite
    // b's statements ran after the rollback, outside a's transaction: a1 and a2 are gone, b1 stays.
    expect((await bRead).map((r) => r.v)).toEqual(['b1'])
    expect((await m.call('all', 'SELECT v FROM log')).map((r) => r.v)).toEqual(['b1'])
  })

  test('a client killed inside a transaction is rolled back at once', async () => {
    const file = path.join(tmpDir('killtxn'), 'k.db')
    const m = await master(file)
    const a = await client(file)
    const b = await client(file)
    await a.call('exec', 'BEGIN')
    await a.call('run', 'INSERT INTO log(v) VALUES (?)', ['doomed'])
    const t0 = Date.now()
    await a.kill()
    await b.call('run', 'INSERT INTO log(v) VALUES (?)', ['b'])
    expect(Date.now() - t0).toBeLessThan(5000) // far below transactionTimeout (30 s)
    expect((await m.call('all', 'SELECT v FROM log')).map((r) => r.v)).toEqual(['b'])
  })

  test('transactionTimeout rolls back an idle transaction; the session gets CLUSTER_TXN_ABORTED until ROLLBACK', async () => {
    const file = path.join(tmpDir('txntimeout'), 't.db')
    await master(file, { transactionTimeout: 300 })
    const a = await client(file)
    const b = await client(file)
    await a.call('exec', 'BEGIN')
    await a.call('run', 'INSERT INTO log(v) VALUES (?)', ['idle'])
    // b is blocked until the master gives up on a's transaction.
    await b.call('run', 'INSERT INTO log(v) VALUES (?)', ['b'])
    const afterTimeout = await a.attempt('run', 'INSERT INTO log(v) VALUES (?)', ['late'])
    expect(afterTimeout.error.code).toBe('CLUSTER_TXN_ABORTED')
    expect((await a.attempt('exec', 'COMMIT')).error.code).toBe('CLUSTER_TXN_ABORTED')
    expect((await a.attempt('all', 'SELECT 1')).error.code).toBe('CLUSTER_TXN_ABORTED')
    await a.call('run', 'ROLLBACK')
    await a.call('run', 'INSERT INTO log(v) VALUES (?)', ['a after rollback'])
    expect((await b.call('all', 'SELECT v FROM log ORDER BY id')).map((r) => r.v)).toEqual(['b', 'a after rollback'])
  })
})

describe('security', () => {
  test('socket directory 0700, socket and lock file 0600', async () => {
    const file = path.join(tmpDir('perms'), 'p.db')
    await master(file)
    const sock = sockOf(file)
    expect(fs.statSync(path.dirname(sock)).mode & 0o777).toBe(0o700)
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600)
    expect(fs.statSync(sock + '.lock').mode & 0o777).toBe(0o600)
  })

  test('a socket directory writable by others is refused', async () => {
    const dir = tmpDir('openperms')
    const sockDir = path.join(dir, 'shared')
    fs.mkdirSync(sockDir)
    fs.chmodSync(sockDir, 0o777)
    const r = await agent().attempt('open', { filename: path.join(dir, 'o.db'), serve: true, sock: path.join(sockDir, 'sock') })
    expect(r.ok).toBe(false)
    expect(r.error.message).toMatch(/writable by other users/)
  })

  test('secret: wrong or missing secret gets CLUSTER_AUTH, the master keeps serving the right one', async () => {
    const file = path.join(tmpDir('secret'), 's.db')
    const m = await master(file, { secret: 'open sesame' })
    const wrong = await agent().attempt('open', { filename: file, connect: true, secret: 'open barley', connectTimeout: 2000 })
    expect(wrong.error.code).toBe('CLUSTER_AUTH')
    const missing = await agent().attempt('open', { filename: file, connect: true, connectTimeout: 2000 })
    expect(missing.error.code).toBe('CLUSTER_AUTH')
    expect(missing.error.message).toMatch(/requires a `secret`/)
    const right = await client(file, { secret: Buffer.from('open sesame') })
    await right.call('run', 'INSERT INTO log(v) VALUES (?)', ['authenticated'])
    expect((await m.call('all', 'SELECT v FROM log')).map((r) => r.v)).toEqual(['authenticated'])
  })

  test('a client with a secret refuses a master without one', async () => {
    const file = path.join(tmpDir('nosecret'), 'n.db')
    await master(file)
    const r = await agent().attempt('open', { filename: file, connect: true, secret: 'x', connectTimeout: 2000 })
    expect(r.error.code).toBe('CLUSTER_AUTH')
    expect(r.error.message).toMatch(/master has none/)
  })

  test('garbage, truncated and oversized input never crashes or bloats the master', async () => {
    const file = path.join(tmpDir('garbage'), 'g.db')
    const m = await master(file)
    const sock = sockOf(file)
    const rssBefore = await m.call('rss')
    const send = (bytes, waitMs = 100) => new Promise((resolve) => {
      const s = net.connect(sock, () => {
        s.write(bytes)
        setTimeout(() => { s.destroy(); resolve() }, waitMs)
      })
      s.on('error', () => resolve())
      s.on('data', () => {})
    })
    const huge = Buffer.alloc(8)
    huge.writeUInt32LE(0xffffffff, 0)
    await send(huge) // announces 4 GiB
    await send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
    for (let i = 0; i < 20; i++) await send(require('crypto').randomBytes(1 + (i * 97) % 3000), 20)
    await send(Buffer.from([5, 0, 0, 0, 1, 2])) // truncated frame, then close
    // A valid hello followed by a frame that decodes to nothing sensible.
    const hello = Buffer.concat([Buffer.from([45, 0, 0, 0]), Buffer.from('sq3clstr'), Buffer.alloc(37, 1)])
    await send(Buffer.concat([hello, Buffer.from([3, 0, 0, 0, 0xff, 0xff, 0xff])]))
    await send(Buffer.alloc(0), 50) // connect and say nothing
    const c = await client(file)
    await c.call('run', 'INSERT INTO log(v) VALUES (?)', ['still serving'])
    expect((await m.call('all', 'SELECT v FROM log')).map((r) => r.v)).toEqual(['still serving'])
    expect(await m.call('rss')).toBeLessThan(rssBefore + 64 * 1024 * 1024)
  })

  test('the SQLCipher key never crosses the socket (recorded through a relay)', async () => {
    const dir = tmpDir('nokey')
    const file = path.join(dir, 'k.db')
    const rawKey = Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex')
    const m = agent()
    await m.call('open', { filename: file, serve: true, key: rawKey })
    await m.call('exec', 'CREATE TABLE log(id INTEGER PRIMARY KEY, v TEXT)')
    // The client talks to a relay socket that forwards to the master and records every byte.
    const relayDir = path.join(dir, 'relay')
    fs.mkdirSync(relayDir, { mode: 0o700 })
    const relaySock = path.join(relayDir, 'sock')
    const recorded = []
    const relay = net.createServer((down) => {
      const up = net.connect(sockOf(file))
      down.on('data', (d) => { recorded.push(d); up.write(d) })
      up.on('data', (d) => { recorded.push(d); down.write(d) })
      down.on('close', () => up.destroy())
      up.on('close', () => down.destroy())
      down.on('error', () => {})
      up.on('error', () => {})
    })
    await new Promise((resolve) => relay.listen(relaySock, resolve))
    try {
      const c = agent()
      const info = await c.call('open', { filename: file, connect: true, sock: relaySock, key: rawKey })
      expect(info.role).toBe('client')
      await c.call('run', 'INSERT INTO log(v) VALUES (?)', ['through the relay'])
      expect((await c.call('all', 'SELECT v FROM log')).map((r) => r.v)).toEqual(['through the relay'])
      // The ORMs' route: no key at open, then PRAGMA key; the client checks it, the master
      // only hears the verdict.
      const p = agent()
      expect((await p.call('open', { filename: file, connect: true, sock: relaySock })).role).toBe('client')
      await p.call('run', "PRAGMA key = 'a passphrase that must stay home'")
      expect((await p.attempt('all', 'SELECT v FROM log')).error).toMatchObject({ code: 'SQLITE_NOTADB' })
      await p.call('run', `PRAGMA key = "x'${rawKey.toString('hex')}'"`)
      expect((await p.call('all', 'SELECT v FROM log')).map((r) => r.v)).toEqual(['through the relay'])
      const traffic = Buffer.concat(recorded)
      expect(traffic.includes(Buffer.from('a passphrase that must stay home'))).toBe(false)
      expect(traffic.includes(Buffer.from('through the relay'))).toBe(true) // the relay did see the data
      expect(traffic.includes(rawKey)).toBe(false)
      expect(traffic.includes(Buffer.from(rawKey.toString('hex')))).toBe(false)
      expect(traffic.includes(rawKey.subarray(0, 8))).toBe(false)
    } finally {
      relay.close()
    }
  })

  test('a client with the wrong key is refused at create() with SQLITE_NOTADB, so it can never take over', async () => {
    const file = path.join(tmpDir('wrongkey'), 'wrongkey.db')
    const m = await master(file)
    await m.call('run', 'INSERT INTO log(v) VALUES (?)', ['kept'])
    for (const options of [{ connect: true, key: 'not the key' }, { key: Buffer.alloc(32, 7) }]) {
      const c = agent()
      const result = await c.attempt('open', { filename: file, ...options })
      expect(result.ok).toBe(false)
      expect(result.error).toMatchObject({ code: 'SQLITE_NOTADB', errno: 26 })
      expect(result.error.message).toMatch(/key is wrong.*checked its own `key` against the file/)
      await c.kill()
    }
    // The right key and no key at all still join; the master never noticed the others.
    const right = await client(file, { key: KEY })
    expect(await right.call('all', 'SELECT v FROM log')).toEqual([{ v: 'kept' }])
    const keyless = await client(file)
    expect(await keyless.call('all', 'SELECT count(*) AS n FROM log')).toEqual([{ n: 1 }])
  })

  test('loadExtension is refused for clients with a clear error', async () => {
    const file = path.join(tmpDir('ext'), 'e.db')
    await master(file)
    const c = await client(file)
    const r = await c.attempt('loadExtension', '/nonexistent/ext.so')
    expect(r.error.message).toMatch(/not available to cluster clients/)
  })
})

describe('data through the socket', () => {
  test('values cross unchanged: blobs, floats bit for bit, text with NUL, big integers', async () => {
    const file = path.join(tmpDir('values'), 'v.db')
    const m = await master(file)
    const c = await client(file)
    await c.call('exec', 'CREATE TABLE v(a, b, c, d, e)')
    await c.call('run', 'INSERT INTO v VALUES (?, ?, ?, ?, ?)', [0.1 + 0.2, 'a\u0000b\u{1F600}', 2 ** 53 - 1, -0.0, null])
    await c.call('run', "INSERT INTO v VALUES (x'00ff10', 1e308, 'é', -2147483648, 5e-324)")
    const viaClient = await c.call('all', 'SELECT a, b, c, d, e, typeof(a) AS ta FROM v')
    const viaMaster = await m.call('all', 'SELECT a, b, c, d, e, typeof(a) AS ta FROM v')
    expect(viaClient).toEqual(viaMaster)
    expect(viaClient[0].a).toBe(0.1 + 0.2)
    expect(viaClient[0].b).toBe('a\u0000b\u{1F600}')
    expect(Buffer.from(viaClient[1].a)).toEqual(Buffer.from([0, 255, 16]))
    expect(viaClient[1].e).toBe(5e-324)
  })

  test('each() of 100k rows through a client streams with flat memory', async () => {
    const file = path.join(tmpDir('each'), 'e.db')
    const m = await master(file)
    await m.call('exec', `CREATE TABLE big(id INTEGER PRIMARY KEY, pad TEXT);
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
      INSERT INTO big SELECT i, printf('%0200d', i) FROM n`)
    const c = await client(file)
    const before = await c.call('rss')
    const result = await c.call('each', 'SELECT * FROM big')
    expect(result.rows).toBe(100000)
    expect(result.count).toBe(100000)
    // 100k rows of ~200 bytes are ~20 MB of text; streaming keeps the client far below holding them.
    expect(result.peakRss - before).toBeLessThan(60 * 1024 * 1024)
  })

  test('each() of large rows through a client: chunks stay under the message limit; a row over it is a clear error', async () => {
    const file = path.join(tmpDir('eachbig'), 'e.db')
    await master(file)
    const c = await client(file)
    // 300 rows of 1 MB: 512-row chunks would be 300 MB, more than one message may carry.
    const rows = 'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) SELECT i, zeroblob(1000000) AS b FROM n'
    expect(await c.call('each', rows)).toMatchObject({ rows: 300, count: 300 })
    // The rows before it still arrive; then the stream ends with the error.
    const huge = await c.attempt('each', 'SELECT zeroblob(1000) AS b UNION ALL SELECT zeroblob(2000) UNION ALL SELECT zeroblob(300000000)')
    expect(huge.ok).toBe(false)
    expect(huge.error).toMatchObject({ code: 'SQLITE_TOOBIG', rows: 2 })
    expect(huge.error.message).toMatch(/a row of 286 MiB is more than one cluster message may carry \(256 MiB\)/)
    // The session goes on.
    expect(await c.call('get', 'SELECT 1 AS one')).toEqual({ one: 1 })
  })

  test('prepared statements, exec and events work through a client', async () => {
    const file = path.join(tmpDir('prepared'), 'p.db')
    await master(file)
    const c = await client(file)
    const results = await c.call('batch', [
      ['run', 'INSERT INTO log(v) VALUES (?)', ['one']],
      ['run', 'INSERT INTO log(v) VALUES (?)', ['two']],
      ['all', 'SELECT v FROM log WHERE v > ? ORDER BY v', ['a']],
      ['get', 'SELECT nosuchcolumn FROM log', []],
    ])
    expect(results[0]).toEqual({ ok: true, result: { lastID: 1, changes: 1 } })
    expect(results[2]).toEqual({ ok: true, result: [{ v: 'one' }, { v: 'two' }] })
    expect(results[3].ok).toBe(false)
    expect(results[3].error).toMatchObject({ code: 'SQLITE_ERROR', errno: 1 })
    expect(results[3].error.message).toBe('SQLITE_ERROR: no such column: nosuchcolumn')
  })

  test('in this process as a client: Statement, each(), trace events and init() behave as standalone', async () => {
    const file = path.join(tmpDir('inproc'), 'c.db')
    const m = await master(file)
    await m.call('run', 'INSERT INTO log(v) VALUES (?)', ['x'])
    await m.call('run', 'INSERT INTO log(v) VALUES (?)', ['y'])
    const db = await sqlite.create({ filename: file, connect: true, bits: 256 })
    try {
      expect(db.cluster).toEqual({ role: 'client', sock: sockOf(file), masterPid: m.pid })
      await db.init({ key: KEY }) // the master has the key already: resolves at once
      const traced = []
      db.on('trace', (sql) => traced.push(sql))
      const stmt = db.prepare('SELECT v FROM log WHERE id > ? ORDER BY id')
      const rows = await new Promise((resolve, reject) => stmt.all(0, (e, r) => (e ? reject(e) : resolve(r))))
      expect(rows).toEqual([{ v: 'x' }, { v: 'y' }])
      const seen = []
      const count = await new Promise((resolve, reject) => stmt.each(1, (e, row) => seen.push(row.v), (e, n) => (e ? reject(e) : resolve(n))))
      expect([count, seen]).toEqual([1, ['y']])
      await new Promise((resolve) => stmt.finalize(resolve))
      await new Promise((resolve, reject) => db.exec('INSERT INTO log(v) VALUES (1); INSERT INTO log(v) VALUES (2)', (e) => (e ? reject(e) : resolve())))
      const n = await new Promise((resolve, reject) => db.get('SELECT count(*) AS n FROM log', (e, r) => (e ? reject(e) : resolve(r.n))))
      expect(n).toBe(4)
      await until(() => traced.length >= 2)
      expect(traced).toContain('SELECT v FROM log WHERE id > 0 ORDER BY id')
      // interrupt() reaches the statement running in the master.
      const endless = new Promise((resolve) => db.get(
        'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n', (e) => resolve(e)))
      setTimeout(() => db.interrupt(), 100)
      const interrupted = await endless
      expect(interrupted.code).toBe('SQLITE_INTERRUPT')
    } finally {
      await new Promise((resolve) => db.close(resolve))
    }
  })
})
