'use strict'
// node:cluster with 1.x's defaults: the primary serves, three workers connect, each inserts 200
// rows; the primary prints one JSON summary line.

const cluster = require('cluster')
const { create } = require('../../cluster')

const file = process.argv[2]
const WORKERS = 3

const run = (db, sql, params = []) => new Promise((resolve, reject) => db.run(sql, params, (e) => (e ? reject(e) : resolve())))
const get = (db, sql) => new Promise((resolve, reject) => db.get(sql, (e, row) => (e ? reject(e) : resolve(row))))

async function primary() {
  const db = await create({ filename: file, key: 'node-cluster test' })
  await run(db, 'CREATE TABLE IF NOT EXISTS t(worker INTEGER, n INTEGER)')
  const workers = []
  await new Promise((resolve) => {
    for (let i = 0; i < WORKERS; i++) {
      const w = cluster.fork({ WORKER_INDEX: String(i) })
      w.on('message', (m) => {
        workers.push(m)
        if (workers.length === WORKERS) resolve()
      })
    }
  })
  const { n } = await get(db, 'SELECT count(*) AS n FROM t')
  console.log(JSON.stringify({ primary: db.cluster, workers, rows: n }))
  for (const id in cluster.workers) cluster.workers[id].kill()
  await new Promise((resolve) => db.close(resolve))
}

async function worker() {
  const db = await create({ filename: file, key: 'node-cluster test' })
  const index = Number(process.env.WORKER_INDEX)
  await Promise.all(Array.from({ length: 200 }, (_, n) => run(db, 'INSERT INTO t VALUES (?, ?)', [index, n])))
  process.send(db.cluster)
}

;(cluster.isPrimary ? primary() : worker()).catch((e) => {
  console.error(e)
  process.exit(1)
})
