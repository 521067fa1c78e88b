'use strict'
// Processes for readers.test.js: agents (agent.js) driven over IPC. Every process started here is
// remembered by pid and killed by pid in killAll(), which the test file runs after each test,
// whether it passed or not.

const { fork } = require('child_process')
const path = require('path')

const AGENT = path.join(__dirname, 'agent.js')
/** pid -> ChildProcess of every agent started and not yet exited. */
const live = new Map()

class Agent {
  constructor() {
    this.child = fork(AGENT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' })
    this.pid = this.child.pid
    live.set(this.pid, this.child)
    this.waiting = new Map()
    this.nextId = 1
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => {
      live.delete(this.pid)
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

const agent = () => new Agent()

/** SIGKILL to every agent still alive, by pid; resolves once they have all exited. */
async function killAll() {
  const children = [...live.values()]
  for (const child of children) {
    try {
      process.kill(child.pid, 'SIGKILL')
    } catch {
      // it has exited already
    }
  }
  await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null
    ? null : new Promise((resolve) => c.once('exit', resolve)))))
}

module.exports = { agent, killAll }
