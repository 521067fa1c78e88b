'use strict'
// Real processes for backup.test.js: agents (agent.js) driven over IPC, each in the cwd the test
// chooses, always killed at the end of each test.

const { fork } = require('child_process')
const path = require('path')

const AGENT = path.join(__dirname, 'agent.js')
const live = new Set()

class Agent {
  constructor(cwd) {
    this.child = fork(AGENT, [], { cwd, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    live.add(this.child)
    this.pid = this.child.pid
    this.waiting = new Map()
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
}

/** An agent process whose cwd is `cwd`. */
function agent(cwd) {
  return new Agent(cwd)
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

module.exports = { agent, killAll }
