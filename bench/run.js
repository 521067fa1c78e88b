'use strict'
// `npm run bench`: sqlite3-cluster vs node-sqlite3 vs better-sqlite3 (synchronous ceiling) vs
// sqlite3-cluster 1.x, on the same data in temp files, against the targets of docs/performance.md#targets.
// Two tables:
//   in-process    sqlite3-cluster standalone vs node-sqlite3 and better-sqlite3, each in the
//                 measuring process with its own connection;
//   across processes  sqlite3-cluster as a client of a master in another process vs a 1.x
//                 client of a 1.x master, plus the fan-in workloads (a master and N worker
//                 processes; node-sqlite3 and better-sqlite3: N processes with their own
//                 connections).
//
//   BENCH_QUICK=1 npm run bench     # short windows, for smoke testing
//   BENCH_ONLY=insert npm run bench # only workloads whose name contains the text
//   BENCH_IMPLS=cluster,cluster-client npm run bench  # only these implementations (keys)
//
// Under the tables, the ratios some workloads ask for (`ratios`) between implementations measured
// in the same run, checked against their targets where they have one (e.g. ≥ 1.0× node-sqlite3).
//
// Workloads live in bench/workloads.js (a list of { name, unit, targets, run(impl, ctx) }),
// implementations in bench/impls.js, child processes in bench/procs.js (all killed on exit).
// Prints the tables and writes bench/tmp/results.json.

const fs = require('fs')
const os = require('os')
const path = require('path')

const { IMPLS, byKey } = require('./impls')
const { workloads } = require('./workloads')
const { QUICK, TIMING, median } = require('./measure')
const { forkTracked, killAll } = require('./procs')
const data = require('./data')

// One table per section: its subject (whose targets are checked), its columns, and the peers
// the subject's ratios are taken against. A workload appears in a section if its subject ran it.
const SECTIONS = [
  {
    title: 'In-process: one process, its own connection',
    subject: 'cluster',
    columns: ['cluster', 'sqlite3', 'better'],
    ratioVs: ['sqlite3', 'better'],
    notes: [
      'Rows with a writer or a scanner beside the reads: that process has its own connection too; "N reader processes": N processes read, each with its own connection, and the value is their aggregate.',
    ],
  },
  {
    title: 'Across processes: the master is another process; the measuring process (or each worker) is its client',
    subject: 'cluster-client',
    columns: ['cluster-client', 'v1-client', 'sqlite3'],
    ratioVs: ['v1-client', 'sqlite3'],
    notes: [
      'node-sqlite3 has no client mode: its column is the in-process number (one process, own connection), and in the fan-in and "N reader processes" rows N processes that each open the file (WAL).',
      'Fan-in: the master process only serves (issues no queries); each of the N workers keeps 64 point reads in flight; the value is the aggregate of all workers.',
      'Rows with a writer or a scanner beside the reads: the client\'s writer or scanner, and its N reader processes, are all clients of one master.',
      '1.x client: no serialize() (it throws), so its transaction is sent without it and its master runs it in node-sqlite3\'s parallel mode; its each() is broken (not measured).',
    ],
  },
  {
    title: 'Beyond one machine: a 3-node dqlite cluster on this machine (docs/dqlite.md)',
    subject: 'dqlite',
    columns: ['dqlite', 'dqlite-js', 'cluster-client', 'sqlite3'],
    ratioVs: ['dqlite-js', 'cluster-client', 'sqlite3'],
    notes: [
      'dqlite: three nodes of the package\'s node program on 127.0.0.1 (--latency-ms 10); every write is a Raft commit on a majority, every read goes through the leader.',
      'minimal JS client: bench/dqlite-js.js, the anchor of docs/dqlite.md\'s figures, on the same cluster and data in the same run (Node\'s net, TCP_NODELAY, no TCP_QUICKACK: results of a few parts may wait ~40 ms for a delayed ACK).',
    ],
  },
]

