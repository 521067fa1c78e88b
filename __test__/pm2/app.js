'use strict'
// The HTTP app PM2 runs in the test (cluster mode, several instances on one port).
// `GET /inc?id=<n>` records hit <n> (a trigger adds one to the counter in the same statement)
// and answers 200 once it is stored, or 500 with the error. `GET /ping` answers `db.cluster`.
// With HELPER=1 the app has the one line of closeOnExit().

const http = require('http')
const sqlite = require('../../cluster')

if (process.env.HELPER === '1') sqlite.closeOnExit()

sqlite.create({ filename: process.env.DB_FILE }).then((db) => {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost')
    if (url.pathname === '/ping') return res.end(JSON.stringify({ pid: process.pid, ...db.cluster }))
    db.run('INSERT INTO hits(id, pid) VALUES (?, ?)', [Number(url.searchParams.get('id')), process.pid], (err) => {
      if (!err) return res.end('ok')
      res.statusCode = 500
      res.end(`${err.code}: ${err.message}`)
    })
  })
  // PM2 retires an old instance only once its replacement listens: after it joined the cluster.
  server.listen(Number(process.env.PORT))
})
