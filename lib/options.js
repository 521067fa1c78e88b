'use strict'
// Validation of create()'s options (docs/api.md#options). Every problem is a TypeError that names the
// option and says what it accepts.

const crypto = require('crypto')
const fs = require('fs')
const os = require('os')
const path = require('path')
const C = require('./constants')

/** Longest Unix socket path (sun_path holds 108 bytes with the final NUL). */
const MAX_SOCK_PATH = 107

/**
 * A symlink whose target does not exist yet: creates the target (empty, which SQLite reads as an
 * empty database), as opening it would. Every process must find the same real path, hence the
 * same socket, whether it names the link or the target.
 */
function createLinkTarget(filename) {
  try {
    if (!fs.lstatSync(filename).isSymbolicLink() || fs.existsSync(filename)) return
    fs.closeSync(fs.openSync(filename, fs.constants.O_RDONLY | fs.constants.O_CREAT, 0o644))
  } catch {
    // SQLite reports what is wrong with the path when it opens it
  }
}

/** The real path of `filename`, or of its folder when the file does not exist yet. */
function realPath(filename) {
  try {
    return fs.realpathSync(filename)
  } catch {
    const absolute = path.resolve(filename)
    let dir = path.dirname(absolute)
    try {
      dir = fs.realpathSync(dir)
    } catch {
      // the folder does not exist either: the path is kept as given (SQLite reports it on open)
    }
    return path.join(dir, path.basename(absolute))
  }
}

/**
 * The socket's folder when the default path would be too long for a Unix socket: a private
 * folder of this user's (`$XDG_RUNTIME_DIR`, else the temp folder), one entry per database file.
 * The entry is named by the device and inode of the file's folder plus its name, so every
 * process that names the same file (by any path) finds the same socket, whether or not the file
 * exists yet. The per-user folder is created 0700 and refused if another user owns it or others
 * can write to it, since the temp folder is shared with everyone.
 */
function runtimeSock(real) {
  const uid = process.getuid()
  const dir = fs.statSync(path.dirname(real))
  const name = crypto.createHash('sha256').update(path.basename(real)).digest('hex').slice(0, 16)
  const entry = path.join(`sqlite3-cluster-${uid}`, `${dir.dev}-${dir.ino}-${name}`, 'sock')
  const runtime = process.env.XDG_RUNTIME_DIR
  const bases = [runtime && path.isAbsolute(runtime) ? runtime : null, os.tmpdir(), '/tmp']
  const base = bases.find((b) => b !== null && Buffer.byteLength(path.join(b, entry)) <= MAX_SOCK_PATH)
  if (base === undefined) {
    throw new TypeError('sqlite3-cluster: the default socket path is too long for a Unix socket, ' +
      'and so is the one in the runtime folder: pass a short `sock`')
  }
  const root = path.join(base, `sqlite3-cluster-${uid}`)
  try {
    fs.mkdirSync(root, { mode: 0o700 })
  } catch (e) {
    if (e.code !== 'EEXIST') throw e
  }
  const st = fs.lstatSync(root)
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new TypeError(`sqlite3-cluster: the socket folder ${root} is not a private folder of this user ` +
      '(it must be a directory owned by you with mode 0700): remove it, or pass a short `sock`')
  }
  return path.join(base, entry)
}

/**
 * `<dir of realpath(filename)>/.<basename>.cluster/sock`, or, when that is longer than a Unix
 * socket path may be, a folder of this user's runtime folder (see `runtimeSock`).
 */
function defaultSock(filename) {
  const real = realPath(filename)
  const beside = path.join(path.dirname(real), `.${path.basename(real)}.cluster`, 'sock')
  if (Buffer.byteLength(beside) <= MAX_SOCK_PATH) return beside
  return runtimeSock(real)
}

const DEFAULTS = { connectTimeout: 10000, busyTimeout: 5000, transactionTimeout: 30000 }

