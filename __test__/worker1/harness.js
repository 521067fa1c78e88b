'use strict'
// Differential harness for the Worker1 protocol (docs/worker1.md): the real Worker1 of
// @sqlite.org/sqlite-wasm (reference-worker.mjs) and this package's worker1.js, each in a
// worker_threads Worker, driven with the same request sequences. Responses are normalized
// (timings dropped, dbIds and temp dirs replaced by placeholders, bytes and BigInts made
// explicit) so that the two message lists can be compared with toStrictEqual.
//
// Each side gets its own temp dir with the same relative file names: ours on the host disk,
// the reference in its wasm in-memory filesystem (made there by reference-worker.mjs). Step
// strings may say `$TMP` for that dir and `$DB1`, `$DB2`… for the dbIds the side's opens have
// returned so far.

const fs = require('fs')
const os = require('os')
const path = require('path')
const { inspect, types } = require('util')
const { Worker } = require('worker_threads')

const REFERENCE = path.join(__dirname, 'reference-worker.mjs')
const HANDSHAKE_TIMEOUT = 20000
const REQUEST_TIMEOUT = 10000

// sqlite3-cluster's own module, by its public name when the package exports it.
function ourModulePath(name) {
  try {
    return require.resolve(`sqlite3-cluster/${name}`)
  } catch {
    return path.join(__dirname, '..', '..', `${name}.js`)
  }
}

function workerFile(kind) {
  if (kind === 'reference') return REFERENCE
  if (kind === 'ours') return ourModulePath('worker1')
  throw new TypeError(`unknown worker kind: ${kind}`)
}

let refDirCount = 0

// One worker_threads Worker and what both ways of driving it need: messages tagged `__harness`
// (answers of reference-worker.mjs) are taken out of the stream, every other message goes to
// `deliver`, and the end of the worker fails whatever is waiting.
class Channel {
  constructor(kind) {
    this.kind = kind
    this.dirs = []
    this.broken = null
    this.ready = false
    this.exited = false
    this.harnessWaiting = null
    this.deliver = () => {}
    this.onFailure = () => {}
    this.worker = new Worker(workerFile(kind))
    this.worker.on('message', (m) => this.receive(m))
    this.worker.on('error', (err) => this.fail(`${kind} worker threw: ${err && err.stack || err}`))
    this.worker.on('exit', (code) => {
      this.exited = true
      this.fail(`${kind} worker exited (code ${code})`)
    })
  }

  receive(m) {
    if (m && m.type === 'sqlite3-api' && m.result === 'worker1-ready') this.ready = true
    if (m && typeof m === 'object' && typeof m.__harness === 'string') {
      if (m.__harness === 'unhandled') return this.fail(`${this.kind} worker: unhandled rejection: ${m.message}`)
      const waiting = this.harnessWaiting
      this.harnessWaiting = null
      if (waiting) waiting.resolve(m.result)
      return
    }
    this.deliver(m)
  }

  fail(reason) {
    if (!this.broken) this.broken = reason
    if (this.harnessWaiting) this.harnessWaiting.reject(new Error(reason))
    this.harnessWaiting = null
    this.onFailure(new Error(reason))
  }

  harness(op, payload) {
    return new Promise((resolve, reject) => {
      this.harnessWaiting = { resolve, reject }
      this.worker.postMessage({ __harness: op, ...payload })
    })
  }

  // A fresh empty directory that this side's SQLite can create files in.
  async mkdtemp() {
    if (this.kind === 'ours') {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-w1-'))
      this.dirs.push(dir)
      return dir
    }
    const dir = `/tmp/w1ref-${String(++refDirCount).padStart(6, '0')}`
    if (!(await this.harness('mkdir', { path: dir }))) throw new Error(`reference worker: mkdir ${dir} failed`)
    return dir
  }

  async exists(file) {
    if (this.kind === 'ours') return fs.existsSync(file)
    return this.harness('exists', { path: file })
  }