function forkEachChild(impl, file) {
  return new Promise((resolve, reject) => {
    const child = forkTracked('each-child.js', [impl.key, file])
    let result = null
    child.on('message', (m) => { result = m })
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      if (result && code === 0) resolve(result)
      else reject(new Error(`each-child (${impl.label}) exited with ${signal || code} without a result`))
    })
  })
}

// ---------------------------------------------------------------------------------------------
// Measuring in rounds

/**
 * The order in which `impls` run a workload. Implementations marked `rounds` (the dqlite pair,
 * whose ratio is the point of their table) run twice, in the order A B then B A, and their
 * samples are pooled: the machine's speed drifts over minutes, and of two runs one after the
 * other the second would carry that drift into the ratio; A B B A cancels a steady drift.
 */
function measuringOrder(impls) {
  const paired = impls.filter((impl) => impl.rounds)
  if (paired.length < 2) return impls
  return [...impls, ...[...paired].reverse()]
}

/** A workload's result after one more run of the same implementation: samples pooled. */
function pooled(earlier, result) {
  if (!earlier) return result
  const pool = (a, b) => {
    const samples = [...a.samples, ...b.samples]
    return { ...b, samples, value: median(samples) }
  }
  const extra = result.extra?.map((ex) => {
    const before = earlier.extra?.find((x) => x.name === ex.name)
    return before?.samples && ex.samples ? pool(before, ex) : ex
  })
  return { ...pool(earlier, result), ...(extra ? { extra } : {}) }
}

// ---------------------------------------------------------------------------------------------
// Formatting

function fmtNum(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—'
  if (unit === 'MiB') return `${v.toFixed(1)} MiB`
  if (unit === 'ms') return `${v.toFixed(1)} ms`
  const suffix = unit === 'rows/s' ? ' rows/s' : '/s'
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M${suffix}`
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k${suffix}`
  return `${v.toFixed(1)}${suffix}`
}

function fmtRatio(a, b) {
  if (a == null || b == null || !b) return '—'
  return `${(a / b).toFixed(2)}×`
}

function printTable(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`
  console.log(line(header))
  console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`)
  for (const r of rows) console.log(line(r))
}

// ---------------------------------------------------------------------------------------------

/** Rows of one section's table: each workload's main metric, then its extra metrics. */
function sectionRows(section, selected, results) {
  const metricRows = []
  for (const entry of results) {
    const main = entry.impls[section.subject]
    if (!main) continue
    const w = selected.find((x) => x.name === entry.name)
    const pick = (r) => (r && !r.error ? r.value : null)
    metricRows.push({
      name: entry.name,
      unit: entry.unit,
      target: w.targets?.[section.subject] ?? null,
      values: Object.fromEntries(section.columns.map((k) => [k, pick(entry.impls[k])])),
      errors: entry.impls,
    })
    // Extra metrics, matched by name across implementations (an implementation may have none).
    const extras = new Map()
    for (const k of section.columns) for (const ex of entry.impls[k]?.extra ?? []) if (!extras.has(ex.name)) extras.set(ex.name, ex)
    for (const ex of extras.values()) {
      const values = Object.fromEntries(section.columns.map((k) => [k, entry.impls[k]?.extra?.find((x) => x.name === ex.name)?.value ?? null]))
      if (values[section.subject] == null && !(ex.showIn ?? []).includes(section.subject)) continue
      metricRows.push({ name: ex.name, unit: ex.unit, target: ex.target, values })
    }
  }
  return metricRows
}

/**
 * Ratios a workload asks for (`ratios` in bench/workloads.js) between two implementations measured
 * in this run, whether or not a table has a column for the peer; a ratio with a target is checked.
 */
