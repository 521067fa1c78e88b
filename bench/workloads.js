'use strict'
// The workloads. Each is { name, unit, targets, run(impl, ctx) } where run() opens what it needs,
// warms up, measures (see measure.repeat), closes everything, and resolves to
//   { value, samples, extra?: [{ name, unit, target, value, samples, showIn? }] }
// `extra` adds more rows to the table (e.g. peak RSS next to each()'s rows/s); a table shows an
// extra row where its subject has a value, or where `showIn` lists the table's subject.
// `targets` maps an implementation key to its target (docs/performance.md#targets) { text, ok(value) }: the
// standalone targets belong to 'cluster', the client targets to 'cluster-client'.
// Optional `impls: [keys]` restricts a workload to some implementations; the others show "—".
// Optional `ratios: [{ subject, peer, target? }]` prints subject ÷ peer under the tables (bench/run.js),
// for a peer the subject's table has no column for, or a target that is a ratio ({ text, ok(ratio) }).
//
// ctx: { dir, readDb, ids, createWriteDb(label), scanDb() (created on first use), scanIds, forkEachChild(impl, file) }

const { repeat, now, epoch, median, settle, TIMING } = require('./measure')
const { ITEMS, BIG } = require('./data')
const { forkTracked, waitMessage, stopChild, startMaster } = require('./procs')
const { POINT_SQL, checkRow, serialPointReads, pointReader } = require('./point-reads')
const { Latencies, latencyRows } = require('./latency')

const INSERT_SQL = 'INSERT INTO ins (name, value) VALUES (?, ?)'
const ALL_SQL = 'SELECT id, name, value FROM items WHERE id > ? ORDER BY id LIMIT 1000'
const EACH_SQL = 'SELECT id, name, value FROM big'
const SCAN_POINT_SQL = 'SELECT id, n, payload FROM scanned WHERE id = ?'
const BATCH = 1000
const IN_FLIGHT = 64
const DATABASES = 4

async function withDb(impl, file, fn) {
  const db = await impl.open(file)
  try {
    return await fn(db)
  } finally {
    await impl.close(db)
  }
}

function getP(db, sql, param) {
  return new Promise((resolve, reject) => db.get(sql, param, (err, row) => (err ? reject(err) : resolve(row))))
}
function runP(db, sql, params) {
  return new Promise((resolve, reject) => db.run(sql, params, (err) => (err ? reject(err) : resolve())))
}
function allP(db, sql, param) {
  return new Promise((resolve, reject) => db.all(sql, param, (err, rows) => (err ? reject(err) : resolve(rows))))
}

/** Count of rows in `ins`, to check that every insert landed. */
async function countIns(impl, db) {
  if (impl.kind === 'sync') return db.prepare('SELECT count(*) AS n FROM ins').get().n
  return (await getP(db, 'SELECT count(*) AS n FROM ins', [])).n
}

const gte = (n) => (v) => v >= n
const lte = (n) => (v) => v <= n

// The targets of the reads-during-writes workloads: with a connection per process in WAL mode,
// node-sqlite3's readers are neither slowed nor held up by the writer, and a cluster's must not be.
const AT_LEAST_NODE_SQLITE3 = { text: '≥ 1.0× node-sqlite3', ok: gte(1) }
const NO_READ_WAITS_FOR_THE_WRITER = { max: { text: '< 20 ms', ok: (v) => v < 20 } }

