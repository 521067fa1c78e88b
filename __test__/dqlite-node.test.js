'use strict'
// The dqlite node program (dqlite-node/, docs/dqlite.md#running-nodes): a 3-node cluster on
// 127.0.0.1 started from it, a graceful stop of the leader (leadership handed over first), a
// restart, and kill -9 of the leader (writes resume; the followers survive, which they did not
// before SIGPIPE was ignored). The client here is go-dqlite's `dqlite` shell, Debian's own.
// Every process is started by this file and killed by pid at the end.
//
// The program links Debian's libdqlite, so it exists only where `npm run build:dqlite-node` ran
// (CI builds it); without it these tests are skipped, except in CI, where that is a failure.

const { spawn, execFile } = require('child_process')
const fs = require('fs')
const net = require('net')
const os = require('os')
const path = require('path')

const BIN = path.join(__dirname, '..', 'dqlite-node', 'bin', 'sqlite3-cluster-node')
const built = fs.existsSync(BIN)
if (!built && process.env.CI) throw new Error(`${BIN} is missing: CI builds it with npm run build:dqlite-node`)
const describeBuilt = built ? describe : describe.skip

jest.setTimeout(90000)

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** A port nobody listens on now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** `dqlite -s <every node> db <command>`: its output, or null on failure or after 3 s. */
function shell(addresses, command) {
  const args = addresses.flatMap((a) => ['-s', a]).concat(['test', command])
  return new Promise((resolve) => {
    execFile('dqlite', args, { timeout: 3000, encoding: 'utf8' }, (err, stdout) => resolve(err ? null : stdout.trim()))
  })
}

/** Polls `fn` every 50 ms until it returns a truthy value or `ms` passed. */
async function until(fn, ms) {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await fn()
    if (value || Date.now() > deadline) return value
    await sleep(50)
  }
}

describeBuilt('sqlite3-cluster-node: a 3-node cluster on 127.0.0.1', () => {
  let dir
  const nodes = [] // { address, dir, child, log }

  function start(i, join) {
    const node = nodes[i]
    const args = ['--listen', node.address, '--dir', node.dir, '--latency-ms', '10']
    for (const j of join) args.push('--join', j)
    node.log = ''
    node.child = spawn(BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    node.child.stderr.on('data', (d) => { node.log += d })
    node.exited = new Promise((resolve) => node.child.on('exit', (code, signal) => resolve({ code, signal })))
  }

  const alive = (node) => node.child && node.child.exitCode === null && node.child.signalCode === null
  const addresses = () => nodes.map((n) => n.address)
  const voters = async () => {
    const out = await shell(addresses(), '.cluster')
    return out ? out.split('\n').filter((line) => line.endsWith('|voter')).length : 0
  }
  const leader = () => shell(addresses(), '.leader')

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-dqlite-'))
    for (let i = 0; i < 3; i++) nodes.push({ address: `127.0.0.1:${await freePort()}`, dir: path.join(dir, `n${i + 1}`) })
  })

  afterAll(async () => {
    for (const node of nodes) {
      if (alive(node)) process.kill(node.child.pid, 'SIGKILL')
    }
    await Promise.all(nodes.filter((n) => n.exited).map((n) => n.exited))
    fs.rmSync(dir, { recursive: true, force: true })
  })

  test('three nodes form a cluster of three voters that commits writes', async () => {
    start(0, [])
    expect(await until(leader, 10000)).toBe(nodes[0].address)
    start(1, [nodes[0].address])
    start(2, [nodes[0].address])
    expect(await until(async () => (await voters()) === 3, 20000)).toBe(true)
    expect(await shell(addresses(), 'CREATE TABLE t(n INTEGER)')).not.toBeNull()
    expect(await shell(addresses(), 'INSERT INTO t VALUES (1)')).not.toBeNull()
    expect(await shell([nodes[2].address], 'SELECT count(*) FROM t')).toBe('1')
  })

  test('SIGTERM: the leader hands leadership to another voter, then stops; restarted, it rejoins', async () => {
    const before = await leader()
    const node = nodes.find((n) => n.address === before)
    process.kill(node.child.pid, 'SIGTERM')
    expect(await node.exited).toEqual({ code: 0, signal: null })
    expect(node.log).toMatch(/leadership handed to node \d+/)
    const after = await until(leader, 5000)
    expect(after).not.toBeNull()
    expect(after).not.toBe(before)
    expect(await shell(addresses(), 'INSERT INTO t VALUES (2)')).not.toBeNull()
    // A restart needs no --join: its id and membership are in its folder.
    start(nodes.indexOf(node), [])
    expect(await until(async () => (await voters()) === 3, 20000)).toBe(true)
    expect(node.log).toMatch(/restarted/)
  })

  test('kill -9 of the leader: the followers live on and a write commits on the new leader', async () => {
    const before = await until(leader, 5000)
    const node = nodes.find((n) => n.address === before)
    const killedAt = Date.now()
    process.kill(node.child.pid, 'SIGKILL')
    const wrote = await until(() => shell(addresses().filter((a) => a !== before), 'INSERT INTO t VALUES (3)').then((out) => out !== null), 15000)
    const ms = Date.now() - killedAt
    console.log(`sqlite3-cluster-node, --latency-ms 10: first committed write ${ms} ms after kill -9 of the leader ` +
      '(measured through the dqlite shell, whose start is part of each try)')
    expect(wrote).toBe(true)
    expect(nodes.filter((n) => n !== node).every(alive)).toBe(true)
    expect(await shell(addresses().filter((a) => a !== before), 'SELECT count(*) FROM t')).toBe('3')
  })
})
