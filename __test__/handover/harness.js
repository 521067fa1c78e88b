'use strict'
// Processes for the handover and failure tests (issue 10): agents (agent.js) driven over IPC and
// plain scripts that report JSON lines on stdout. Every process started here is remembered by
// pid and killed by pid in killAll() (SIGCONT first, so a stopped one can die), together with
// any process it started itself (jest's workers), found through /proc.

const { fork, spawn } = require('child_process')
const Better = require('better-sqlite3')
const fs = require('fs')
const os = require('os')
const path = require('path')

const AGENT = path.join(__dirname, 'agent.js')
/** pid -> ChildProcess of every process started here and not yet reaped. */
const live = new Map()

function track(child) {
  live.set(child.pid, child)
  child.once('exit', () => live.delete(child.pid))
  return child
}

class Agent {
  constructor(env = {}) {
    this.child = track(fork(AGENT, [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
      env: { ...process.env, ...env },
    }))
    this.pid = this.child.pid
    this.waiting = new Map()
    this.events = []
    this.listeners = new Set()
    this.nextId = 1
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => {
      for (const { reject } of this.waiting.values()) reject(new Error(`agent ${this.pid} exited (${signal || code})`))
      this.waiting.clear()
      resolve({ code, signal })
    }))
    this.ready = new Promise((resolve) => {
      this.child.on('message', (m) => {
        if (m.event === 'ready') return resolve()
        if (m.event) {
          this.events.push(m)
          for (const listener of this.listeners) listener(m)
          return
        }
        const pending = this.waiting.get(m.id)
        if (!pending) return
        this.waiting.delete(m.id)
        if (m.ok) pending.resolve(m.result)
        else pending.reject(Object.assign(new Error(m.error.message), m.error))
      })
    })
  }

  get alive() {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** Runs `op` in the agent; resolves with its result or rejects with its error. */
  async call(op, ...args) {
    await this.ready
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject })
      this.child.send({ id, op, args })
    })
  }

  /** Settles with `{ ok, result | error }` instead of rejecting. */
  attempt(op, ...args) {
    return this.call(op, ...args).then((result) => ({ ok: true, result }), (error) => ({ ok: false, error }))
  }

  /** Resolves with the first event (already received or future) for which `match` is true. */
  waitEvent(match, ms = 10000) {
    const seen = this.events.find(match)
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(listener)
        reject(new Error(`agent ${this.pid}: event not seen within ${ms} ms`))
      }, ms)
      const listener = (m) => {
        if (!match(m)) return
        clearTimeout(timer)
        this.listeners.delete(listener)
        resolve(m)
      }
      this.listeners.add(listener)
    })
  }

  signal(name) {
    try {
      process.kill(this.pid, name)
    } catch {
      // the process has already exited
    }
  }

  kill() {
    if (!this.alive) return this.exited
    this.signal('SIGCONT')
    this.signal('SIGKILL')
    return this.exited
  }
}

function agent(env) {
  return new Agent(env)
}

/**
 * A node script with stdout read as JSON lines: `lines` collects the parsed ones, `onLine`
 * listeners see each as it comes. `command` may replace `[node, file, ...args]` (e.g. bash).
 */
function script(file, args = [], { env = {}, command, detached = false } = {}) {
  const argv = command || [process.execPath, file, ...args]
  const child = track(spawn(argv[0], argv.slice(1), {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached,
  }))
  const proc = { child, pid: child.pid, lines: [], stderr: '', listeners: new Set() }
  let buffer = ''
  child.stdout.on('data', (d) => {
    buffer += d
    let nl
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl)
      buffer = buffer.slice(nl + 1)
      let parsed
      try {
        parsed = JSON.parse(line)
      } catch {
        parsed = { text: line }
      }
      proc.lines.push(parsed)
      for (const listener of proc.listeners) listener(parsed)
    }
  })
  child.stderr.on('data', (d) => (proc.stderr += d))
  child.stdin.on('error', () => {}) // a dead script's stdin must not fail the test process
  proc.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  proc.send = (line) => {
    try {
      child.stdin.write(line + '\n')
    } catch {
      // stdin is closed: the process has exited
    }
  }
  proc.waitLine = (match, ms = 10000) => {
    const seen = proc.lines.find(match)
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.listeners.delete(listener)
        reject(new Error(`script ${child.pid}: line not seen within ${ms} ms`))
      }, ms)
      const listener = (m) => {
        if (!match(m)) return
        clearTimeout(timer)
        proc.listeners.delete(listener)
        resolve(m)
      }
      proc.listeners.add(listener)
    })
  }
  return proc
}

/** The pids of every descendant of `pid` (children of all its threads, recursively). */
function descendants(pid) {
  const found = []
  let tasks = []
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`)
  } catch {
    return found
  }
  for (const task of tasks) {
    let text = ''
    try {
      text = fs.readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8')
    } catch {
      // the task has exited: no children
    }
    for (const child of text.split(/\s+/).filter(Boolean).map(Number)) {
      found.push(child, ...descendants(child))
    }
  }
  return found
}

function killPid(pid) {
  for (const sig of ['SIGCONT', 'SIGKILL']) {
    try {
      process.kill(pid, sig)
    } catch {
      // the process has already exited
    }
  }
}

/** Kills every process started here (and their descendants), each by its pid, and waits for them. */
async function killAll() {
  const children = [...live.values()]
  for (const child of children) {
    // Descendants first: once their parent is gone they are reparented and /proc no longer
    // leads to them.
    for (const pid of descendants(child.pid)) killPid(pid)
    killPid(child.pid)
  }
  await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null
    ? null : new Promise((resolve) => c.once('exit', resolve)))))
}

/** A fresh private directory for one test's files. */
function tmpDir(name) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sqlite3-cluster-${name}-`))
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check()` until it returns a truthy value; returns undefined after `ms`. */
async function poll(check, ms = 10000, step = 50) {
  const end = Date.now() + ms
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > end) return undefined
    await sleep(step)
  }
}

/** VmRSS of a process in bytes (0 once it is gone). */
function rssOf(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : 0
  } catch {
    return 0
  }
}

/** Number of open file descriptors of a process. */
function fdCount(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return 0
  }
}

/** Adds `code` to a `{ code: count }` tally. */
function tally(into, code) {
  const key = code || 'NO_CODE'
  into[key] = (into[key] || 0) + 1
  return into
}

/** Makes `file` with `sql` (the tables) through a connection of this process, closed at once. */
function makeDb(file, sql) {
  const db = new Better(file)
  db.exec(sql)
  db.close()
}

/** What is really stored, read through a connection of this process. */
function readDb(file, sql) {
  const db = new Better(file)
  try {
    return db.prepare(sql).all()
  } finally {
    db.close()
  }
}

/** `promise`'s value, or 'timeout' after `ms` (the timer is cleared so jest can exit at once). */
function within(promise, ms) {
  let timer
  const late = new Promise((resolve) => (timer = setTimeout(resolve, ms, 'timeout')))
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

module.exports = { agent, script, killAll, tmpDir, sleep, poll, rssOf, fdCount, tally, descendants, makeDb, readDb, within }