const workloads = [
  {
    name: 'point read by PK, serial',
    unit: 'ops/s',
    targets: {},
    run: (impl, ctx) => withDb(impl, ctx.readDb, async (db) => {
      const ids = ctx.ids
      const mask = ids.length - 1
      let i = 0
      if (impl.kind === 'sync') {
        const stmt = db.prepare(POINT_SQL)
        return repeat((ms) => {
          const t0 = now()
          const deadline = t0 + ms
          let n = 0
          do {
            for (let k = 0; k < 64; k++, n++) {
              const id = ids[i++ & mask]
              checkRow(stmt.get(id), id)
            }
          } while (now() < deadline)
          return (n * 1000) / (now() - t0)
        })
      }
      return repeat(serialPointReads(pointReader(impl, db), ids))
    }),
  },

  {
    name: `point read by PK, ${IN_FLIGHT} in flight`,
    unit: 'ops/s',
    targets: { cluster: { text: '≥ 100k/s', ok: gte(100e3) }, 'cluster-client': { text: '≥ 80k/s', ok: gte(80e3) } },
    run: (impl, ctx) => withDb(impl, ctx.readDb, async (db) => {
      const ids = ctx.ids
      const mask = ids.length - 1
      let i = 0
      if (impl.kind === 'sync') {
        // Synchronous: nothing can be in flight; same loop as serial.
        const stmt = db.prepare(POINT_SQL)
        return repeat((ms) => {
          const t0 = now()
          const deadline = t0 + ms
          let n = 0
          do {
            for (let k = 0; k < 64; k++, n++) {
              const id = ids[i++ & mask]
              checkRow(stmt.get(id), id)
            }
          } while (now() < deadline)
          return (n * 1000) / (now() - t0)
        })
      }
      return repeat(async (ms) => {
        await settle()
        return new Promise((resolve, reject) => {
          const t0 = now()
          const deadline = t0 + ms
          let done = 0
          let outstanding = 0
          let stop = false
          let failure = null
          const issue = () => {
            const id = ids[i++ & mask]
            outstanding++
            db.get(POINT_SQL, id, (err, row) => {
              outstanding--
              done++
              if (err) failure = failure || err
              else if (!row || row.id !== id) failure = failure || new Error(`wrong row for id ${id}: ${JSON.stringify(row)}`)
              if (!stop && (failure || now() >= deadline)) stop = true
              if (!stop) issue()
              else if (outstanding === 0) {
                if (failure) reject(failure)
                else resolve((done * 1000) / (now() - t0))
              }
            })
          }
          for (let k = 0; k < IN_FLIGHT; k++) issue()
        })
      })
    }),
  },

  {
    // Four Databases of one process, each reading serially: what a server with a few
    // connections does. Not one Database with many calls in flight: a dqlite connection runs one
    // request at a time, so concurrency there comes from several Databases.
    name: `point read by PK, ${DATABASES} Databases (1 in flight each)`,
    unit: 'ops/s',
    impls: ['cluster', 'sqlite3', 'cluster-client', 'dqlite', 'dqlite-js'],
    targets: {},
    run: (impl, ctx) => withDb(impl, ctx.readDb, async (first) => {
      const more = []
      try {
        for (let k = 1; k < DATABASES; k++) more.push(await (impl.connect ? impl.connect(ctx.readDb) : impl.open(ctx.readDb)))
        const readers = [first, ...more].map((db) => serialPointReads(pointReader(impl, db), ctx.ids))
        return await repeat(async (ms, phase) => {
          const rates = await Promise.all(readers.map((read) => read(ms, phase)))
          return rates.reduce((a, b) => a + b, 0)
        })
      } finally {
        for (const db of more) await impl.close(db)
      }
    }),
  },

  {
    name: 'single-row insert, serial',
    unit: 'ops/s',
    targets: {},
    run: (impl, ctx) => withDb(impl, ctx.createWriteDb(impl.key), async (db) => {
      let total = 0
      let result
      if (impl.kind === 'sync') {
        const stmt = db.prepare(INSERT_SQL)
        result = await repeat((ms) => {
          const t0 = now()
          const deadline = t0 + ms
          let n = 0
          do {
            for (let k = 0; k < 16; k++, n++) stmt.run(`row-${n}`, n * 0.5)
          } while (now() < deadline)
          total += n
          return (n * 1000) / (now() - t0)
        })
      } else {
        result = await repeat(async (ms) => {
          await settle()
          const t0 = now()
          const deadline = t0 + ms
          let n = 0
          do {
            await runP(db, INSERT_SQL, [`row-${n}`, n * 0.5])
            n++
          } while (now() < deadline)
          total += n
          return (n * 1000) / (now() - t0)
        })
      }
      const count = await countIns(impl, db)
      if (count !== total) throw new Error(`inserted ${total} rows but the table has ${count}`)
      return result
    }),
  },

  {
    name: `${BATCH} inserts in one transaction`,
    unit: 'rows/s',
    targets: { cluster: { text: '≥ 200k rows/s', ok: gte(200e3) }, 'cluster-client': { text: '≥ 100k rows/s', ok: gte(100e3) } },
    run: (impl, ctx) => withDb(impl, ctx.createWriteDb(impl.key), async (db) => {
      let total = 0
      const checkCount = async () => {
        const count = await countIns(impl, db)
        if (count !== total) throw new Error(`inserted ${total} rows but the table has ${count}`)
      }
      let result
      if (impl.kind === 'sync') {
        const stmt = db.prepare(INSERT_SQL)
        const batch = db.transaction(() => {
          for (let k = 0; k < BATCH; k++) stmt.run(`row-${k}`, k * 0.5)
        })
        result = await repeat((ms) => {
          const t0 = now()
          const deadline = t0 + ms
          let rows = 0
          do {
            batch()
            rows += BATCH
          } while (now() < deadline)
          total += rows
          return (rows * 1000) / (now() - t0)
        })
      } else {
        // BEGIN; 1000 × run(INSERT) without waiting; COMMIT — all issued in one tick.
        // node-sqlite3 needs serialize() for this to be a transaction at all (its default
        // parallel mode may reorder the statements); sqlite3-cluster is always serialized.
        // A 1.x client has no serialize() (it throws): it sends the same calls without it,
        // and its master runs them on node-sqlite3 in parallel mode.
        // The batch's statements, `last` called for the COMMIT and `each` for the others.
        const sendBatch = (each, last = each) => {
          db.run('BEGIN', each)
          for (let k = 0; k < BATCH; k++) db.run(INSERT_SQL, [`row-${k}`, k * 0.5], each)
          db.run('COMMIT', last)
        }
        const issueBatch = (resolve, reject) => {
          let failure = null
          sendBatch((err) => { if (err) failure = failure || err }, (err) => {
            // The first failure is the cause: a COMMIT after a failed BEGIN only says that no
            // transaction is active.
            if (failure || err) reject(failure || err)
            else resolve()
          })
        }
        const batch = impl.serialize === false
          ? () => new Promise(issueBatch)
          : () => new Promise((resolve, reject) => db.serialize(() => issueBatch(resolve, reject)))
        const measureBatches = (fn) => repeat(async (ms) => {
          await settle()
          const t0 = now()
          const deadline = t0 + ms
          let rows = 0
          do {
            await fn()
            rows += BATCH
          } while (now() < deadline)
          total += rows
          return (rows * 1000) / (now() - t0)
        })
        result = await measureBatches(batch)
        if (impl.key === 'sqlite3') {
          // For reference only: the same calls in node-sqlite3's default parallel mode. Faster,
          // but statements may run out of order, so some inserts escape the transaction, and a
          // batch whose COMMIT ran before its BEGIN fails: such a batch is rolled back once all
          // its statements are done, and counted as issued (the table's count is checked first).
          await checkCount()
          const parallel = await measureBatches(() => new Promise((resolve) => {
            let left = BATCH + 2
            let failed = false
            sendBatch((err) => {
              if (err) failed = true
              if (--left === 0) {
                if (failed) db.run('ROLLBACK', () => resolve())
                else resolve()
              }
            })
          }))
          return { ...result, extra: [{ name: '  (node-sqlite3 without serialize(): not atomic)', unit: 'rows/s', target: null, showIn: ['cluster'], ...parallel }] }
        }
      }
      await checkCount()
      return result
    }),
  },

  {
    name: 'all() of 1000 rows',
    unit: 'ops/s',
    targets: {},
    run: (impl, ctx) => withDb(impl, ctx.readDb, async (db) => {
      const ids = ctx.ids
      const mask = ids.length - 1
      let i = 0
      const from = () => ids[i++ & mask] % (ITEMS - 1000)
      const check = (rows, start) => {
        if (rows.length !== 1000 || rows[0].id !== start + 1 || rows[999].id !== start + 1000) {
          throw new Error(`all() returned ${rows.length} rows starting at ${rows[0]?.id}, expected 1000 from ${start + 1}`)
        }
      }
      if (impl.kind === 'sync') {
        const stmt = db.prepare(ALL_SQL)
        return repeat((ms) => {
          const t0 = now()
          const deadline = t0 + ms
          let n = 0
          do {
            const start = from()
            check(stmt.all(start), start)
            n++
          } while (now() < deadline)
          return (n * 1000) / (now() - t0)
        })
      }
      return repeat(async (ms) => {
        await settle()
        const t0 = now()
        const deadline = t0 + ms
        let n = 0
        do {
          const start = from()
          check(await allP(db, ALL_SQL, start), start)
          n++
        } while (now() < deadline)
        return (n * 1000) / (now() - t0)
      })
    }),
  },

  {
    // Each repetition is a fresh child process (bench/each-child.js): a warm-up pass, then a
    // measured pass, then it reports rows/s and its peak RSS (process.resourceUsage().maxRSS).
    // Not for 1.x clients: their each() is broken (one callback per request: rows are lost).
    name: `each() over ${BIG / 1000}k rows`,
    unit: 'rows/s',
    impls: ['cluster', 'sqlite3', 'better', 'cluster-client', 'dqlite', 'dqlite-js'],
    targets: { cluster: { text: '≥ 800k rows/s', ok: gte(800e3) } },
    async run(impl, ctx) {
      // The children use this process's dqlite cluster, with the table copied in once here.
      if (impl.key === 'dqlite' || impl.key === 'dqlite-js') await impl.close(await impl.open(ctx.readDb))
      const runs = []
      for (let r = 0; r < TIMING.reps; r++) runs.push(await ctx.forkEachChild(impl, ctx.readDb))
      for (const x of runs) {
        if (x.rows !== BIG) throw new Error(`each() delivered ${x.rows} rows, expected ${BIG}`)
      }
      const rates = runs.map((x) => x.rowsPerSec)
      const rss = runs.map((x) => x.maxRssKiB / 1024)
      const base = runs.map((x) => x.baseRssKiB / 1024)
      return {
        value: median(rates),
        samples: rates,
        extra: [
          { name: `each() over ${BIG / 1000}k rows, peak RSS`, unit: 'MiB', target: { text: '≤ 80 MiB', ok: lte(80) }, value: median(rss), samples: rss, lowerIsBetter: true },
          { name: '  (RSS after open, before each())', unit: 'MiB', target: null, value: median(base), samples: base, lowerIsBetter: true },
        ],
      }
    },
  },

  fanIn(2),
  fanIn(4),
  readsDuringWrites(),
  readsDuringWrites(3),
  longScan(),
]

