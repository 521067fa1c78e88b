'use strict'
// What every ORM script (knex.js, sequelize.js, typeorm.js, sqlite.js, objection.js) shares: the
// scenario argument, the sqlite3 module of each route, the fixed values, and the report.
//
// A script runs as `node <orm>.js '<json scenario>'` and prints `RESULT <json>` as its last
// line. It never calls process.exit(): the test checks that it ends by itself once the ORM is
// closed. Routes:
//   driver  the ORM is handed require(<repo>).driver(options) explicitly;
//   alias   the ORM loads `sqlite3` itself, run from a folder whose node_modules/sqlite3 is this
//           package (`npm install sqlite3@npm:sqlite3-cluster`);
//   real    the ORM loads `sqlite3` itself from the repository: the real node-sqlite3.

const fs = require('fs')
const path = require('path')

// realpath: in the alias folder this directory is reached through a symlink.
const REPO = path.resolve(fs.realpathSync(__dirname), '..', '..')

const scenario = JSON.parse(process.argv[2] || '{}')

// Values whose round trip is checked: a blob with NUL and high bytes, a date with milliseconds.
const BLOB = Buffer.from([0, 1, 2, 0x27, 0x7f, 0x80, 0xfe, 0xff, 0])
const DATE = new Date('2024-02-29T12:34:56.789Z')

/** The module to hand to the ORM on the `driver` route, `null` when the ORM loads `sqlite3` itself. */
function explicitDriver() {
  if (scenario.route !== 'driver') return null
  return require(REPO).driver(scenario.driverOptions || {})
}

/** The `sqlite3` module this script itself would load (the sqlite package needs one). */
function ownSqlite3() {
  return explicitDriver() || require('sqlite3')
}

/**
 * Where `require('sqlite3')` leads from `dir` (the folder of the ORM file that requires it), and
 * whether that is this package (its index.js, with driver()).
 */
function whereIsSqlite3(dir) {
  const file = require.resolve('sqlite3', { paths: [dir] })
  const real = fs.realpathSync(file)
  // Only this package is loaded to check it: the real node-sqlite3 stays out of the process.
  return {
    file,
    real,
    isThisPackage: path.dirname(real) === REPO && typeof require(file).driver === 'function',
  }
}

/** `db.cluster.role` of a raw connection; undefined for the real node-sqlite3. */
function roleOf(connection) {
  return connection && connection.cluster ? connection.cluster.role : undefined
}

function errorInfo(e) {
  if (!e || typeof e !== 'object') return { message: String(e) }
  return {
    className: e.constructor && e.constructor.name,
    name: e.name,
    message: e.message,
    code: e.code,
    errno: e.errno,
    stack: e.stack,
  }
}

/** A plain record of a caught error: the ORM's error, and the driver's error under it. */
function wrapped(e, underlying, extra = {}) {
  return {
    className: e.constructor && e.constructor.name,
    message: e.message,
    underlying: underlying ? {
      isError: underlying instanceof Error,
      name: underlying.name,
      code: underlying.code,
      errno: underlying.errno,
      message: underlying.message,
    } : null,
    ...extra,
  }
}

/** `{ hex, isBuffer }` for a blob read back. */
function blobInfo(value) {
  return {
    isBuffer: Buffer.isBuffer(value),
    hex: value == null ? null : Buffer.from(value).toString('hex'),
  }
}

/** `{ type, ms, raw }` for a date read back: a Date, a number of ms or a string. */
function dateInfo(value) {
  const type = value instanceof Date ? 'Date' : typeof value
  let ms = null
  if (value instanceof Date) ms = value.getTime()
  else if (typeof value === 'number') ms = value
  return { type, ms, raw: value instanceof Date ? value.toISOString() : value }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Tells the test this process is connected, then waits for the start signal (a file). */
async function startTogether() {
  process.stdout.write('READY\n')
  while (!fs.existsSync(scenario.go)) await sleep(2)
}

/**
 * Runs `txn()` `scenario.txns` times, one after the other, with no retry: counts successes and
 * failures (by the driver's error code, which `codeOf` finds under the ORM's error). Stops
 * starting new ones after `scenario.deadlineMs`.
 */
async function counterLoop(txn, codeOf) {
  const errors = {}
  let ok = 0
  let failed = 0
  let firstError = null
  const t0 = Date.now()
  const end = t0 + (scenario.deadlineMs || 120000)
  for (let i = 0; i < scenario.txns && Date.now() < end; i++) {
    try {
      await txn()
      ok++
    } catch (e) {
      failed++
      const code = codeOf(e) || e.code || e.name
      errors[code] = (errors[code] || 0) + 1
      if (!firstError) firstError = e.message
    }
    if ((ok + failed) % 25 === 0) process.stdout.write(`PROGRESS ${JSON.stringify({ ok, failed, errors })}\n`)
  }
  const ms = Date.now() - t0
  await finishTogether()
  return { ok, failed, errors, firstError, ms }
}

/** Waits until the `scenario.peers` processes of a run have all finished their loop. */
async function finishTogether() {
  if (!scenario.peers) return
  fs.writeFileSync(`${scenario.go}.done.${process.pid}`, '')
  const dir = path.dirname(scenario.go)
  const prefix = `${path.basename(scenario.go)}.done.`
  const until = Date.now() + 60000
  while (fs.readdirSync(dir).filter((f) => f.startsWith(prefix)).length < scenario.peers && Date.now() < until) {
    await sleep(5)
  }
}

/**
 * Runs the script's handler for `scenario.scenario` and prints its result (or the error that
 * escaped it) as the last line. A failure sets the exit code; nothing forces the exit.
 */
function main(handlers) {
  const handler = handlers[scenario.scenario]
  const done = handler
    ? Promise.resolve().then(() => handler(scenario))
    : Promise.reject(new Error(`unknown scenario ${scenario.scenario}`))
  done.then(
    (result) => process.stdout.write(`RESULT ${JSON.stringify(result)}\n`),
    (e) => {
      process.stdout.write(`RESULT ${JSON.stringify({ fatal: errorInfo(e) })}\n`)
      process.exitCode = 1
    })
}

/** Runs `fn` and returns `{ ok, value }` or `{ ok: false, error }` (the raw error). */
async function attempt(fn) {
  try {
    return { ok: true, value: await fn() }
  } catch (error) {
    return { ok: false, error }
  }
}

module.exports = {
  REPO,
  scenario,
  BLOB,
  DATE,
  explicitDriver,
  ownSqlite3,
  whereIsSqlite3,
  roleOf,
  errorInfo,
  wrapped,
  blobInfo,
  dateInfo,
  startTogether,
  counterLoop,
  main,
  attempt,
}
