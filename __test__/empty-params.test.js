'use strict'
// `[]` and `{}` as parameters bind nothing, as in node-sqlite3: a prepared Statement keeps the
// values bound before, and its get() goes on from its last row instead of starting over; a
// Statement's cursor stands where node-sqlite3's does after get(), run() and all(). The
// same sequence of calls runs on the real `sqlite3` package and on this package (a file, and a
// dqlite database where the node program is built), and must answer the same.

const fs = require('fs')
const os = require('os')
const path = require('path')
const real = require('sqlite3')
const ours = require('..')
const { describeCluster, Cluster } = require('./fixtures/dqlite-cluster')

jest.setTimeout(60000)

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-empty-params-'))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

/** A callback call as a promise of its result, or of `E:<code>` for an error. */
const answer = (fn) => new Promise((resolve) => fn((err, result) => resolve(err ? `E:${err.code}` : result)))

async function steps(db) {
  await answer((cb) => db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v); INSERT INTO t VALUES (1, 10), (2, 20), (3, 30)', cb))
  const out = []
  const from = db.prepare('SELECT id FROM t WHERE id >= ? ORDER BY id')
  out.push(await answer((cb) => from.bind([2], cb)))
  for (let i = 0; i < 3; i++) out.push(await answer((cb) => from.get([], cb)))
  out.push(await answer((cb) => from.all([], cb)))
  out.push(await answer((cb) => from.get({}, cb)))
  // bind() with nothing to bind answers the last step's status (here SQLITE_DONE) and changes nothing.
  out.push(await answer((cb) => from.bind([], cb)))
  out.push(await answer((cb) => from.get(cb)))
  out.push(await answer((cb) => from.all(cb)))
  const every = db.prepare('SELECT id FROM t ORDER BY id')
  for (let i = 0; i < 4; i++) out.push(await answer((cb) => every.get([], cb)))
  out.push(await answer((cb) => every.run([], cb)))
  out.push(await answer((cb) => every.get(cb)))
  out.push(await answer((cb) => db.all('SELECT count(*) AS n FROM t', [], cb)))
  for (const stmt of [from, every]) await answer((cb) => stmt.finalize(cb))
  await answer((cb) => db.close(cb))
  return out
}

test('on a file: the same answers as node-sqlite3', async () => {
  const expected = await steps(new real.Database(path.join(dir, 'real.db')))
  // The cursor went on: rows 2 and 3, then the end, with the value bound first still bound.
  expect(expected.slice(1, 5)).toEqual([{ id: 2 }, { id: 3 }, undefined, [{ id: 2 }, { id: 3 }]])
  expect(await steps(new ours.Database(path.join(dir, 'ours.db')))).toEqual(expected)
})

describeCluster('on dqlite', () => {
  let cluster
  beforeAll(async () => {
    cluster = await Cluster.create(3)
    await cluster.startAll()
  })
  afterAll(() => cluster && cluster.stopAll())

  test('the same answers as node-sqlite3', async () => {
    const expected = await steps(new real.Database(path.join(dir, 'real-for-dqlite.db')))
    expect(await steps(new ours.Database(cluster.url('empty_params')))).toEqual(expected)
  })
})
