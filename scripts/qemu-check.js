'use strict'
// Runs under qemu-arm-static with Debian's armhf Node (scripts/test-armv7.sh), from a folder
// where the packed sqlite3-cluster and its armv7 platform package were installed. jest cannot
// run under qemu user mode, so this is a plain in-process runner: each check throws on failure.
//
//   node qemu-check.js "<command prefix that starts this Node>"        (the checks)
//   node qemu-check.js --master <file>                                  (a master, for the cluster check)

const assert = require('assert')
const { spawn } = require('child_process')
const fs = require('fs')
const os = require('os')
const path = require('path')
const sqlite = require('sqlite3-cluster')

const KEY = 'raspberry pi passphrase'
const call = (db, method, ...args) => new Promise((resolve, reject) =>
  db[method](...args, function (err, value) { err ? reject(err) : resolve(method === 'run' ? this : value) }))

async function master(file) {
  const db = await sqlite.create({ filename: file, serve: true, key: KEY })
  await call(db, 'exec', 'CREATE TABLE shared(who TEXT)')
  await call(db, 'run', "INSERT INTO shared VALUES ('master')")
  process.stdout.write(`ready ${JSON.stringify(db.cluster)}\n`)
  setInterval(() => {}, 1000) // serve until killed
}

async function standalone(dir) {
  const file = path.join(dir, 'alone.db')
  const db = await sqlite.create({ filename: file, key: KEY, standalone: true })
  await call(db, 'exec', 'CREATE TABLE t(id INTEGER PRIMARY KEY, txt TEXT, blob BLOB, real REAL)')
  for (let i = 1; i <= 100; i++) await call(db, 'run', 'INSERT INTO t(txt, blob, real) VALUES (?, ?, ?)', `row ${i}`, Buffer.from([i, 255 - i]), i / 3)
  const all = await call(db, 'all', 'SELECT * FROM t ORDER BY id')
  assert.strictEqual(all.length, 100)
  assert.deepStrictEqual(all[6], { id: 7, txt: 'row 7', blob: Buffer.from([7, 248]), real: 7 / 3 })
  assert.deepStrictEqual(await call(db, 'get', 'SELECT txt FROM t WHERE id = ?', 42), { txt: 'row 42' })
  let seen = 0
  const count = await new Promise((resolve, reject) => db.each('SELECT id FROM t', () => seen++, (e, n) => (e ? reject(e) : resolve(n))))
  assert.strictEqual(count, 100)
  assert.strictEqual(seen, 100)
  await call(db, 'close')
  assert.notStrictEqual(fs.readFileSync(file).subarray(0, 16).toString('latin1'), 'SQLite format 3\0', 'the file is encrypted')
  await assert.rejects(sqlite.create({ filename: file, key: 'wrong key', standalone: true }), { code: 'SQLITE_NOTADB' })
  const again = await sqlite.create({ filename: file, key: KEY, standalone: true })
  assert.deepStrictEqual(await call(again, 'get', 'SELECT count(*) AS n FROM t'), { n: 100 })
  await call(again, 'close')
  console.log('ok   encrypted standalone round trip (all, get, each), wrong key rejected with SQLITE_NOTADB')
}

async function cluster(dir, prefix) {
  const file = path.join(dir, 'shared.db')
  const [cmd, ...args] = prefix.split(' ').filter(Boolean)
  const child = spawn(cmd, [...args, __filename, '--master', file], { stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    const info = await new Promise((resolve, reject) => {
      let out = ''
      child.stdout.on('data', (d) => {
        out += d
        const m = /ready (.*)\n/.exec(out)
        if (m) resolve(JSON.parse(m[1]))
      })
      child.on('exit', (code) => reject(new Error(`master exited with ${code}`)))
      setTimeout(() => reject(new Error('master did not start in 120 s')), 120000).unref()
    })
    assert.strictEqual(info.role, 'master')
    await assert.rejects(sqlite.create({ filename: file, connect: true, connectTimeout: 60000, key: 'wrong key' }), { code: 'SQLITE_NOTADB' })
    const db = await sqlite.create({ filename: file, connect: true, connectTimeout: 60000, key: KEY })
    assert.strictEqual(db.cluster.role, 'client')
    assert.strictEqual(db.cluster.masterPid, info.masterPid)
    await call(db, 'run', "INSERT INTO shared VALUES ('client')")
    assert.deepStrictEqual(await call(db, 'all', 'SELECT who FROM shared ORDER BY rowid'), [{ who: 'master' }, { who: 'client' }])
    await call(db, 'close')
    console.log(`ok   master (pid ${info.masterPid}) and client (pid ${process.pid}) share one encrypted file over the socket; a client with the wrong key is refused`)
  } finally {
    child.kill('SIGKILL')
  }
}

async function main() {
  if (process.argv[2] === '--master') return master(process.argv[3])
  console.log(`node ${process.version} on ${process.arch}, N-API ${process.versions.napi}`)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-qemu-'))
  try {
    await standalone(dir)
    await cluster(dir, process.argv[2] || process.execPath)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
  console.log('all checks passed')
}

main().catch((e) => {
  console.error('FAILED', e)
  process.exit(1)
})
