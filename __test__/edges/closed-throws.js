'use strict'
// A child process for edges.test.js: calls without a callback on a closed Database, with no
// 'error' listener. Run outside jest because EventEmitter rethrows an unlistened 'error' as is
// only when it is an Error of Node's own realm (jest's sandbox has another). Prints, as one JSON
// line, what each call threw.
//
// usage: node closed-throws.js <module path>

const sqlite3 = require(process.argv[2])

const CALLS = {
  'prepare(sql)': (db) => db.prepare('SELECT 1 AS x'),
  'run(sql)': (db) => db.run('SELECT 1'),
  'get(sql)': (db) => db.get('SELECT 1'),
  'all(sql)': (db) => db.all('SELECT 1'),
  'each(sql)': (db) => db.each('SELECT 1'),
  'map(sql)': (db) => db.map('SELECT 1'),
  'exec(sql)': (db) => db.exec('SELECT 1'),
  'wait()': (db) => db.wait(),
  'close()': (db) => db.close(),
  "configure('busyTimeout', 100)": (db) => db.configure('busyTimeout', 100),
  'loadExtension(path)': (db) => db.loadExtension('/nonexistent/extension'),
}

const db = new sqlite3.Database(':memory:')
db.close((err) => {
  if (err) throw err
  const thrown = {}
  for (const [name, call] of Object.entries(CALLS)) {
    try {
      call(db)
      thrown[name] = 'no throw'
    } catch (e) {
      thrown[name] = { message: e.message, errno: e.errno, code: e.code, keys: Object.keys(e), error: e instanceof Error }
    }
  }
  process.stdout.write(JSON.stringify(thrown) + '\n')
})