function ratioLines(selected, results) {
  const lines = []
  for (const entry of results) {
    const w = selected.find((x) => x.name === entry.name)
    for (const { subject, peer, target } of w.ratios ?? []) {
      const a = entry.impls[subject]
      const b = entry.impls[peer]
      if (!a || !b) continue // one side was not run (BENCH_IMPLS)
      const value = (r) => (r && !r.error && !r.unavailable ? r.value : null)
      const ratio = value(a) != null && value(b) ? value(a) / value(b) : null
      lines.push({ name: entry.name, unit: entry.unit, subject, peer, subjectValue: value(a), peerValue: value(b), ratio, target: target ?? null })
    }
  }
  return lines
}

function printSection(section, metricRows) {
  const label = (k) => byKey(k).label
  const header = ['workload', ...section.columns.map(label), ...section.ratioVs.map((k) => `÷ ${label(k)}`), 'target']
  const rows = metricRows.map((m) => {
    const sv = m.values[section.subject]
    let target = m.target ? m.target.text : '—'
    if (m.target && sv != null) target += m.target.ok(sv) ? ' ✓' : ' ✗'
    return [
      `${m.name} (${m.unit})`,
      ...section.columns.map((k) => (m.errors?.[k]?.error ? 'FAILED' : m.errors?.[k]?.unavailable ? 'n/a' : fmtNum(m.values[k], m.unit))),
      ...section.ratioVs.map((k) => fmtRatio(sv, m.values[k])),
      target,
    ]
  })
  console.log('')
  console.log(`${section.title}:`)
  printTable(header, rows)
  console.log(`ratio = ${label(section.subject)} ÷ peer (for throughput higher is better; for MiB and ms lower is better).`)
  for (const note of section.notes ?? []) console.log(note)
}

function printRatioLines(lines) {
  if (!lines.length) return
  const label = (k) => byKey(k).label
  console.log('')
  console.log('Ratios to peers measured in this run:')
  for (const l of lines) {
    let text = `  ${l.name}: ${label(l.subject)} ${fmtNum(l.subjectValue, l.unit)} ÷ ${label(l.peer)} ${fmtNum(l.peerValue, l.unit)} = ${fmtRatio(l.subjectValue, l.peerValue)}`
    if (l.target) text += ` (target ${l.target.text}${l.ratio != null ? (l.target.ok(l.ratio) ? ' ✓' : ' ✗') : ''})`
    console.log(text)
  }
}

