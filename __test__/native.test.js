'use strict'
// The native session's own argument checks: what lib/ does not check first reaches Rust, and
// Rust must report a bad argument as node-sqlite3 does, with a TypeError. (The addon creates its
// errors in Node's main context, not in jest's sandbox, so the class is compared by name.)

const { NativeSession } = require('../lib/native')

function thrown(fn) {
  try {
    fn()
  } catch (e) {
    return { name: e.name, constructor: e.constructor.name, message: e.message }
  }
  throw new Error('nothing was thrown')
}

const typeError = (message) => ({ name: 'TypeError', constructor: 'TypeError', message })

function withSession(fn) {
  const s = new NativeSession(':memory:', () => {}, undefined)
  try {
    fn(s)
  } finally {
    s.dispose()
  }
}

test('an unknown configuration option is a TypeError naming it', () => {
  withSession((s) => {
    expect(thrown(() => s.configure(1, 'cacheSize', 0, 0))).toEqual(
      typeError('cacheSize is not a valid configuration option')
    )
  })
})

test('an unknown execution mode and a key of the wrong type are TypeErrors', () => {
  withSession((s) => {
    expect(thrown(() => s.query(1, 9, 'SELECT 1', undefined, undefined))).toEqual(
      typeError('unknown execution mode 9')
    )
    expect(thrown(() => s.key(2, 42, undefined))).toEqual(typeError('key must be a string or a Buffer'))
  })
})

test('an unknown cluster intent is a TypeError', () => {
  const cluster = { sock: '/tmp/x.sock', intent: 'lead', connectTimeout: 1000 }
  expect(thrown(() => new NativeSession('x.db', () => {}, cluster))).toEqual(
    typeError('unknown cluster intent "lead"')
  )
})