/** Fork `script`, a process that works beside the measured reads; wait for its { ready }, run `fn(child)`, and stop it however `fn` ends. */
async function besideChild(script, args, what, fn) {
  const child = forkTracked(script, args)
  try {
    await waitMessage(child, (m) => m && m.ready, what)
    return await fn(child)
  } finally {
    await stopChild(child)
  }
}

/**
 * Reads during write transactions: a writer process (bench/writer-child.js) holds 200 ms write
 * transactions back to back while serial point reads are measured. The value is reads/s; extra
 * rows give the read latency (p50, p99, max over all measured reads). With a connection per
 * process in WAL mode (node-sqlite3, better-sqlite3, a standalone sqlite3-cluster in each
 * process) readers never wait for the writer; through one master connection they do until the
 * master has read connections.
 *
 * One reader: the measuring process reads. Several: that many reader processes
 * (bench/reader-child.js) read at once, and the value is their aggregate rate, because read
 * connections must serve many readers beside the writer, not one; for a client implementation
 * the writer and the readers are all clients of one master started by the workload.
 */
function readsDuringWrites(readers = 1) {
  return {
    name: `point reads during 200 ms write transactions${readers > 1 ? `, ${readers} reader processes` : ''}`,
    unit: 'ops/s',
    impls: ['cluster', 'sqlite3', 'better', 'cluster-client'],
    targets: {},
    ratios: [
      { subject: 'cluster', peer: 'sqlite3', target: AT_LEAST_NODE_SQLITE3 },
      { subject: 'cluster-client', peer: 'sqlite3', target: AT_LEAST_NODE_SQLITE3 },
    ],
    run: readers > 1 ? (impl, ctx) => readersDuringWrites(impl, ctx, readers) : readerDuringWrites,
  }
}

