'use strict'
// require('sqlite3-cluster/promiser') (the root promiser.js re-exports this file): SQLite
// WASM's sqlite3Worker1Promiser (v1) and sqlite3Worker1Promiser.v2, with the reference's
// behaviour (docs/worker1.md#promiser). The default worker is this package's Worker1 script
// (the root worker1.js) in a worker_threads Worker.

const { Worker } = require('worker_threads')
const path = require('path')

/**
 * This package's Worker1 in a worker thread, shaped like a Web Worker (`postMessage`,
 * `onmessage`) as the promiser expects. The thread keeps Node alive until it is ready and while
 * requests are unanswered, not when idle; `terminate()` ends it.
 */
function defaultWorker() {
  // The root script, not lib/worker1.js: that one is the Worker1 class the script runs.
  const thread = new Worker(path.join(__dirname, '..', 'worker1.js'))
  let pending = 0
  let ready = false
  let listener = null
  thread.on('message', (data) => {
    if (!ready && data && data.type === 'sqlite3-api') ready = true
    else if (data && Object.prototype.hasOwnProperty.call(data, 'messageId') && --pending < 0) pending = 0
    if (ready && pending === 0) thread.unref()
    if (listener) listener({ data })
  })
  return {
    postMessage(message) {
      pending++
      thread.ref()
      thread.postMessage(message)
    },
    get onmessage() {
      return listener
    },
    set onmessage(fn) {
      listener = fn
    },
    terminate: () => thread.terminate(),
    thread,
  }
}

function sqlite3Worker1Promiser(config = sqlite3Worker1Promiser.defaultConfig) {
  if (arguments.length === 1 && typeof arguments[0] === 'function') {
    const onready = config
    config = Object.assign(Object.create(null), sqlite3Worker1Promiser.defaultConfig)
    config.onready = onready
  } else {
    config = Object.assign(Object.create(null), sqlite3Worker1Promiser.defaultConfig, config)
  }
  const handlerMap = Object.create(null)
  const noop = () => {}
  const err = config.onerror || noop
  const debug = config.debug || noop
  const idTypeMap = config.generateMessageId ? undefined : Object.create(null)
  const genMsgId = config.generateMessageId ||
    ((msg) => `${msg.type}#${(idTypeMap[msg.type] = (idTypeMap[msg.type] || 0) + 1)}`)
  const toss = (...args) => { throw new Error(args.join(' ')) }
  if (!config.worker) config.worker = defaultWorker
  if (typeof config.worker === 'function') config.worker = config.worker()
  let dbId
  let promiserFunc
  config.worker.onmessage = function (event) {
    const ev = event.data
    debug('worker1.onmessage', ev)
    let msgHandler = handlerMap[ev.messageId]
    if (!msgHandler) {
      if (ev && ev.type === 'sqlite3-api' && ev.result === 'worker1-ready') {
        if (config.onready) config.onready(promiserFunc)
        return
      }
      msgHandler = handlerMap[ev.type]
      if (msgHandler && msgHandler.onrow) {
        msgHandler.onrow(ev)
        return
      }
      if (config.onunhandled) config.onunhandled(event)
      else err('sqlite3Worker1Promiser() unhandled worker message:', ev)
      return
    }
    delete handlerMap[ev.messageId]
    switch (ev.type) {
      case 'error':
        msgHandler.reject(ev)
        return
      case 'open':
        if (!dbId) dbId = ev.dbId
        break
      case 'close':
        if (ev.dbId === dbId) dbId = undefined
        break
      default:
        break
    }
    try {
      msgHandler.resolve(ev)
    } catch (e) {
      msgHandler.reject(e)
    }
  }
  promiserFunc = function () {
    let msg
    if (arguments.length === 1) {
      msg = arguments[0]
    } else if (arguments.length === 2) {
      msg = Object.create(null)
      msg.type = arguments[0]
      msg.args = arguments[1]
      msg.dbId = msg.args.dbId
    } else {
      toss('Invalid arguments for sqlite3Worker1Promiser()-created factory.')
    }
    if (!msg.dbId && msg.type !== 'open') msg.dbId = dbId
    msg.messageId = genMsgId(msg)
    msg.departureTime = performance.now()
    const proxy = Object.create(null)
    proxy.message = msg
    let rowCallbackId
    if (msg.type === 'exec' && msg.args) {
      if (typeof msg.args.callback === 'function') {
        rowCallbackId = `${msg.messageId}:row`
        proxy.onrow = msg.args.callback
        msg.args.callback = rowCallbackId
        handlerMap[rowCallbackId] = proxy
      } else if (typeof msg.args.callback === 'string') {
        toss('exec callback may not be a string when using the Promise interface.')
      }
    }
    let p = new Promise((resolve, reject) => {
      proxy.resolve = resolve
      proxy.reject = reject
      handlerMap[msg.messageId] = proxy
      debug('Posting', msg.type, `message to Worker dbId=${dbId || 'default'}:`, msg)
      config.worker.postMessage(msg)
    })
    if (rowCallbackId) p = p.finally(() => delete handlerMap[rowCallbackId])
    return p
  }
  return promiserFunc
}

sqlite3Worker1Promiser.defaultConfig = {
  worker: defaultWorker,
  onerror: (...args) => console.error('sqlite3Worker1Promiser():', ...args),
}

/** The Promise form: resolves with the promiser function once the worker is ready. */
sqlite3Worker1Promiser.v2 = function v2(config = sqlite3Worker1Promiser.defaultConfig) {
  let oldFunc
  if (typeof config === 'function') {
    oldFunc = config
    config = {}
  } else if (typeof config?.onready === 'function') {
    oldFunc = config.onready
    delete config.onready
  }
  const promiseProxy = Object.create(null)
  config = Object.assign(config || Object.create(null), {
    onready: async (func) => {
      try {
        if (oldFunc) await oldFunc(func)
        promiseProxy.resolve(func)
      } catch (e) {
        promiseProxy.reject(e)
      }
    },
  })
  const p = new Promise((resolve, reject) => {
    promiseProxy.resolve = resolve
    promiseProxy.reject = reject
  })
  try {
    sqlite3Worker1Promiser(config)
  } catch (e) {
    promiseProxy.reject(e)
  }
  return p
}

module.exports = { sqlite3Worker1Promiser, default: sqlite3Worker1Promiser }
