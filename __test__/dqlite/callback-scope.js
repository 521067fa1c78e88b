'use strict'
// A process of dqlite-event-loop.test.js: `node callback-scope.js sqlite3|ours <filename>`.
// It runs one sequence of statements and prints, as one JSON line, the order in which their
// callbacks ran beside what they queued (process.nextTick, promise reactions, an async context
// of AsyncLocalStorage), and what became of an exception thrown by a callback. The test runs it
// with the real sqlite3 package on a file and with this package on a dqlite URL, and compares.

const { AsyncLocalStorage } = require('async_hooks')

const [which, filename] = process.argv.slice(2)
const { Database } = which === 'sqlite3' ? require('sqlite3') : require('../..')

const log = []
const als = new AsyncLocalStorage()
const SQL = 'SELECT 1 AS one'

process.on('uncaughtException', (err) => {
  log.push(`uncaught: ${err.message}`)
  // After an uncaught exception, the Database still answers. (From the next turn of the loop:
  // node-sqlite3 aborts the process on a statement made inside this handler.)
  setImmediate(() => db.get(SQL, (err2, row) => {
    log.push(err2 ? `after: ${err2.code}` : `after: ${row.one}`)
    process.stdout.write(JSON.stringify(log) + '\n')
    db.close()
  }))
})

const db = new Database(filename, (err) => {
  if (err) throw err
  als.run('first', () => {
    db.get(SQL, (err2, row) => {
      log.push(`get: ${row.one}, context ${als.getStore()}`)
      process.nextTick(() => log.push('tick'))
      // The next statement is sent from a promise reaction, as code that awaits does: it is
      // sent only if the reactions queued by a callback run once the callback returns.
      Promise.resolve().then(() => log.push('promise')).then(() => db.get(SQL, () => {
        log.push('second get')
        db.all(SQL, () => {
          log.push('all')
          throw new Error('boom')
        })
      }))
    })
  })
})
