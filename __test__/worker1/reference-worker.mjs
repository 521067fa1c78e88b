// The real Worker1 of @sqlite.org/sqlite-wasm (devDependency, pinned) as a worker_threads
// script: the reference side of the differential tests. It makes Node look enough like a Web
// Worker for `sqlite3.initWorker1API()` (docs/worker1.md#running-the-reference), then forwards every message
// from the parent to the Worker1 `onmessage` as `{ data }`.
//
// Its filesystem is the wasm module's private in-memory one (MEMFS), so the harness cannot make
// a temp dir there with `fs`. Messages tagged `__harness` are answered here, never passed to
// Worker1: `mkdir` and `exists` call the unix VFS's own mkdir()/access() system calls.

import { parentPort } from 'node:worker_threads'
import sqlite3InitModule from '@sqlite.org/sqlite-wasm'

// A rejected `onmessage` (docs/worker1.md#reference-defects: a detached blob buffer cannot be posted) must not kill
// the worker; the parent is told, so that a request fails at once instead of timing out.
process.on('unhandledRejection', (err) => {
  parentPort.postMessage({ __harness: 'unhandled', message: String(err && err.stack || err) })
})

const sqlite3 = await sqlite3InitModule()
const { capi, wasm } = sqlite3
// oo1 logs every failed sqlite3_step() as a warning; the error response says the same.
sqlite3.config.warn = () => {}

function systemCall(name, path, ...args) {
  const pVfs = capi.sqlite3_vfs_find(0)
  const getSystemCall = wasm.functionEntry(new capi.sqlite3_vfs(pVfs).$xGetSystemCall)
  return wasm.scopedAllocCall(() => {
    const fn = wasm.functionEntry(getSystemCall(pVfs, wasm.scopedAllocCString(name)))
    return fn(wasm.scopedAllocCString(path), ...args)
  })
}

const harness = {
  mkdir: ({ path }) => systemCall('mkdir', path, 0o755) === 0,
  exists: ({ path }) => systemCall('access', path, 0) === 0,
}

globalThis.WorkerGlobalScope = function WorkerGlobalScope() {}
globalThis.postMessage = (msg, transfer) => parentPort.postMessage(msg, transfer)
parentPort.on('message', (data) => {
  if (data && typeof data === 'object' && typeof data.__harness === 'string') {
    parentPort.postMessage({ __harness: data.__harness, result: harness[data.__harness](data) })
    return
  }
  globalThis.onmessage({ data })
})
sqlite3.initWorker1API()
