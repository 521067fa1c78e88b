'use strict'
// Child processes of the benchmark (masters, fan-in workers, each() runs). Every child is
// tracked and killed when this process exits, however it exits; children also exit on their
// own when their IPC channel to us closes (see master-child.js, fanin-child.js).

const path = require('path')
const { fork } = require('child_process')

const live = new Set()

function killAll(signal = 'SIGKILL') {
  for (const child of live) {
    try {
      child.kill(signal)
    } catch {
      // the child has already exited
    }
  }
  live.clear()
}

process.on('exit', () => killAll())
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    killAll()
    process.kill(process.pid, signal)
  })
}

/** fork() a bench script; the child is killed if we exit first. */
function forkTracked(script, args) {
  const child = fork(path.join(__dirname, script), args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  live.add(child)
  child.on('exit', () => live.delete(child))
  return child
}

/** Resolves on the child's first message that satisfies `test`; rejects if it exits first or times out. */
function waitMessage(child, test, what, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const done = (fn, value) => {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
      fn(value)
    }
    const onMessage = (m) => {
      if (m && m.error) done(reject, new Error(`${what}: ${m.error}`))
      else if (test(m)) done(resolve, m)
    }
    const onExit = (code, signal) => done(reject, new Error(`${what} exited with ${signal || code}`))
    const timer = setTimeout(() => done(reject, new Error(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs)
    child.on('message', onMessage)
    child.on('exit', onExit)
  })
}

/** Ask a child to finish (message 'stop'), and kill it if it has not exited within `graceMs`. */
function stopChild(child, graceMs = 5000) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    child.once('exit', () => { clearTimeout(timer); resolve() })
    try {
      child.send('stop')
    } catch {
      child.kill('SIGKILL')
    }
  })
}

/**
 * Start a master process (bench/master-child.js) of `kind` ('cluster' or 'v1') on `filename`
 * and wait until it serves. Resolves to { pid, stop() }.
 */
async function startMaster(kind, filename) {
  const child = forkTracked('master-child.js', [kind, filename])
  try {
    const { pid } = await waitMessage(child, (m) => m && m.ready, `master (${kind})`)
    return { pid, stop: () => stopChild(child) }
  } catch (err) {
    child.kill('SIGKILL')
    throw err
  }
}

module.exports = { forkTracked, waitMessage, stopChild, startMaster, killAll }
