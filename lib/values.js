'use strict'
// node-sqlite3's parameter rules (docs/node-sqlite3.md#parameters, #values), applied before values reach the addon:
// which arguments are parameters, positional or named, and what an exotic value binds as.

const { isTypedArray, isDataView, isDate, isRegExp } = require('util').types

/** Reduces one value to what the addon binds: string, number, boolean, null, undefined, Buffer. */
function bindable(value) {
  if (typeof value !== 'object' || value === null) return value
  if (Buffer.isBuffer(value)) return value
  if (isTypedArray(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  if (isDate(value)) {
    const ms = value.valueOf()
    return Number.isNaN(ms) ? null : ms
  }
  if (isRegExp(value)) return String(value)
  if (isDataView(value)) throw new Error('Invalid argument')
  // Any other object, ArrayBuffers included, binds as its string form, as in node-sqlite3.
  return '[object Object]'
}

function bindableList(list, from) {
  const out = new Array(list.length - from)
  for (let i = from; i < list.length; i++) {
    const v = list[i]
    out[i - from] = typeof v === 'object' && v !== null ? bindable(v) : v
  }
  return out
}

const INT32_KEY = /^-?(0|[1-9][0-9]*)$/

/**
 * The parameters among `args[0..end)`: `{ values, names }`, or `null` when there are none.
 * An array binds by position (other arguments ignored); a plain object by name or position;
 * anything else (primitives, Date, Buffer, RegExp) means the arguments themselves are the values.
 */
function parseParams(args, end) {
  if (end <= 0) return null
  const first = args[0]
  if (Array.isArray(first)) return { values: bindableList(first, 0), names: undefined }
  if ((typeof first !== 'object' && typeof first !== 'function') || first === null || Buffer.isBuffer(first) || isTypedArray(first) ||
      isDate(first) || isRegExp(first)) {
    const values = new Array(end)
    for (let i = 0; i < end; i++) values[i] = bindable(args[i])
    return { values, names: undefined }
  }
  const names = []
  const values = []
  for (const key in first) {
    const n = Number(key)
    names.push(INT32_KEY.test(key) && (n | 0) === n ? n : key)
    values.push(bindable(first[key]))
  }
  return { values, names }
}

module.exports = { parseParams, bindable }
