'use strict'
// `verbose`: errors carry the JavaScript call site, as with node-sqlite3's `verbose()`
// (lib/trace.js there). Enabling is process-wide and cannot be undone.

const util = require('util')

let enabled = false

function label(name, args) {
  return `${name}(${args.map((a) => util.inspect(a, { depth: 0 })).join(', ')})`
}

function augment(err, site, name, args) {
  if (!err || typeof err.stack !== 'string' || err.__augmented) return
  const lines = err.stack.split('\n').filter((line) => !line.includes(__filename))
  const callSite = site.stack.split('\n').slice(2).join('\n')
  err.stack = `${lines.join('\n')}\n--> in ${label(name, args)}\n${callSite}`
  err.__augmented = true
}

function wrap(proto, className, methods) {
  for (const method of methods) {
    const original = proto[method]
    if (typeof original !== 'function') continue
    proto[method] = function (...args) {
      const last = args.length - 1
      if (last >= 0 && typeof args[last] === 'function') {
        const site = new Error()
        const callback = args[last]
        const shown = args.slice()
        args[last] = function (err, ...rest) {
          if (err) augment(err, site, `${className}#${method}`, shown)
          return callback.call(this, err, ...rest)
        }
      }
      return original.apply(this, args)
    }
  }
}

function enable() {
  if (enabled) return
  enabled = true
  const { Database } = require('./database')
  const { Statement } = require('./statement')
  wrap(Database.prototype, 'Database', ['prepare', 'get', 'run', 'all', 'each', 'map', 'close', 'exec'])
  wrap(Statement.prototype, 'Statement', ['bind', 'get', 'run', 'all', 'each', 'map', 'reset', 'finalize'])
}

module.exports = { enable, get enabled() { return enabled } }