/** The run of readsDuringWrites with one reader, the measuring process. */
function readerDuringWrites(impl, ctx) {
  return withDb(impl, ctx.readDb, (db) => besideChild('writer-child.js', [impl.key, ctx.readDb], 'writer', async () => {
    const latencies = new Latencies()
    const result = await repeat(serialPointReads(pointReader(impl, db), ctx.ids, (ms, phase) => {
      if (phase === 'measure') latencies.add(ms)
    }))
    result.extra = latencyRows(latencies, NO_READ_WAITS_FOR_THE_WRITER)
    return result
  }))
}

/** The run of readsDuringWrites with `readers` reader processes. */
async function readersDuringWrites(impl, ctx, readers) {
  const master = impl.master ? await startMaster(impl.master, ctx.readDb) : null
  const children = []
  try {
    // The readers open the file first, as the measuring process does in the one-reader variant.
    for (let r = 0; r < readers; r++) children.push(forkTracked('reader-child.js', [impl.key, ctx.readDb]))
    await Promise.all(children.map((c, r) => waitMessage(c, (m) => m && m.ready, `reader ${r}`)))
    return await besideChild('writer-child.js', [impl.key, ctx.readDb], 'writer', async () => {
      const plan = { go: Date.now() + 300, warmupMs: TIMING.warmupMs, measureMs: TIMING.measureMs, reps: TIMING.reps }
      const timeoutMs = 300 + plan.warmupMs + plan.measureMs * plan.reps + 60000
      const results = children.map((c, r) => waitMessage(c, (m) => m && m.samples, `reader ${r}`, timeoutMs))
      for (const c of children) c.send(plan)
      const reports = await Promise.all(results)
      const samples = reports[0].samples.map((_, k) => reports.reduce((sum, m) => sum + m.samples[k], 0))
      const perReader = reports.map((m) => median(m.samples))
      const latencies = reports.reduce((all, m) => all.merge(m.latencies), new Latencies())
      return {
        value: median(samples),
        samples,
        extra: [
          ...latencyRows(latencies, NO_READ_WAITS_FOR_THE_WRITER),
          { name: `  (${readers} readers: slowest reader)`, unit: 'ops/s', target: null, value: Math.min(...perReader), samples: perReader },
        ],
      }
    })
  } finally {
    await Promise.all(children.map((c) => stopChild(c)))
    if (master) await master.stop()
  }
}

