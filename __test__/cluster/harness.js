'use strict'
// Real processes for the cluster tests: agents (agent.js) driven over IPC, always killed at the
// end of each test, even when it fails.

const { fork, spawn } = require('child_process')
const fs = require('fs')
const os = require('os')
const path = require('path')

const AGENT = path.join(__dirname, 'agent.js')
const live = new Set()

class Agent {
  constructor() {
    this.child = fork(AGENT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' })
    live.add(this.child)
    this.pid = this.child.pid
    this.waiting = new Map()
    this.events = []
    this.acked = []
    this.nextId = 1
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => {
      live.delete(this.child)
      for (const { reject } of this.waiting.values()) reject(new Error(`agent ${this.pid} exited (${signal || code})`))
      this.waiting.clear()
      resolve({ code, signal })
    }))
    this.ready = new Promise((resolve) => {
      this.child.on('message', (m) => {
        if (m.event === 'ready') return resolve()
        if (m.event === 'acked') return this.acked.push(...m.values)
        if (m.event) return this.events.push(m)
        const pending = this.waiting.get(m.id)
        if (!pending) return
        this.waiting.delete(m.id)
        if (m.ok) pending.resolve(m.result)
        else pending.reject(Object.assign(new Error(m.error.message), m.error))
      })
    })
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

  kill(signal = 'SIGKILL') {
    try {
      process.kill(this.pid, signal)
    } catch {
      // the process has already exited
    }
    return signal === 'SIGKILL' ? this.exited : Promise.resolve()
  }
}

function agent() {
  return new Agent()
}

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
    ? null : new Promise((resolve) => c.once('exit', resolve)))))
}

/** A fresh private directory for one test's database. */
function tmpDir(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sqlite3-cluster-${name}-`))
  return dir
}

/** Runs a node script to completion; resolves with { code, stdout, stderr }. */
function runScript(file, args = [], env = {}, timeoutMs = 60000) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file, ...args], { env: { ...process.env, ...env } })
    live.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      live.delete(child)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check()` until it returns a truthy value or `ms` pass. */
async function until(check, ms = 10000, step = 10) {
  const end = Date.now() + ms
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > end) throw new Error('condition not met in time')
    await sleep(step)
  }
}

module.exports = { agent, killAll, tmpDir, runScript, sleep, until }
