'use strict'
// One process of the 1.x upgrade tests (upgrade-v1.test.js). Opens a database with
// create(options), optionally applies db.init(), reads the fixture's content and prints one JSON
// line per step on stdout:
//   {"event":"ready"}    loaded, waiting for "go" on stdin (plan.waitForGo)
//   {"event":"result", role, count, userVersion, checksum, integrity}
//   {"event":"error", code, message}
// With plan.stay it keeps its Database open until stdin ends, so that a master serves its
// clients until the test lets everyone go.
//
// usage: node reader.js '<create() options as JSON>' '<plan as JSON>'

const crypto = require('crypto')
const path = require('path')
const sqlite = require(path.join(__dirname, '..', '..'))

const options = JSON.parse(process.argv[2])
const plan = { read: true, ...JSON.parse(process.argv[3] || '{}') }

const say = (event, fields = {}) => process.stdout.write(`${JSON.stringify({ event, pid: process.pid, ...fields })}\n`)
const call = (db, method, ...args) =>
  new Promise((resolve, reject) => db[method](...args, (err, result) => (err ? reject(err) : resolve(result))))

let onGo = () => {}
const go = new Promise((resolve) => { onGo = resolve })
const stdinEnded = new Promise((resolve) => {
  let buffered = ''
  process.stdin.setEncoding('utf8')
  process.stdin.on('data', (chunk) => {
    buffered += chunk
    if (buffered.split('\n').includes('go')) onGo()
  })
  process.stdin.on('end', resolve)
})

/** sha256 of `id|name|HEX(data)\n` per row, as the fixtures' README defines it. */
function checksum(rows) {
  const hash = crypto.createHash('sha256')
  for (const r of rows) hash.update(`${r.id}|${r.name ?? ''}|${r.h}\n`)
  return hash.digest('hex')
}

async function main() {
  if (plan.waitForGo) {
    say('ready')
    await go
  }
  const db = await sqlite.create(options)
  if (plan.init) await db.init(plan.init)
  const result = { role: db.cluster && db.cluster.role }
  if (plan.read) {
    result.count = (await call(db, 'get', 'SELECT count(*) AS n FROM t')).n
    result.userVersion = (await call(db, 'get', 'PRAGMA user_version')).user_version
    result.checksum = checksum(await call(db, 'all', 'SELECT id, name, hex(data) AS h FROM t ORDER BY id'))
  }
  if (plan.integrity) {
    result.integrity = (await call(db, 'all', 'PRAGMA integrity_check')).map((r) => r.integrity_check).join('\n')
  }
  say('result', result)
  if (plan.stay) await stdinEnded
  await call(db, 'close')
  process.exit(0)
}

main().catch((e) => {
  say('error', { code: e.code, message: e.message })
  process.exit(1)
})
