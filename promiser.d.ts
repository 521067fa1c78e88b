// Types of require('sqlite3-cluster/promiser'): SQLite WASM's Worker1 Promiser.

import type { Envelope, RowMessage } from './worker1'

export interface WorkerLike {
  postMessage(message: unknown): void
  onmessage: ((event: { data: any }) => void) | null
}

export interface PromiserConfig {
  /** A Worker-like object or a function returning one; default: this package's Worker1 thread. */
  worker?: WorkerLike | (() => WorkerLike)
  onready?: (promiser: Promiser) => void | Promise<void>
  onunhandled?: (event: { data: any }) => void
  generateMessageId?: (message: any) => unknown
  debug?: (...args: unknown[]) => void
  onerror?: (...args: unknown[]) => void
}

export interface Promiser {
  (type: string, args: Record<string, any>): Promise<Envelope<any>>
  (message: { type: string; dbId?: string; args?: any; [key: string]: any }): Promise<Envelope<any>>
}

export interface ExecCallbackArgs {
  callback?: (row: RowMessage) => void
}

export interface Sqlite3Worker1Promiser {
  /** v1: returns the promiser at once; `onready` is called when the worker is ready. */
  (config?: PromiserConfig | ((promiser: Promiser) => void)): Promiser
  /** v2: resolves with the promiser once the worker is ready. */
  v2(config?: PromiserConfig | ((promiser: Promiser) => void)): Promise<Promiser>
  defaultConfig: PromiserConfig
}

export const sqlite3Worker1Promiser: Sqlite3Worker1Promiser
export default sqlite3Worker1Promiser