/**
 * Every option create() and driver() know: 1.x's (filename, sock, bits, connect, key, serve,
 * standalone, verbose) and 2.x's. Any other name is refused, since a misspelt option would
 * otherwise be ignored without a word (`conectTimeout: 5` leaves the 10 s default).
 */
const KNOWN = [
  'filename', 'key', 'bits', 'mode', 'verbose', 'standalone', 'serve', 'connect', 'sock', 'secret',
  'connectTimeout', 'busyTimeout', 'transactionTimeout', 'journalMode', 'readConnections',
]

/** SQLite's journal modes: `journalMode` picks one; without it a writable file goes to WAL. */
const JOURNAL_MODES = ['delete', 'truncate', 'persist', 'memory', 'wal', 'off']

/** Levenshtein distance: how many letters to add, remove or change to turn `a` into `b`. */
function distance(a, b) {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const change = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1)
      current[j] = Math.min(change, previous[j] + 1, current[j - 1] + 1)
    }
    previous = current
  }
  return previous[b.length]
}

/** The known option `name` is an obvious typo of (case aside, at most a third of it wrong). */
function closestKnown(name) {
  let best
  let bestDistance = Infinity
  for (const known of KNOWN) {
    const d = distance(name.toLowerCase(), known.toLowerCase())
    if (d < bestDistance) {
      best = known
      bestDistance = d
    }
  }
  return bestDistance <= Math.max(1, Math.floor(best.length / 3)) ? best : undefined
}

function refuseUnknown(given) {
  for (const name of Object.keys(given)) {
    if (KNOWN.includes(name)) continue
    const guess = closestKnown(name)
    throw new TypeError(`sqlite3-cluster: unknown option \`${name}\`` + (guess !== undefined
      ? ` (did you mean \`${guess}\`?)`
      : `; the options are ${KNOWN.join(', ')}`))
  }
}

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
  const given = typeof input === 'string' ? { filename: input } : input
  if (given === null || typeof given !== 'object') {
    throw new TypeError('sqlite3-cluster: create() expects a filename or an options object with `filename`')
  }
  refuseUnknown(given)
  // `null` means "not set", as in 1.x, whose own examples pass `verbose: null, serve: null`.
  const opts = {}
  for (const [name, value] of Object.entries(given)) if (value !== null) opts[name] = value
  const { filename } = opts
  if (typeof filename !== 'string') throw fail('filename', 'a string (a path, ":memory:" or "")', filename)
  if (filename.includes('\0')) throw fail('filename', 'a path without NUL characters', filename)

  const key = opts.key
  if (key !== undefined) {
    if (typeof key === 'string') {
      if (key.length === 0) throw fail('key', 'a non-empty string or a Buffer', key)
    } else if (Buffer.isBuffer(key)) {
      if (key.length !== 32 && key.length !== 48) throw fail('key', 'a Buffer of 32 bytes (or 48 with salt)', `Buffer(${key.length})`)
    } else {
      throw fail('key', 'a string (64 hex digits for a raw key, otherwise a passphrase) or a 32-byte Buffer', key)
    }
  }
  const bits = opts.bits
  if (bits !== undefined && (typeof bits !== 'number' || !Number.isInteger(bits) || bits <= 0)) {
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
  const journalMode = opts.journalMode
  if (journalMode !== undefined && !(typeof journalMode === 'string' && JOURNAL_MODES.includes(journalMode.toLowerCase()))) {
    throw fail('journalMode', `one of ${JOURNAL_MODES.map((m) => `'${m}'`).join(', ')}`, journalMode)
  }
  const readConnections = opts.readConnections
  if (readConnections !== undefined && !(Number.isInteger(readConnections) && readConnections >= 0 && readConnections <= 64)) {
    throw fail('readConnections', 'a whole number from 0 to 64 (0: every statement on the write connection)', readConnections)
  }
  if (filename.startsWith('dqlite://')) return dqliteOptions(opts)
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
  // A file in a folder that does not exist cannot be opened, nor shared: SQLite says so itself.
  const nowhere = !memory && opts.sock === undefined && !fs.existsSync(path.dirname(path.resolve(filename)))
  const isStandalone = Boolean(standalone || memory || nowhere)
  let sock = null
  if (!isStandalone) {
    if (opts.sock === undefined && (mode === undefined || mode & C.OPEN_CREATE)) createLinkTarget(filename)
    sock = opts.sock !== undefined ? path.resolve(opts.sock) : defaultSock(filename)
    const length = Buffer.byteLength(sock)
    if (length > MAX_SOCK_PATH) {
      throw fail('sock', `a path of at most ${MAX_SOCK_PATH} bytes (Unix sockets allow no more; this one is ${length})`, sock)
    }
  }

  return {
    filename,
    key,
    bits,
    deferredKey: key === undefined && bits !== undefined,
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
    journalMode: journalMode?.toLowerCase(),
    readConnections,
  }
}