async function main() {
  const started = Date.now()
  const only = process.env.BENCH_ONLY
  const selected = only ? workloads.filter((w) => w.name.includes(only)) : workloads
  const implFilter = process.env.BENCH_IMPLS ? process.env.BENCH_IMPLS.split(',').map((k) => byKey(k.trim()).key) : null
  const impls = implFilter ? IMPLS.filter((i) => implFilter.includes(i.key)) : IMPLS
  const dir = data.makeTempDir()
  const cleanup = () => data.removeTempDir(dir)
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
    process.on(signal, () => {
      killAll()
      cleanup()
      process.exit(code)
    })
  }

  try {
    console.log(`sqlite3-cluster benchmark${QUICK ? ' (BENCH_QUICK: short windows, numbers are rough)' : ''}`)
    console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${os.platform()} ${os.release()}`)
    console.log(`timing: warm-up ${TIMING.warmupMs} ms, then ${TIMING.reps} × ${TIMING.measureMs} ms; median reported; temp dir ${dir}`)

    const readDb = data.createReadDb(dir)
    let scanDb = null // a million rows: made only if a selected workload asks for it
    const ctx = {
      dir,
      readDb,
      ids: data.randomIds(),
      createWriteDb: (label) => data.createWriteDb(dir, label),
      scanDb: () => (scanDb = scanDb || data.createScanDb(dir)),
      scanIds: data.randomIds(1 << 16, data.SCAN_ROWS),
      forkEachChild,
    }

    // The 1.x peer is optional: without it its column says n/a.
    const unavailable = {}
    let v1Info = null
    if (impls.some((i) => i.key === 'v1-client')) {
      try {
        v1Info = require('./v1').load()
        console.log(`1.x peer: sqlite3-cluster ${v1Info.version} (npm alias sqlite3-cluster-v1) on ws ${v1Info.wsVersion}, patched at load for ws >= 3 (connection event's request instead of ws.upgradeReq)`)
      } catch (err) {
        unavailable['v1-client'] = String(err && err.message || err)
        console.log(`1.x peer unavailable: ${unavailable['v1-client']}`)
      }
    }

    // SQLite versions, so differences in the bundled library are visible (in-process
    // implementations; a client runs the same library as its master).
    const versions = {}
    for (const impl of impls) {
      if (impl.master) continue
      const db = await impl.open(readDb)
      versions[impl.key] = await impl.version(db)
      await impl.close(db)
    }
    console.log(`SQLite: ${Object.keys(versions).map((k) => `${byKey(k).label} ${versions[k]}`).join(', ')}${v1Info ? ' (1.x runs on that node-sqlite3)' : ''}`)
    console.log('')

    const results = []
    for (const w of selected) {
      const entry = { name: w.name, unit: w.unit, targets: Object.fromEntries(Object.entries(w.targets ?? {}).map(([k, t]) => [k, t.text])), impls: {} }
      results.push(entry)
      const runs = impls.filter((impl) => !w.impls || w.impls.includes(impl.key))
      for (const impl of measuringOrder(runs)) {
        if (unavailable[impl.key]) {
          entry.impls[impl.key] = { unavailable: unavailable[impl.key] }
          continue
        }
        if (entry.impls[impl.key]?.error) continue
        const t0 = Date.now()
        try {
          const r = await w.run(impl, ctx)
          console.log(`  ${w.name} — ${impl.label}: ${fmtNum(r.value, w.unit)} (samples ${r.samples.map((s) => fmtNum(s, w.unit)).join(', ')}; ${((Date.now() - t0) / 1000).toFixed(1)} s)`)
          entry.impls[impl.key] = pooled(entry.impls[impl.key], r)
        } catch (err) {
          entry.impls[impl.key] = { error: String(err && err.stack || err) }
          console.log(`  ${w.name} — ${impl.label}: FAILED: ${err && err.message}`)
        }
      }
    }

    const tables = []
    for (const section of SECTIONS) {
      if (!impls.some((i) => i.key === section.subject)) continue
      const metricRows = sectionRows(section, selected, results)
      if (!metricRows.length) continue
      printSection(section, metricRows)
      tables.push({
        title: section.title,
        subject: section.subject,
        rows: metricRows.map((m) => ({
          name: m.name,
          unit: m.unit,
          target: m.target?.text ?? null,
          meetsTarget: m.target && m.values[section.subject] != null ? m.target.ok(m.values[section.subject]) : null,
          values: m.values,
        })),
      })
    }
    const ratios = ratioLines(selected, results)
    printRatioLines(ratios)
    console.log('')
    console.log('better-sqlite3 is synchronous: "64 in flight" is its plain loop; it uses prepared statements throughout.')
    console.log(`total ${((Date.now() - started) / 1000).toFixed(1)} s`)

    const out = {
      date: new Date().toISOString(),
      quick: QUICK,
      timing: TIMING,
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      platform: `${os.platform()} ${os.release()}`,
      sqlite: versions,
      v1: v1Info && { version: v1Info.version, ws: v1Info.wsVersion },
      impls: impls.map((i) => ({ key: i.key, label: i.label })),
      workloads: results,
      tables,
      ratios: ratios.map(({ target, ...l }) => ({ ...l, target: target?.text ?? null, meetsTarget: target && l.ratio != null ? target.ok(l.ratio) : null })),
    }
    const outDir = path.join(__dirname, 'tmp')
    fs.mkdirSync(outDir, { recursive: true })
    fs.writeFileSync(path.join(outDir, 'results.json'), `${JSON.stringify(out, null, 2)}\n`)
    console.log(`results written to ${path.relative(process.cwd(), path.join(outDir, 'results.json'))}`)
    if (results.some((e) => Object.values(e.impls).some((r) => r.error))) process.exitCode = 1
  } finally {
    cleanup()
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
