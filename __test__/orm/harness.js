'use strict'
// Runs the ORM scripts of this folder as real processes for orm.test.js, builds the folder of the
// npm-alias route, and inspects a database file with the real node-sqlite3 once they are done.

const { spawn } = require('child_process')
const fs = require('fs')
const os = require('os')
const path = require('path')

const REPO = path.join(__dirname, '..', '..')
const live = new Set()
const made = []

/** A fresh private directory, removed by cleanup(). */
function tmpDir(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sqlite3-cluster-orm-${name}-`))
  made.push(dir)
  return dir
}

/**
 * The npm-alias route: a folder whose node_modules holds a symlink to every entry of the
 * repository's node_modules except `sqlite3`, and `node_modules/sqlite3` -> the repository (what
 * `npm install sqlite3@npm:sqlite3-cluster` gives). The scripts are reached through
 * `<folder>/orm` -> this folder, so that with --preserve-symlinks everything they and the ORMs
 * require resolves inside the alias folder.
 */
function aliasFolder() {
  const dir = tmpDir('alias')
  const modules = path.join(dir, 'node_modules')
  fs.mkdirSync(modules)
  for (const entry of fs.readdirSync(path.join(REPO, 'node_modules'))) {
    if (entry === 'sqlite3') continue
    fs.symlinkSync(path.join(REPO, 'node_modules', entry), path.join(modules, entry))
  }
  fs.symlinkSync(path.resolve(REPO), path.join(modules, 'sqlite3'), 'dir')
  fs.symlinkSync(__dirname, path.join(dir, 'orm'), 'dir')
  return dir
}

/**
 * Starts `<orm>.js` with `scenario` (in `alias`, a folder from aliasFolder(), when given).
 * Returns `{ ready, done }`: `ready` resolves when the script prints READY (or ends); `done`
 * resolves with `{ code, signal, killed, result, progress, stdout, stderr }`. A script still
 * running after `timeoutMs` is killed (`killed: true`).
 */
function runOrm(orm, scenario, { alias, timeoutMs = 60000 } = {}) {
  const script = alias ? path.join(alias, 'orm', `${orm}.js`) : path.join(__dirname, `${orm}.js`)
  const flags = alias ? ['--preserve-symlinks', '--preserve-symlinks-main'] : []
  const child = spawn(process.execPath, [...flags, script, JSON.stringify(scenario)], {
    cwd: alias || REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  live.add(child)
  let stdout = ''
  let stderr = ''
  let pending = ''
  let result = null
  let progress = null
  let markReady
  const ready = new Promise((resolve) => (markReady = resolve))
  child.stdout.on('data', (chunk) => {
    stdout += chunk
    pending += chunk
    let newline
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline)
      pending = pending.slice(newline + 1)
      if (line === 'READY') markReady()
      else if (line.startsWith('PROGRESS ')) progress = JSON.parse(line.slice(9))
      else if (line.startsWith('RESULT ')) result = JSON.parse(line.slice(7))
    }
  })
  child.stderr.on('data', (chunk) => (stderr += chunk))
  let killed = false
  const timer = setTimeout(() => {
    killed = true
    child.kill('SIGKILL')
  }, timeoutMs)
  const done = new Promise((resolve) => child.on('close', (code, signal) => {
    clearTimeout(timer)
    live.delete(child)
    markReady()
    resolve({ code, signal, killed, result, progress, stdout, stderr })
  }))
  return { ready, done }
}

/** Kills every script still running (after a failed test). */
async function killAll() {
  const children = [...live]
  for (const child of children) {
    try {
      child.kill('SIGKILL')
    } catch {
      // the child has already exited
    }
  }
  await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null
    ? null : new Promise((resolve) => c.once('close', resolve)))))
}

function cleanup() {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
}

/** `{ n, integrity }` of a counter database, read with the real node-sqlite3. */
function inspectCounter(file) {
  const sqlite3 = require('sqlite3')
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(file, sqlite3.OPEN_READWRITE, (err) => {
      if (err) return reject(err)
      db.get('SELECT n FROM counter WHERE id = 1', (err, row) => {
        if (err) return db.close(() => reject(err))
        db.get('PRAGMA integrity_check', (err2, check) => db.close(() => (err2
          ? reject(err2) : resolve({ n: row.n, integrity: check.integrity_check }))))
      })
    })
  })
}

module.exports = { REPO, tmpDir, aliasFolder, runOrm, killAll, cleanup, inspectCounter }