/** Options that mean nothing for a database on a dqlite cluster, and why (docs/dqlite.md). */
const NOT_FOR_DQLITE = {
  key: 'dqlite stores pages unencrypted (no SQLCipher on its nodes)',
  bits: 'dqlite stores pages unencrypted (no SQLCipher on its nodes)',
  serve: 'the dqlite nodes serve the database, not this process',
  connect: 'every dqlite:// Database connects to the cluster\'s leader',
  standalone: 'a dqlite:// Database is never standalone',
  sock: 'dqlite nodes are reached over TCP at the addresses of the URL',
  secret: 'dqlite has no client authentication',
  journalMode: 'dqlite chooses the journal of its databases',
  readConnections: 'dqlite runs every statement on its leader',
  transactionTimeout: 'dqlite has no transaction timeout',
}

/** A `dqlite://host:port,…/name` filename: the options that apply to it. */
function dqliteOptions(opts) {
  for (const [name, why] of Object.entries(NOT_FOR_DQLITE)) {
    if (opts[name] !== undefined) throw new TypeError(`sqlite3-cluster: option \`${name}\` does not apply to a dqlite:// database: ${why}`)
  }
  if (!/^dqlite:\/\/[^/]+\/[^/]+$/.test(opts.filename)) {
    throw fail('filename', 'dqlite://host:port[,host:port...]/name', opts.filename)
  }
  const mode = opts.mode
  if (mode !== undefined && (typeof mode !== 'number' || (mode | 0) !== mode)) {
    throw fail('mode', 'node-sqlite3 open flags, e.g. OPEN_READWRITE | OPEN_CREATE', mode)
  }
  return {
    filename: opts.filename,
    mode: mode ?? (C.OPEN_READWRITE | C.OPEN_CREATE | C.OPEN_FULLMUTEX),
    verbose: optionalBoolean(opts, 'verbose') ?? false,
    standalone: true,
    serve: false,
    connect: false,
    sock: null,
    connectTimeout: optionalMs(opts, 'connectTimeout'),
    busyTimeout: optionalMs(opts, 'busyTimeout'),
  }
}

/**
 * What a Database needs of parsed options (the constructor's internal fourth argument): the
 * key, 1.x's `bits`, timeouts and, unless standalone, how to join the cluster.
 */
function sessionOptions(options) {
  return {
    key: options.key,
    bits: options.bits,
    deferredKey: options.deferredKey,
    verbose: options.verbose,
    busyTimeout: options.busyTimeout,
    transactionTimeout: options.transactionTimeout,
    journalMode: options.journalMode,
    readConnections: options.readConnections,
    cluster: options.standalone ? undefined : {
      sock: options.sock,
      intent: options.serve ? 'serve' : options.connect ? 'connect' : 'auto',
      secret: typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : options.secret,
      connectTimeout: options.connectTimeout,
    },
  }
}

module.exports = { parseOptions, sessionOptions }