/**
 * A long scan beside point reads: a scanner process (bench/scanner-child.js) runs a full-table
 * aggregate over the million rows of `scanned` back to back (a report, an export) while the
 * measuring process does serial point reads by primary key on the same table. The value is
 * reads/s; extra rows give the read latency and how long the scans took. With a connection per
 * process a point read never queues behind the scan; through one master connection it waits for
 * the scan under way to finish, which read connections in the master are to end as well.
 */
function longScan() {
  return {
    name: 'long scan beside point reads',
    unit: 'ops/s',
    impls: ['cluster', 'sqlite3', 'better', 'cluster-client'],
    targets: {},
    run: (impl, ctx) => {
      const file = ctx.scanDb()
      return withDb(impl, file, (db) => besideChild('scanner-child.js', [impl.key, file], 'scanner', async (scanner) => {
        // Every scan the scanner reports, and its failure: a scanner that stopped would leave the
        // reads alone and make them look good.
        const scans = []
        let failure = null
        scanner.on('message', (m) => {
          if (m && m.error) failure = failure || new Error(`scanner: ${m.error}`)
          else if (m && m.scanMs != null) scans.push(m)
        })
        const latencies = new Latencies()
        let from = null
        const result = await repeat(serialPointReads(pointReader(impl, db, SCAN_POINT_SQL), ctx.scanIds, (ms, phase) => {
          if (phase !== 'measure') return
          if (from === null) from = epoch() - ms
          latencies.add(ms)
        }))
        const to = epoch()
        // Stopped here rather than by besideChild, so that the scan under way at the end has
        // reported too: the scans that overlapped the measured reads are the ones that count.
        await stopChild(scanner)
        if (failure) throw failure
        if (scanner.exitCode !== 0) throw new Error(`the scanner exited with ${scanner.signalCode || scanner.exitCode}`)
        const during = scans.filter((s) => s.endedAt >= from && s.endedAt - s.scanMs <= to).map((s) => s.scanMs)
        if (!during.length) throw new Error('no scan ran while the reads were measured')
        result.extra = [
          ...latencyRows(latencies, { p99: { text: '< 5 ms', ok: (v) => v < 5 } }),
          { name: '  (one scan in the other process, median)', unit: 'ms', target: null, value: median(during), samples: during, lowerIsBetter: true },
        ]
        return result
      }))
    },
  }
}

