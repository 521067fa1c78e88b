'use strict'
// Process managers: node:cluster primaries that never open the database (as PM2's daemon),
// closeOnExit(), and a real PM2 `reload` under HTTP load. Real processes throughout; every
// child is killed by pid after each test, and PM2's daemon (its own PM2_HOME in a temp
// folder) after the last.

const { execFile, fork, spawn } = require('child_process')
const fs = require('fs')
const http = require('http')
const net = require('net')
const os = require('os')
const path = require('path')

const sqlite = require(path.join(__dirname, '..'))

const FIXTURES = path.join(__dirname, 'pm2')
const NODE_CLUSTER = path.join(FIXTURES, 'node-cluster.js')
const MEMBER = path.join(FIXTURES, 'member.js')
const APP = path.join(FIXTURES, 'app.js')
const PM2 = require.resolve('pm2/bin/pm2')

jest.setTimeout(60000)

const live = new Set()
const dirs = []

afterEach(async () => {
  const children = [...live]
  for (const child of children) {
    try {
      process.kill(child.pid, 'SIGKILL')
    } catch {
      // the child has already exited
    }
  }
  await Promise.all(children.map((c) => c.exited))
})

afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
})

function tmpDir(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sqlite3-cluster-pm2-${name}-`))
  dirs.push(dir)
  return dir
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function until(check, ms = 15000, step = 20) {
  const end = Date.now() + ms
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > end) throw new Error('condition not met in time')
    await sleep(step)
  }
}

/** A child process, remembered until it exits; `exited` resolves with `{ code, signal }`. */
function watch(child) {
  live.add(child)
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    live.delete(child)
    resolve({ code, signal })
  }))
  return child
}

/** Runs a node script to completion: `{ code, signal, stdout, stderr }`. */
function runScript(file, args) {
  const child = watch(spawn(process.execPath, [file, ...args]))
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  return child.exited.then(({ code, signal }) => ({ code, signal, stdout, stderr }))
}

/** A member.js process; `next(test)` resolves with its next IPC message that passes `test`. */
function member(file, ...args) {
  const child = watch(fork(MEMBER, [file, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  child.next = (test = () => true) => new Promise((resolve, reject) => {
    const onMessage = (m) => {
      if (!test(m)) return
      child.off('message', onMessage)
      resolve(m)
    }
    child.on('message', onMessage)
    child.exited.then(({ code, signal }) => reject(new Error(`member ${child.pid} exited (${signal || code})`)))
  })
  child.ready = child.next((m) => m.ready)
  return child
}

/** Runs SQL on the file in this process, standalone (every other process has stopped):
 *  `all()` of one query, or `exec()` of a script. */
async function query(file, sql, method = 'all') {
  const db = await sqlite.create({ filename: file, standalone: true })
  try {
    return await new Promise((resolve, reject) => db[method](sql, (e, rows) => (e ? reject(e) : resolve(rows))))
  } finally {
    await new Promise((resolve) => db.close(resolve))
  }
}

async function nodeCluster(mode) {
  const file = path.join(tmpDir(mode), 'app.db')
  const out = await runScript(NODE_CLUSTER, [file, mode])
  // stderr is shown when the script fails; the workers report their own errors.
  expect({ code: out.code, stderr: out.stderr }).toMatchObject({ code: 0 })
  const summary = JSON.parse(out.stdout.trim().split('\n').pop())
  expect(summary.workers).toHaveLength(3)
  for (const w of summary.workers) {
    expect(w.errors).toEqual([])
    expect(w.ownRows).toBe(200)
  }
  const [{ rows }] = await query(file, 'SELECT count(*) AS rows FROM t')
  const [{ n }] = await query(file, 'SELECT n FROM counter')
  expect({ rows, n }).toEqual({ rows: 600, n: 600 })
  return summary
}

describe('require("sqlite3-cluster/cluster") under a process manager', () => {
  test('a primary that only forks (as PM2\'s daemon): the workers elect one master among themselves, no write fails', async () => {
    const { primary, workers } = await nodeCluster('fork-only')
    expect(primary).toBeNull()
    const masters = workers.filter((w) => w.role === 'master')
    expect(masters).toHaveLength(1)
    for (const w of workers) expect(w.masterPid).toBe(masters[0].pid)
  })

  test('a primary that opens the file before forking serves, as in 1.x: every worker is its client', async () => {
    const { pid, primary, workers } = await nodeCluster('serve-first')
    expect(primary).toMatchObject({ role: 'master', masterPid: pid })
    for (const w of workers) expect(w).toMatchObject({ role: 'client', masterPid: pid })
  })

  test('a primary that opens the file after a worker became master joins as its client instead of failing', async () => {
    const { pid, primary, workers } = await nodeCluster('serve-after')
    const masters = workers.filter((w) => w.role === 'master')
    expect(masters).toHaveLength(1)
    expect(primary).toMatchObject({ role: 'client', masterPid: masters[0].pid })
    expect(masters[0].pid).not.toBe(pid)
  })
})

/**
 * A master (member.js hold, with `helper`) and a writer (its client) on one file; the master
 * gets SIGTERM once the writer has stored 300 values, the writer goes on for 300 more.
 */
async function signalMaster(helper, opener = 'create') {
  const file = path.join(tmpDir('signal'), 'signal.db')
  const master = member(file, 'hold', ...(helper ? [helper, opener] : []))
  const masterErrors = []
  master.on('message', (m) => m.error && masterErrors.push(m.error))
  expect(await master.ready).toMatchObject({ role: 'master', masterPid: master.pid })
  const writer = member(file, 'write')
  expect(await writer.ready).toMatchObject({ role: 'client', masterPid: master.pid })
  const count = async () => {
    writer.send('count')
    return (await writer.next((m) => m.count !== undefined)).count
  }
  await until(async () => (await count()) >= 300)
  process.kill(master.pid, 'SIGTERM')
  const appListens = helper === 'helper+own'
  const closed = appListens ? await master.next((m) => m.closed !== undefined) : null
  let exit = appListens ? null : await master.exited
  const before = await count()
  await until(async () => (await count()) >= before + 300)
  writer.send('stop')
  const report = await writer.next((m) => m.acked)
  await writer.exited
  if (appListens) {
    process.kill(master.pid, 'SIGKILL')
    exit = await master.exited
  }
  const stored = new Set((await query(file, 'SELECT n FROM log')).map((r) => r.n))
  return { exit, closed, report, masterErrors, missing: report.acked.filter((n) => !stored.has(n)) }
}

describe('closeOnExit()', () => {
  // The helper closes the Databases of create() and of `new Database()` (ORMs) alike.
  const OPENERS = [['create()', 'create'], ['new Database()', 'new']]

  test.each(OPENERS)('SIGTERM to a master (%s): it hands over, a writing client sees no error, it ends by SIGTERM', async (_, opener) => {
    const { exit, report, masterErrors, missing } = await signalMaster('helper', opener)
    expect(report.errors).toEqual([])
    // Its own calls made after the signal are never answered: the process ends first.
    expect(masterErrors).toEqual([])
    expect(exit).toEqual({ code: null, signal: 'SIGTERM' })
    expect(report.role).toBe('master')
    expect(missing).toEqual([])
  })

  test('an app that listens for the signal itself keeps its process: the Databases are closed, nothing else', async () => {
    const { closed, exit, report, missing } = await signalMaster('helper+own')
    expect(closed).toEqual({ closed: true })
    // It was still running when the test ended it.
    expect(exit).toEqual({ code: null, signal: 'SIGKILL' })
    expect(report.errors).toEqual([])
    expect(report.role).toBe('master')
    expect(missing).toEqual([])
  })

  test('the same SIGTERM without the helper (measured, not asserted)', async () => {
    const { exit, report, missing } = await signalMaster(null)
    console.log(`SIGTERM to a master without closeOnExit(): the writing client got ${report.errors.length} errors ` +
      `(${summarize(report.errors)}); master exit ${exit.signal || exit.code}; acknowledged but missing: ${missing.length}`)
  })

  test('wrong options are a TypeError that names them', () => {
    expect(() => sqlite.closeOnExit({ timeout: -1 })).toThrow(/`timeout` must be a whole number of milliseconds/)
    expect(() => sqlite.closeOnExit({ signals: ['SIGKILL'] })).toThrow(/`signals` must be an array of signal names/)
    expect(() => sqlite.closeOnExit({ signals: 'SIGINT' })).toThrow(TypeError)
    expect(() => sqlite.closeOnExit(null)).toThrow(/expects an options object/)
    const cluster = require(path.join(__dirname, '..', 'cluster'))
    const standalone = require(path.join(__dirname, '..', 'standalone'))
    expect(cluster.closeOnExit).toBe(sqlite.closeOnExit)
    expect(standalone.closeOnExit).toBe(sqlite.closeOnExit)
  })
})

/** "CODE: message" × count, most frequent first. */
function summarize(errors) {
  const counts = new Map()
  for (const e of errors) {
    const key = String(e).slice(0, 80)
    counts.set(key, (counts.get(key) || 0) + 1)
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([e, n]) => `${n} × ${e}`).join('; ') || 'none'
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    }).on('error', reject)
  })
}

/**
 * HTTP load on a keep-alive agent, about 300 requests/s, each `/inc?id=<n>` with a new n.
 * `stop()` waits for the answers and resolves with the acknowledged ids, the 5xx answers and
 * the requests whose connection failed (never answered).
 */
function load(port) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
  const result = { sent: 0, acked: [], serverErrors: [], dropped: [], other: [] }
  let pending = 0
  const send = () => {
    const id = result.sent++
    pending++
    let settled = false
    const settle = (list, value) => {
      if (settled) return
      settled = true
      pending--
      list.push(value)
    }
    const req = http.get({ host: '127.0.0.1', port, path: `/inc?id=${id}`, agent }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (body += d))
      res.on('error', (e) => settle(result.dropped, e.code || e.message))
      res.on('end', () => {
        if (res.statusCode === 200) settle(result.acked, id)
        else if (res.statusCode >= 500) settle(result.serverErrors, body)
        else settle(result.other, `${res.statusCode} ${body}`)
      })
    })
    req.setTimeout(5000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })))
    req.on('error', (e) => settle(result.dropped, e.code || e.message))
  }
  const timer = setInterval(() => {
    for (let i = 0; i < 3; i++) send()
  }, 10)
  return {
    result,
    async stop() {
      clearInterval(timer)
      await until(() => pending === 0, 10000)
      agent.destroy()
      return result
    },
  }
}

/** GET /ping on a fresh connection: `{ pid, role, sock, masterPid }`, or null. */
function ping(port) {
  return new Promise((resolve) => {
    http.get({ host: '127.0.0.1', port, path: '/ping', agent: false }, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve(res.statusCode === 200 ? JSON.parse(body) : null))
    }).on('error', () => resolve(null))
  })
}

describe('PM2 cluster mode', () => {
  let home
  // PM2 keeps an old instance up to PM2_GRACEFUL_TIMEOUT (8 s) after its replacement listens,
  // serving as usual, before it sends SIGINT; 1 s keeps the test short and changes nothing else.
  const pm2Env = () => ({ ...process.env, PM2_HOME: home, PM2_GRACEFUL_TIMEOUT: '1000' })
  const pm2 = (...args) => new Promise((resolve, reject) => {
    execFile(process.execPath, [PM2, ...args], { env: pm2Env(), timeout: 30000 }, (err, stdout, stderr) =>
      (err ? reject(Object.assign(err, { message: `pm2 ${args.join(' ')}: ${err.message}\n${stdout}\n${stderr}` })) : resolve(stdout)))
  })

  beforeAll(() => {
    home = tmpDir('home')
  })

  afterAll(async () => {
    await pm2('kill').catch(() => {})
    try {
      process.kill(Number(fs.readFileSync(path.join(home, 'pm2.pid'), 'utf8')), 'SIGKILL')
    } catch {
      // no pm2 daemon left, or it has already exited
    }
  })

  /** Starts `name` (4 instances of app.js), reloads it under load, deletes it; what the load saw. */
  async function reloadUnderLoad(name, helper) {
    const file = path.join(tmpDir(name), 'hits.db')
    await query(file, `CREATE TABLE hits(id INTEGER PRIMARY KEY, pid INTEGER);
      CREATE TABLE counter(n INTEGER); INSERT INTO counter VALUES (0);
      CREATE TRIGGER count_hit AFTER INSERT ON hits BEGIN UPDATE counter SET n = n + 1; END`, 'exec')
    const port = await freePort()
    const config = path.join(path.dirname(file), 'ecosystem.json')
    fs.writeFileSync(config, JSON.stringify({
      apps: [{
        name,
        script: APP,
        instances: 4,
        exec_mode: 'cluster',
        env: { DB_FILE: file, PORT: String(port), HELPER: helper ? '1' : '0' },
      }],
    }))
    try {
      await pm2('start', config)
      // All four instances listen (each after it joined the cluster).
      const instances = new Map()
      await until(async () => {
        const info = await ping(port)
        if (info) instances.set(info.pid, info)
        return instances.size === 4
      }, 20000)
      const traffic = load(port)
      await sleep(500)
      const started = Date.now()
      await pm2('reload', name)
      const reloadMs = Date.now() - started
      await sleep(500)
      const result = await traffic.stop()
      const masters = [...instances.values()].filter((i) => i.role === 'master')
      await pm2('delete', name)
      const stored = new Set((await query(file, 'SELECT id FROM hits')).map((r) => r.id))
      const [{ n }] = await query(file, 'SELECT n FROM counter')
      return { ...result, reloadMs, masters: masters.length, counter: n, rows: stored.size,
        missing: result.acked.filter((id) => !stored.has(id)) }
    } catch (e) {
      await pm2('delete', name).catch(() => {})
      throw e
    }
  }

  function report(label, r) {
    console.log(`pm2 reload (4 instances, ${r.sent} requests, reload ${r.reloadMs} ms) ${label}: ` +
      `${r.serverErrors.length} HTTP 5xx (${summarize(r.serverErrors)}), ` +
      `${r.dropped.length} requests unanswered (connection closed: ${summarize(r.dropped)}), ` +
      `${r.acked.length} acknowledged, ${r.missing.length} acknowledged but missing`)
  }

  test('pm2 reload under HTTP load with closeOnExit(): no 5xx, no database error, every acknowledged hit is stored', async () => {
    const r = await reloadUnderLoad('with-helper', true)
    report('with closeOnExit()', r)
    expect(r.masters).toBe(1)
    expect(r.serverErrors).toEqual([])
    expect(r.other).toEqual([])
    expect(r.missing).toEqual([])
    expect(r.counter).toBe(r.rows)
    expect(r.acked.length).toBeGreaterThan(300)
  })

  test('the same reload without the helper (measured, not asserted)', async () => {
    const r = await reloadUnderLoad('without-helper', false)
    report('without closeOnExit()', r)
    expect(r.counter).toBe(r.rows)
  })
})
