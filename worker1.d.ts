// Types of require.resolve('sqlite3-cluster/worker1'): the messages its worker thread takes and
// posts (SQLite WASM's Worker1 protocol; see README "Worker1 and Promiser").

/** Options of `open`: the reference's, plus this package's (encryption, cluster). */
export interface OpenArgs {
  /** Default '' (an anonymous temporary database). `file:` URIs are opened in this thread only. */
  filename?: string
  /** Accepted when it names a registered VFS (`config-get` lists them); the default VFS is used. */
  vfs?: string
  key?: string | Uint8Array
  bits?: number
  sock?: string
  serve?: boolean
  connect?: boolean
  standalone?: boolean
  secret?: string | Uint8Array
  connectTimeout?: number
  busyTimeout?: number
  transactionTimeout?: number
}

export type SqlValue = null | number | bigint | string | Uint8Array
export type BindValue = SqlValue | boolean | undefined | Int8Array | ArrayBuffer

export interface ExecArgs {
  sql: string | string[] | Uint8Array | Int8Array | ArrayBuffer
  bind?: BindValue | BindValue[] | Record<string, BindValue>
  rowMode?: 'array' | 'object' | number | `$${string}`
  resultRows?: unknown[]
  columnNames?: string[]
  /** The message type of the row messages posted for each row, then once with rowNumber null. */
  callback?: string
  returnValue?: 'this' | 'resultRows' | 'saveSql'
  saveSql?: string[]
  countChanges?: boolean | 64
  lastInsertRowId?: boolean
}

export type Request =
  | { type: 'open'; messageId?: unknown; dbId?: string; args?: OpenArgs }
  | { type: 'close'; messageId?: unknown; dbId?: string; args?: { unlink?: boolean } }
  | { type: 'exec'; messageId?: unknown; dbId?: string; args: string | ExecArgs }
  | { type: 'export'; messageId?: unknown; dbId?: string }
  | { type: 'config-get'; messageId?: unknown; dbId?: string }

export interface Envelope<T = unknown> {
  type: string
  dbId: string | undefined
  messageId: unknown
  workerReceivedTime: number
  workerRespondTime: number
  departureTime: number | undefined
  result: T
}

export interface OpenResult { filename: string; persistent: false; dbId: string; vfs: string }
export interface CloseResult { filename: string | undefined }
export interface ExportResult { byteArray: Uint8Array; filename: string; mimetype: 'application/x-sqlite3' }
export interface ConfigGetResult {
  bigIntEnabled: true
  version: { libVersion: string; libVersionNumber: number; sourceId: string; downloadVersion: number; sqlcipherVersion: string }
  vfsList: string[]
}
export interface ErrorResult {
  operation: string | undefined
  message: string
  errorClass: string
  input: unknown
  stack?: string[]
}
export interface RowMessage {
  type: string
  columnNames: string[]
  /** 1-based; null on the end-of-rows message (whose `row` is undefined). */
  rowNumber: number | null
  row: unknown
}
