'use strict'
// The message kinds, the batch stride and the execution modes are numbers that Rust
// (src/js/convert.rs, src/js/session.rs) and JavaScript (lib/session.js) must agree on: a
// mismatch would route answers to the wrong handler. The configure options and the event
// names are words both sides must spell alike (lib/methods/configure.js, lib/methods/events.js):
// a mismatch would make a valid option fail or an event never reach its listeners. Both sides
// are read here and compared.

const fs = require('fs')
const path = require('path')
const { K, MODE } = require('../lib/session')
const { HOOKS } = require('../lib/methods/configure')

const root = path.join(__dirname, '..')
const read = (file) => fs.readFileSync(path.join(root, file), 'utf8')
// Every Rust file of the N-API side, as one text: the words may move between its files.
const readNapiSide = () => fs.readdirSync(path.join(root, 'src/js')).filter((f) => f.endsWith('.rs'))
  .map((f) => read(path.join('src/js', f))).join('\n')

test('message kinds and the batch stride are the same numbers in Rust and in lib/session.js', () => {
  const rust = {}
  for (const [, name, value] of read('src/js/convert.rs').matchAll(/^pub const ([A-Z_]+): u32 = (\d+);/gm)) {
    rust[name] = Number(value)
  }
  const { STRIDE, ...kinds } = rust
  expect(kinds).toEqual(K)
  expect(STRIDE).toBe(Number(/^const STRIDE = (\d+)/m.exec(read('lib/session.js'))[1]))
})

test('execution modes are the same numbers in Rust and in lib/session.js', () => {
  const body = /fn mode\(m: u32\)[\s\S]*?\n}/.exec(read('src/js/session.rs'))[0]
  const rust = {}
  for (const [, value, name] of body.matchAll(/(\d+) => Mode::(\w+)/g)) rust[name.toLowerCase()] = Number(value)
  expect(rust).toEqual(MODE)
})

test('configure options are the same words in Rust and in lib/methods/configure.js', () => {
  const rust = [...readNapiSide().matchAll(/"(\w+)" => Setting::/g)].map((m) => m[1])
  expect(rust.sort()).toEqual(['busyTimeout', 'limit', ...HOOKS].sort())
})

test("the events Rust reports are 'role', 'leader' (dqlite) and the hooks lib/methods/events.js turns on", () => {
  const rust = [...readNapiSide().matchAll(/self\.str\("(\w+)"\)/g)].map((m) => m[1])
  expect(rust.sort()).toEqual(['leader', 'role', ...HOOKS].sort())
  // The two that are not hooks are each handled by name in lib/methods/events.js.
  const events = read('lib/methods/events.js')
  for (const name of ['role', 'leader']) expect(events).toContain(`name === '${name}'`)
})
