'use strict'
// Validation of create()'s options (DESIGN §2.2). Every problem is a TypeError that names the
// option and says what it accepts.

const fs = require('fs')
const os = require('os')
const path = require('path')
const C = require('./constants')

/** Longest Unix socket path (sun_path holds 108 bytes with the final NUL). */
const MAX_SOCK_PATH = 107

/** `<dir of realpath(filename)>/.<basename>.cluster/sock` (DESIGN §2.2). */
function defaultSock(filename) {
  let real
  try {
    real = fs.realpathSync(filename)
  } catch {
    const absolute = path.resolve(filename)
    let dir = path.dirname(absolute)
    try {
      dir = fs.realpathSync(dir)
    } catch {}
    real = path.join(dir, path.basename(absolute))
  }
  return path.join(path.dirname(real), `.${path.basename(real)}.cluster`, 'sock')
}

const DEFAULTS = { connectTimeout: 10000, busyTimeout: 5000, transactionTimeout: 30000 }

function fail(name, expected, value) {
  const shown = typeof value === 'string' ? JSON.stringify(value) : String(value)
  return new TypeError(`sqlite3-cluster: option \`${name}\` must be ${expected} (got ${shown})`)
}

function optionalBoolean(opts, name) {
  const v = opts[name]
  if (v !== undefined && typeof v !== 'boolean') throw fail(name, 'true or false', v)
  return v
}

function optionalMs(opts, name) {
  const v = opts[name]
  if (v === undefined) return DEFAULTS[name]
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
    throw fail(name, 'a whole number of milliseconds (0 or more)', v)
  }
  return v
}

/** Normalised options, or a thrown TypeError. `defaults` supplies serve/connect for `./cluster`. */
function parseOptions(input, defaults = {}) {
  const opts = typeof input === 'string' ? { filename: input } : input
  if (opts === null || typeof opts !== 'object') {
    throw new TypeError('sqlite3-cluster: create() expects a filename or an options object with `filename`')
  }
  const { filename } = opts
  if (typeof filename !== 'string') throw fail('filename', 'a string (a path, ":memory:" or "")', filename)
  if (filename.includes('\0')) throw fail('filename', 'a path without NUL characters', filename)

  const key = opts.key
  if (key !== undefined && key !== null) {
    if (typeof key === 'string') {
      if (key.length === 0) throw fail('key', 'a non-empty string or a Buffer', key)
    } else if (Buffer.isBuffer(key)) {
      if (key.length !== 32 && key.length !== 48) throw fail('key', 'a Buffer of 32 bytes (or 48 with salt)', `Buffer(${key.length})`)
    } else {
      throw fail('key', 'a string (64 hex digits for a raw key, otherwise a passphrase) or a 32-byte Buffer', key)
    }
  }
  const bits = opts.bits
  if (bits !== undefined && bits !== null && (typeof bits !== 'number' || !Number.isInteger(bits) || bits <= 0)) {
    throw fail('bits', 'a positive whole number such as 128 or 256 (SQLCipher always uses AES-256)', bits)
  }
  const mode = opts.mode
  if (mode !== undefined && (typeof mode !== 'number' || (mode | 0) !== mode)) {
    throw fail('mode', 'node-sqlite3 open flags, e.g. OPEN_READWRITE | OPEN_CREATE', mode)
  }
  if (mode !== undefined && !(mode & (C.OPEN_READONLY | C.OPEN_READWRITE))) {
    throw fail('mode', 'flags that include OPEN_READONLY or OPEN_READWRITE', mode)
  }
  if (opts.sock !== undefined && (typeof opts.sock !== 'string' || !opts.sock || opts.sock.includes('\0'))) {
    throw fail('sock', 'a non-empty path', opts.sock)
  }
  const secret = opts.secret
  if (secret !== undefined && !(typeof secret === 'string' && secret.length) && !Buffer.isBuffer(secret)) {
    throw fail('secret', 'a non-empty string or a Buffer', secret)
  }
  const verbose = optionalBoolean(opts, 'verbose') ?? false
  let serve = optionalBoolean(opts, 'serve')
  let connect = optionalBoolean(opts, 'connect')
  let standalone = optionalBoolean(opts, 'standalone')
  if (serve === undefined && connect === undefined && standalone === undefined) {
    serve = defaults.serve
    connect = defaults.connect
    standalone = defaults.standalone
  }
  if (serve && connect) throw fail('serve', 'not combined with `connect: true` (a process is master or client)', serve)
  if (standalone === undefined && !serve && !connect && os.cpus().length === 1) standalone = true
  const memory = filename === '' || filename === ':memory:'
  const isStandalone = Boolean(standalone || memory)
  let sock = null
  if (!isStandalone) {
    sock = opts.sock !== undefined ? path.resolve(opts.sock) : defaultSock(filename)
    const length = Buffer.byteLength(sock)
    if (length > MAX_SOCK_PATH) {
      throw fail('sock', `a path of at most ${MAX_SOCK_PATH} bytes (Unix sockets allow no more; this one is ${length}${opts.sock === undefined ? ', derived from `filename`: pass a shorter `sock`' : ''})`, sock)
    }
  }

  return {
    filename,
    key: key ?? undefined,
    bits: bits ?? undefined,
    deferredKey: (key === undefined || key === null) && bits !== undefined && bits !== null,
    mode: mode ?? (C.OPEN_READWRITE | C.OPEN_CREATE | C.OPEN_FULLMUTEX),
    verbose,
    sock,
    secret,
    standalone: isStandalone,
    serve: Boolean(serve) && !standalone && !memory,
    connect: Boolean(connect) && !standalone && !memory,
    connectTimeout: optionalMs(opts, 'connectTimeout'),
    busyTimeout: optionalMs(opts, 'busyTimeout'),
    transactionTimeout: optionalMs(opts, 'transactionTimeout'),
  }
}

module.exports = { parseOptions }
