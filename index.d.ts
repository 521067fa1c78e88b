// Types of sqlite3-cluster: node-sqlite3's Database/Statement API (as in sqlite3's own
// lib/sqlite3.d.ts, widened where the runtime returns more) plus create() and its options.

import { EventEmitter } from 'events'

export interface CreateOptions {
  /** Database path, ':memory:' or '' (the last two are always in-process). */
  filename: string
  /** SQLCipher key: 64/96 hex digits or a 32-byte Buffer is a raw key; other strings are passphrases. */
  key?: string | Buffer
  /** 1.x compatibility (SQLCipher 4 always uses AES-256). Without `key`: deferred keying, see Database#init. */
  bits?: number
  /** node-sqlite3 open flags. */
  mode?: number
  /** Errors carry the JavaScript call site (process-wide). */
  verbose?: boolean
  /** Open the file in this process only (default on a 1-CPU machine when serve/connect are unset). */
  standalone?: boolean
  /** Become the master now; rejects with CLUSTER_MASTER_EXISTS (and `masterPid`) if another process is. */
  serve?: boolean
  /** Client only: wait up to `connectTimeout` for a master, never become one. */
  connect?: boolean
  /** Unix socket path (at most 107 bytes). Default: `<dir of realpath(filename)>/.<basename>.cluster/sock`. */
  sock?: string
  /** Shared secret: master and clients prove it to each other (HMAC-SHA256); it never travels. */
  secret?: string | Buffer
  /** How long a client waits for a master, at start and after failover (default 10000 ms). */
  connectTimeout?: number
  /** SQLite busy timeout in ms (default 5000). */
  busyTimeout?: number
  /** A session idle inside a transaction this long is rolled back (default 30000 ms; the master's value applies). */
  transactionTimeout?: number
  /**
   * SQLite's journal mode, set at every open. Default: a file opened for writing that is in
   * SQLite's default mode (`delete`) is put in WAL mode, so that readers and the writer do not
   * wait for each other.
   */
  journalMode?: 'delete' | 'truncate' | 'persist' | 'memory' | 'wal' | 'off'
  /**
   * Read connections the engine opens beside its write connection, so that reads run while a
   * transaction holds the write connection (README, "Sessions"). Default: one per CPU, from 2
   * to 8; 0 runs every statement on the write connection. The value of the Database that opens
   * the file (in a cluster, the master's) is the one that counts.
   */
  readConnections?: number
}

/** Codes of this package's errors (`err.code`), beside SQLite's `SQLITE_*` codes. */
export type ClusterErrorCode =
  | 'CLUSTER_MASTER_EXISTS'
  | 'CLUSTER_NO_MASTER'
  | 'CLUSTER_MASTER_LOST'
  | 'CLUSTER_TXN_ABORTED'
  | 'CLUSTER_AUTH'
  | 'CLUSTER_PROTOCOL'

export interface ClusterInfo {
  role: 'standalone' | 'master' | 'client'
  sock: string | null
  masterPid: number | null
}

export interface RunResult extends Statement {
  lastID: number
  changes: number
}

export interface SqliteError extends Error {
  errno: number
  code: string
  /** With CLUSTER_MASTER_EXISTS: the pid of the live master. */
  masterPid?: number | null
}

