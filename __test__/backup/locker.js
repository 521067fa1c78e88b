'use strict'
// Holds an EXCLUSIVE lock with a pending write on a database file, in a process of its own (two
// SQLite libraries in one process do not see each other's POSIX locks), using the real
// node-sqlite3. Prints `locked` once it holds the lock; a line on stdin commits, closes and exits.

const sqlite3 = require('sqlite3')

const db = new sqlite3.Database(process.argv[2])
db.exec('CREATE TABLE IF NOT EXISTS lockers(x); BEGIN EXCLUSIVE; INSERT INTO lockers VALUES (1)', (err) => {
  if (err) {
    process.stderr.write(`locker: ${err.message}\n`)
    process.exit(2)
  }
  process.stdout.write('locked\n')
})
process.stdin.once('data', () => {
  db.exec('COMMIT', (err) => {
    process.stdout.write(err ? `commit failed: ${err.message}\n` : 'released\n')
    db.close(() => process.exit(err ? 3 : 0))
  })
})
