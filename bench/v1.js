'use strict'
// The 1.x peer: `sqlite3-cluster@1.1.1` from npm, installed as the devDependency
// `sqlite3-cluster-v1` (an npm alias: this package has the same name), with package.json
// `overrides` giving it the current `sqlite3` (the one the other peers use) and `ws@8`.
//
// 1.1.1 was written for ws 0.7. One change makes it run on ws ≥ 3, applied here at load time
// (node_modules stays as npm installed it): ws no longer sets `ws.upgradeReq`; the HTTP
// request is the second argument of the server's `connection` event. Nothing else in 1.x is
// changed. For the benchmark's own bookkeeping we also note every client WebSocket 1.x opens,
// because its client Database has no close() (the socket would keep the process alive).

const fs = require('fs')
const Module = require('module')
const path = require('path')

const ROOT = path.join(__dirname, '..')
const PACKAGE = 'sqlite3-cluster-v1'

const PATCH_FROM = "wss.on('connection', function (ws) {"
const PATCH_TO = "wss.on('connection', function (ws, req) { if (!ws.upgradeReq) ws.upgradeReq = req; /* sqlite3-cluster bench: ws >= 3 */"

let loaded = null
const sockets = new Set()

function load() {
  if (loaded) return loaded
  let pkgDir
  try {
    pkgDir = path.dirname(require.resolve(`${PACKAGE}/package.json`, { paths: [ROOT] }))
  } catch {
    throw new Error(`the 1.x peer is not installed (devDependency ${PACKAGE}): run npm install`)
  }
  const version = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version

  // 1. The ws >= 3 fix, applied when 1.x loads server.js (it does so lazily, when serving).
  const serverFile = path.join(pkgDir, 'server.js')
  const compileJs = Module._extensions['.js']
  Module._extensions['.js'] = function (module, filename) {
    if (filename !== serverFile) return compileJs(module, filename)
    const source = fs.readFileSync(filename, 'utf8')
    if (!source.includes(PATCH_FROM)) throw new Error(`${serverFile}: the ws >= 3 patch no longer applies (expected ${PATCH_FROM})`)
    return module._compile(source.replace(PATCH_FROM, PATCH_TO), filename)
  }

  // 2. Track client sockets: swap the `ws` export 1.x requires for a subclass that records
  // its instances (statics such as WebSocket.Server are inherited unchanged).
  const wsFile = require.resolve('ws', { paths: [pkgDir] })
  const WebSocket = require(wsFile)
  class TrackedWebSocket extends WebSocket {
    constructor(...args) {
      super(...args)
      sockets.add(this)
      this.on('close', () => sockets.delete(this))
    }
  }
  require.cache[wsFile].exports = TrackedWebSocket

  // 1.x warns on every module load that bluebird is missing; that is noise here.
  const warn = console.warn
  console.warn = (...args) => {
    if (typeof args[0] === 'string' && args[0].includes('please use bluebird')) return
    warn.apply(console, args)
  }

  const v1 = require(pkgDir)
  loaded = { v1, version, wsVersion: require(path.join(path.dirname(wsFile), 'package.json')).version }
  return loaded
}

/** A 1.x client (`connect: true`) of the master serving `filename` (sock: filename + '.sock'). */
async function connect(filename) {
  const { v1 } = load()
  const before = new Set(sockets)
  const db = await v1.create({ filename, connect: true })
  const ws = [...sockets].find((s) => !before.has(s))
  if (!ws) throw new Error('1.x client: could not find its WebSocket')
  Object.defineProperty(db, '_benchSocket', { value: ws })
  return db
}

/** Close a 1.x client's socket (1.x has no close()). */
function disconnect(db) {
  const ws = db._benchSocket
  return new Promise((resolve) => {
    if (ws.readyState === ws.CLOSED) return resolve()
    const timer = setTimeout(() => { ws.terminate(); resolve() }, 1000)
    ws.once('close', () => { clearTimeout(timer); resolve() })
    ws.close()
  })
}

/** A 1.x master (`serve: true`): resolves to its node-sqlite3 Database. */
function serve(filename) {
  const { v1 } = load()
  return v1.create({ filename, serve: true })
}

module.exports = { load, connect, disconnect, serve }