export class Statement extends EventEmitter {
  constructor(database: Database, sql: string, callback?: (err: Error | null) => void)
  readonly sql: string
  lastID?: number
  changes?: number
  bind(callback?: (err: Error | null) => void): this
  bind(...params: any[]): this
  reset(callback?: (err: null) => void): this
  finalize(callback?: () => void): Database
  run(callback?: (this: RunResult, err: Error | null) => void): this
  run(params: any, callback?: (this: RunResult, err: Error | null) => void): this
  run(...params: any[]): this
  get<T = any>(callback?: (this: Statement, err: Error | null, row?: T) => void): this
  get<T = any>(params: any, callback?: (this: Statement, err: Error | null, row?: T) => void): this
  get(...params: any[]): this
  all<T = any>(callback?: (this: Statement, err: Error | null, rows: T[]) => void): this
  all<T = any>(params: any, callback?: (this: Statement, err: Error | null, rows: T[]) => void): this
  all(...params: any[]): this
  each<T = any>(callback?: (this: Statement, err: Error | null, row: T) => void, complete?: (err: Error | null, count: number) => void): this
  each<T = any>(params: any, callback?: (this: Statement, err: Error | null, row: T) => void, complete?: (err: Error | null, count: number) => void): this
  each(...params: any[]): this
  map<T = any>(...params: any[]): this
}

export class Database extends EventEmitter {
  constructor(filename: string, callback?: (err: Error | null) => void)
  constructor(filename: string, mode?: number, callback?: (err: Error | null) => void)
  readonly filename: string
  readonly mode: number
  readonly open: boolean
  readonly cluster: ClusterInfo

  close(callback?: (err: Error | null) => void): this
  run(sql: string, callback?: (this: RunResult, err: Error | null) => void): this
  run(sql: string, params: any, callback?: (this: RunResult, err: Error | null) => void): this
  run(sql: string, ...params: any[]): this
  get<T = any>(sql: string, callback?: (this: Statement, err: Error | null, row?: T) => void): this
  get<T = any>(sql: string, params: any, callback?: (this: Statement, err: Error | null, row?: T) => void): this
  get(sql: string, ...params: any[]): this
  all<T = any>(sql: string, callback?: (this: Statement, err: Error | null, rows: T[]) => void): this
  all<T = any>(sql: string, params: any, callback?: (this: Statement, err: Error | null, rows: T[]) => void): this
  all(sql: string, ...params: any[]): this
  each<T = any>(sql: string, callback?: (this: Statement, err: Error | null, row: T) => void, complete?: (err: Error | null, count: number) => void): this
  each<T = any>(sql: string, params: any, callback?: (this: Statement, err: Error | null, row: T) => void, complete?: (err: Error | null, count: number) => void): this
  each(sql: string, ...params: any[]): this
  map<T = any>(sql: string, ...params: any[]): this
  exec(sql: string, callback?: (this: Database, err: Error | null) => void): this
  prepare(sql: string, callback?: (this: Statement, err: Error | null) => void): Statement
  prepare(sql: string, params: any, callback?: (this: Statement, err: Error | null) => void): Statement
  prepare(sql: string, ...params: any[]): Statement
  serialize(callback?: () => void): this
  parallelize(callback?: () => void): this
  configure(option: 'busyTimeout', value: number): this
  configure(option: 'limit', id: number, value: number): this
  loadExtension(filename: string, callback?: (err: Error | null) => void): this
  wait(callback?: (param: null) => void): this
  interrupt(): this
  /** Copies this database into `filename` (node-sqlite3's online backup). */
  backup(filename: string, callback?: (this: Backup, err: Error | null) => void): Backup
  backup(filename: string, sourceName: string, destName: string, filenameIsDest: boolean, callback?: (this: Backup, err: Error | null) => void): Backup
  /** Applies a deferred SQLCipher key (create({ bits }) without key). */
  init(options: { key: string | Buffer; bits?: number }): Promise<this>
  escape(value: unknown): string
  sanitize(value: unknown): string

  on(event: 'trace', listener: (sql: string) => void): this
  on(event: 'profile', listener: (sql: string, time: number) => void): this
  on(event: 'change', listener: (type: 'insert' | 'update' | 'delete', database: string, table: string, rowid: number) => void): this
  on(event: 'error', listener: (err: Error) => void): this
  on(event: 'open' | 'close', listener: () => void): this
  /** Failover changed this process's role for the database. */
  on(event: 'role', listener: (role: 'master' | 'client', masterPid: number) => void): this
  on(event: string, listener: (...args: any[]) => void): this
}