/**
 * Fan-in: N worker processes each keep IN_FLIGHT point reads outstanding for a fixed time;
 * the value is the aggregate rate. sqlite3-cluster and 1.x: a master process that only serves
 * (bench/master-child.js) plus N clients. node-sqlite3 and better-sqlite3: N processes, each with
 * its own connection to the same file (WAL), no master; better-sqlite3 is the ceiling of a
 * connection per process, so the cluster client's ratio to it is printed under the tables (it
 * has no column in the across-processes table). Workers are bench/fanin-child.js; they start
 * together at one wall-clock instant and count in aligned windows (warm-up, then TIMING.reps
 * windows of TIMING.measureMs); each sample is the sum over workers of one window.
 */
function fanIn(workers) {
  return {
    name: `master + ${workers} workers, point reads`,
    unit: 'ops/s',
    impls: ['cluster-client', 'v1-client', 'sqlite3', 'better'],
    ratios: [{ subject: 'cluster-client', peer: 'better' }],
    targets: workers === 4 ? { 'cluster-client': { text: '≥ 150k/s aggregate', ok: gte(150e3) } } : {},
    async run(impl, ctx) {
      const master = impl.master ? await startMaster(impl.master, ctx.readDb) : null
      const children = []
      try {
        for (let w = 0; w < workers; w++) children.push(forkTracked('fanin-child.js', [impl.key, ctx.readDb, String(w)]))
        await Promise.all(children.map((c, w) => waitMessage(c, (m) => m && m.ready, `fan-in worker ${w}`)))
        const plan = { go: Date.now() + 300, warmupMs: TIMING.warmupMs, measureMs: TIMING.measureMs, reps: TIMING.reps, inFlight: IN_FLIGHT }
        const timeoutMs = 300 + plan.warmupMs + plan.measureMs * plan.reps + 60000
        const results = children.map((c, w) => waitMessage(c, (m) => m && m.counts, `fan-in worker ${w}`, timeoutMs))
        for (const c of children) c.send(plan)
        const counts = (await Promise.all(results)).map((m) => m.counts)
        const samples = counts[0].map((_, k) => (counts.reduce((sum, c) => sum + c[k], 0) * 1000) / plan.measureMs)
        const perWorker = counts.map((c) => (median(c) * 1000) / plan.measureMs)
        return {
          value: median(samples),
          samples,
          extra: [{
            name: `  (master + ${workers} workers: slowest worker)`,
            unit: 'ops/s',
            target: null,
            value: Math.min(...perWorker),
            samples: perWorker,
          }],
        }
      } finally {
        await Promise.all(children.map((c) => stopChild(c)))
        if (master) await master.stop()
      }
    },
  }
}

module.exports = { workloads, EACH_SQL, BIG, IN_FLIGHT }