  closeDatabases() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('closeDatabases: timeout')), 2000)
      let n = 0
      const next = () => this.worker.postMessage({ type: 'close', messageId: `__harness-close-${++n}` })
      this.deliver = (m) => {
        if (!m || m.type !== 'close' || m.messageId !== `__harness-close-${n}`) return
        if (m.result && m.result.filename !== undefined && n < 100) return next()
        clearTimeout(timer)
        resolve()
      }
      next()
    })
  }

  // Closes the worker's dbs, then terminates it. Terminating our worker with dbs still open has
  // aborted the whole process (and with it jest); a dedicated test covers that case, so the
  // harness does not let it take every other test's result down with it.
  async close() {
    if (this.ready && !this.exited && !this.broken) await this.closeDatabases().catch(() => {})
    if (!this.exited) await this.worker.terminate()
    for (const dir of this.dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
  }
}

// Structural equality of structured-clonable values (a messageId comes back as a copy, and the
// request may have been made in another realm, jest's, so neither === nor prototypes help).
function sameValue(a, b) {
  if (Object.is(a, b)) return true
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b)) {
    return ArrayBuffer.isView(a) && ArrayBuffer.isView(b) && Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0
  }
  const keys = Object.keys(a)
  if (keys.length !== Object.keys(b).length) return false
  return keys.every((k) => Object.prototype.hasOwnProperty.call(b, k) && sameValue(a[k], b[k]))
}

const isFinalFor = (msg) => {
  const type = msg !== null && typeof msg === 'object' ? msg.type : undefined
  const id = msg !== null && typeof msg === 'object' ? msg.messageId : undefined
  return (m) =>
    m !== null && typeof m === 'object' && !('rowNumber' in m) &&
    (m.type === type || m.type === 'error') && sameValue(m.messageId, id)
}

