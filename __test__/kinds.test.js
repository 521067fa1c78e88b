'use strict'
// The message kinds, the batch stride and the execution modes are numbers that Rust
// (src/js/convert.rs, src/js/session.rs) and JavaScript (lib/session.js) must agree on: a
// mismatch would route answers to the wrong handler. Both sides are read here and compared.

const fs = require('fs')
const path = require('path')
const { K, MODE } = require('../lib/session')

const root = path.join(__dirname, '..')
const read = (file) => fs.readFileSync(path.join(root, file), 'utf8')

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