/** node-sqlite3's Backup, returned by `db.backup(...)`. */
export class Backup extends EventEmitter {
  readonly filename: string
  readonly sourceName: string
  readonly destName: string
  readonly filenameIsDest: boolean
  readonly idle: boolean
  readonly completed: boolean
  readonly failed: boolean
  readonly remaining: number
  readonly pageCount: number
  retryErrors: number[]
  step(pages: number, callback?: (this: Backup, err: Error | null, completed: boolean) => void): this
  finish(callback?: (this: Backup) => void): this
}

/** A module with the `sqlite3` module's shape (what ORMs take as their driver). */
export interface Sqlite3Module {
  Database: typeof Database
  Statement: typeof Statement
  Backup: typeof Backup
  cached: { Database(filename: string, mode?: number | ((err: Error | null) => void), callback?: (err: Error | null) => void): Database; objects: Record<string, Database> }
  verbose(): Sqlite3Module
  [constant: string]: unknown
}

/** A `sqlite3`-shaped module whose Databases apply these options (all of create()'s but `filename`). */
export function driver(options?: Omit<CreateOptions, 'filename'>): Sqlite3Module
/** node-sqlite3's per-filename cache of Databases. */
export const cached: Sqlite3Module['cached']

/** Opens (or joins) a database; resolves once it is open and its key checked. */
export function create(options: CreateOptions | string): Promise<Database>

export interface CloseOnExitOptions {
  /** How long to wait for the Databases to close before the process ends anyway (default 1500 ms, under PM2's kill_timeout). */
  timeout?: number
  /** The signals handled (default `['SIGINT', 'SIGTERM']`). */
  signals?: NodeJS.Signals[]
}

/**
 * On SIGINT/SIGTERM, closes every open Database of this package in this process (a master
 * hands the file over to the other processes), then ends the process by the same signal. If
 * the app listens for the signal itself, the Databases are closed and the process is left to
 * the app. Handlers are installed once; a later call sets the timeout and may add signals.
 */
export function closeOnExit(options?: CloseOnExitOptions): void

/** `String(value)` with every single quote doubled; no surrounding quotes. */
export function escape(value: unknown): string
export function sanitize(value: unknown): string
export function verbose(): typeof import('./index')

export const OPEN_READONLY: number
export const OPEN_READWRITE: number
export const OPEN_CREATE: number
export const OPEN_FULLMUTEX: number
export const OPEN_URI: number
export const OPEN_SHAREDCACHE: number
export const OPEN_PRIVATECACHE: number
export const VERSION: string
export const SOURCE_ID: string
export const VERSION_NUMBER: number
export const OK: number
export const ERROR: number
export const INTERNAL: number
export const PERM: number
export const ABORT: number
export const BUSY: number
export const LOCKED: number
export const NOMEM: number
export const READONLY: number
export const INTERRUPT: number
export const IOERR: number
export const CORRUPT: number
export const NOTFOUND: number
export const FULL: number
export const CANTOPEN: number
export const PROTOCOL: number
export const EMPTY: number
export const SCHEMA: number
export const TOOBIG: number
export const CONSTRAINT: number
export const MISMATCH: number
export const MISUSE: number
export const NOLFS: number
export const AUTH: number
export const FORMAT: number
export const RANGE: number
export const NOTADB: number
export const LIMIT_LENGTH: number
export const LIMIT_SQL_LENGTH: number
export const LIMIT_COLUMN: number
export const LIMIT_EXPR_DEPTH: number
export const LIMIT_COMPOUND_SELECT: number
export const LIMIT_VDBE_OP: number
export const LIMIT_FUNCTION_ARG: number
export const LIMIT_ATTACHED: number
export const LIMIT_LIKE_PATTERN_LENGTH: number
export const LIMIT_VARIABLE_NUMBER: number
export const LIMIT_TRIGGER_DEPTH: number
export const LIMIT_WORKER_THREADS: number