// startWorker(kind) -> Promise<{ kind, handshake, request(msg), mkdtemp(), exists(file), close() }>
// after the `worker1-ready` handshake. request() posts one message and resolves with every
// message that arrived up to and including its final response (row messages first). Messages
// that arrive while nothing is pending are kept and put in front of the next request's list.
function startWorker(kind, { timeout = REQUEST_TIMEOUT } = {}) {
  const channel = new Channel(kind)
  let pending = null
  const stray = []
  const failRequest = (err) => {
    if (pending) pending.reject(err)
    pending = null
  }
  const collect = (m) => {
    if (!pending) return stray.push(m)
    pending.messages.push(m)
    if (pending.isFinal(m)) {
      const { resolve, messages } = pending
      pending = null
      resolve(messages)
    }
  }

  const handle = {
    kind,
    handshake: undefined,
    channel,
    get broken() { return channel.broken },
    mkdtemp: () => channel.mkdtemp(),
    exists: (file) => channel.exists(file),
    close: () => channel.close(),
    request(msg, { timeout: ms = timeout } = {}) {
      if (channel.broken) return Promise.reject(new Error(`${kind} worker is broken: ${channel.broken}`))
      if (pending) return Promise.reject(new Error('harness: one request at a time'))
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          const got = pending ? pending.messages : []
          pending = null
          channel.broken = `request timed out: ${inspect(msg, { depth: 4 })}`
          reject(new Error(`${kind} worker: no final response within ${ms} ms to ${inspect(msg, { depth: 4 })}; ` +
            `received ${inspect(got, { depth: 6 })}`))
        }, ms)
        pending = {
          messages: stray.splice(0),
          isFinal: isFinalFor(msg),
          resolve: (v) => { clearTimeout(timer); resolve(v) },
          reject: (e) => { clearTimeout(timer); reject(e) },
        }
        try {
          channel.worker.postMessage(msg)
        } catch (err) {
          pending.reject(err)
          pending = null
        }
      })
    },
  }

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${kind} worker: no handshake within ${HANDSHAKE_TIMEOUT} ms`)),
      HANDSHAKE_TIMEOUT)
    const fail = (err) => {
      clearTimeout(timer)
      channel.close().finally(() => reject(err))
    }
    channel.onFailure = fail
    channel.deliver = (m) => {
      clearTimeout(timer)
      handle.handshake = m
      channel.onFailure = failRequest
      channel.deliver = collect
      resolve(handle)
    }
  })
}

// wrapWorker(kind) -> { postMessage(msg), onmessage, mkdtemp(), exists(file), close(), ready }:
// the `{postMessage, onmessage}` shape a Promiser drives (docs/worker1.md#promiser). Every message,
// including the handshake, goes to `onmessage({ data })`; messages that arrive before
// `onmessage` is set are delivered, in order, on a later turn after it is set. `ready` resolves
// when the handshake has arrived.
function wrapWorker(kind) {
  const channel = new Channel(kind)
  const buffered = []
  let onmessage = null
  let flushing = false
  let sawHandshake
  const ready = new Promise((resolve, reject) => {
    sawHandshake = resolve
    channel.onFailure = reject
  })
  ready.catch(() => {})
  const flush = () => {
    flushing = false
    while (buffered.length && onmessage) onmessage.call(wrapper, { data: buffered.shift() })
  }
  channel.deliver = (m) => {
    if (m && m.type === 'sqlite3-api' && m.result === 'worker1-ready') sawHandshake()
    if (onmessage && !buffered.length) return onmessage.call(wrapper, { data: m })
    buffered.push(m)
  }
  const wrapper = {
    kind,
    channel,
    ready,
    postMessage: (msg) => channel.worker.postMessage(msg),
    get onmessage() { return onmessage },
    set onmessage(fn) {
      onmessage = fn
      if (fn && buffered.length && !flushing) {
        flushing = true
        setImmediate(flush)
      }
    },
    mkdtemp: () => channel.mkdtemp(),
    exists: (file) => channel.exists(file),
    close: () => channel.close(),
  }
  return wrapper
}

// ---------------------------------------------------------------------------------------------
// Normalization

// ctx carries what must stay stable over one side's whole sequence: its temp dir and the dbIds
// its opens have returned (in order; mapped to DB1, DB2…).
function newContext(tmp) {
  return { tmp, ids: new Map(), opened: [] }
}

function registerIds(messages, ctx) {
  for (const m of messages) {
    if (!m || typeof m !== 'object' || m.type !== 'open' || !m.result) continue
    const id = m.result.dbId
    if (typeof id === 'string' && !ctx.ids.has(id)) {
      ctx.opened.push(id)
      ctx.ids.set(id, `DB${ctx.ids.size + 1}`)
    }
  }
}

const TIMING = new Set(['workerReceivedTime', 'workerRespondTime', 'departureTime'])
const VERSION_KEYS = ['libVersion', 'libVersionNumber', 'sourceId', 'downloadVersion']
const bytesOf = (v) => Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
const isPlainObject = (v) => {
  if (v === null || typeof v !== 'object') return false
  const proto = Object.getPrototypeOf(v)
  return proto === null || Object.getPrototypeOf(proto) === null // Object.prototype of any realm
}

function normValue(v, ctx) {
  if (typeof v === 'string') {
    if (ctx.ids.has(v)) return ctx.ids.get(v)
    return ctx.tmp ? v.split(ctx.tmp).join('$TMP') : v
  }
  if (typeof v === 'bigint') return { bigint: String(v) }
  if (v === null || typeof v !== 'object') return v
  if (ArrayBuffer.isView(v)) return { bytes: bytesOf(v) }
  if (types.isArrayBuffer(v) || types.isSharedArrayBuffer(v)) return { bytes: Array.from(new Uint8Array(v)) }
  if (Array.isArray(v)) return v.map((x) => normValue(x, ctx))
  if (!isPlainObject(v)) return v
  const out = {}
  for (const key of Object.keys(v)) {
    if (TIMING.has(key)) continue
    out[key] = normValue(v[key], ctx)
  }
  return out
}

function typeName(v) {
  if (Array.isArray(v)) return v.every((x) => typeof x === 'string') ? 'string[]' : 'array'
  return v === null ? 'null' : typeof v
}

// The parts of a response that legitimately differ between implementations.
function normResult(type, result, ctx) {
  if (!isPlainObject(result)) return normValue(result, ctx)
  const out = normValue(result, ctx)
  if (type === 'error' && 'stack' in result) {
    out.stack = Array.isArray(result.stack) && result.stack.length > 0
  }
  if (type === 'open' && typeof result.vfs === 'string') out.vfs = '<vfs>'
  if (type === 'config-get') {
    if ('version' in result) {
      const version = result.version
      out.version = isPlainObject(version)
        ? Object.fromEntries(VERSION_KEYS.map((k) => [k, typeName(version[k])]))
        : typeName(version)
    }
    if ('vfsList' in result) out.vfsList = typeName(result.vfsList)
  }
  if (type === 'export' && ArrayBuffer.isView(result.byteArray)) {
    const bytes = Buffer.from(result.byteArray.buffer, result.byteArray.byteOffset, result.byteArray.byteLength)
    out.byteArray = { header: bytes.subarray(0, 16).toString('latin1'), length: bytes.length }
  }
  return out
}

// normalize(messages, ctx) -> comparable copies of the messages (see the file's head).
function normalize(messages, ctx) {
  registerIds(messages, ctx)
  return messages.map((m) => {
    if (!isPlainObject(m)) return normValue(m, ctx)
    const out = normValue(m, ctx)
    if ('result' in m) out.result = normResult(m.type, m.result, ctx)
    return out
  })
}

// ---------------------------------------------------------------------------------------------
// Sequences

// Copies a step with `$TMP` (anywhere in a string) and `$DBn` (a whole string) filled in.
function fill(v, env) {
  if (typeof v === 'string') {
    const db = /^\$DB(\d+)$/.exec(v)
    if (db) return env.ids[Number(db[1]) - 1] !== undefined ? env.ids[Number(db[1]) - 1] : v
    return v.split('$TMP').join(env.tmp)
  }
  if (Array.isArray(v)) return v.map((x) => fill(x, env))
  if (isPlainObject(v)) {
    const out = {}
    for (const key of Object.keys(v)) out[key] = fill(v[key], env)
    return out
  }
  return v
}

// Runs steps on one side in a fresh temp dir; resolves with one entry per step: the normalized
// message list of a request, or `{ exists }` for a `{ $exists: file }` step. A step may be a
// function of `{ tmp, ids }` returning the step.
async function runSteps(w, steps) {
  const tmp = await w.mkdtemp()
  const ctx = newContext(tmp)
  const env = { tmp, ids: ctx.opened }
  const out = []
  for (const step of steps) {
    const s = fill(typeof step === 'function' ? step(env) : step, env)
    if (s && typeof s === 'object' && '$exists' in s) {
      out.push({ exists: await w.exists(s.$exists) })
      continue
    }
    out.push(normalize(await w.request(s), ctx))
  }
  return out
}

// Closes every db a reused worker still has open (close never fails; a result without a
// filename means nothing was open).
async function closeAll(w) {
  for (let i = 0; i < 100; i++) {
    const messages = await w.request({ type: 'close', messageId: '__reset' })
    const last = messages[messages.length - 1]
    if (!last || !last.result || last.result.filename === undefined) return
  }
  throw new Error('closeAll: the worker keeps reporting open dbs')
}

module.exports = {
  startWorker,
  wrapWorker,
  normalize,
  newContext,
  fill,
  runSteps,
  closeAll,
  ourModulePath,
}
