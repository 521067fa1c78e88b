'use strict'
// `npm run bench`: sqlite3-cluster (standalone) vs node-sqlite3 (in-process) vs better-sqlite3
// (synchronous ceiling), on the same data in temp files, against the targets of DESIGN §9.
//
//   BENCH_QUICK=1 npm run bench     # short windows, for smoke testing
//   BENCH_ONLY=insert npm run bench # only workloads whose name contains the text
//
// Workloads live in bench/workloads.js (a list of { name, unit, target, run(impl, ctx) }),
// implementations in bench/impls.js. Prints a table and writes bench/tmp/results.json.

const fs = require('fs')
const os = require('os')
const path = require('path')
const { fork } = require('child_process')

const { IMPLS } = require('./impls')
const { workloads } = require('./workloads')
const { QUICK, TIMING } = require('./measure')
const data = require('./data')

const SUBJECT = IMPLS[0] // sqlite3-cluster
const RATIO_VS = ['sqlite3', 'better']

function forkEachChild(impl, file) {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(__dirname, 'each-child.js'), [impl.key, file], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
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
// Formatting

function fmtNum(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—'
  if (unit === 'MiB') return `${v.toFixed(1)} MiB`
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

async function main() {
  const started = Date.now()
  const only = process.env.BENCH_ONLY
  const selected = only ? workloads.filter((w) => w.name.includes(only)) : workloads
  const dir = data.makeTempDir()
  const cleanup = () => data.removeTempDir(dir)
  process.on('SIGINT', () => { cleanup(); process.exit(130) })

  try {
    console.log(`sqlite3-cluster benchmark${QUICK ? ' (BENCH_QUICK: short windows, numbers are rough)' : ''}`)
    console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${os.platform()} ${os.release()}`)
    console.log(`timing: warm-up ${TIMING.warmupMs} ms, then ${TIMING.reps} × ${TIMING.measureMs} ms; median reported; temp dir ${dir}`)

    const readDb = data.createReadDb(dir)
    const ctx = {
      dir,
      readDb,
      ids: data.randomIds(),
      createWriteDb: (label) => data.createWriteDb(dir, label),
      forkEachChild,
    }

    // SQLite versions, so differences in the bundled library are visible.
    const versions = {}
    for (const impl of IMPLS) {
      const db = await impl.open(readDb)
      versions[impl.key] = await impl.version(db)
      await impl.close(db)
    }
    console.log(`SQLite: ${IMPLS.map((i) => `${i.label} ${versions[i.key]}`).join(', ')}`)
    console.log('')

    const results = []
    for (const w of selected) {
      const entry = { name: w.name, unit: w.unit, target: w.target?.text ?? null, impls: {} }
      results.push(entry)
      for (const impl of IMPLS) {
        if (w.impls && !w.impls.includes(impl.key)) continue
        const t0 = Date.now()
        try {
          entry.impls[impl.key] = await w.run(impl, ctx)
          const r = entry.impls[impl.key]
          console.log(`  ${w.name} — ${impl.label}: ${fmtNum(r.value, w.unit)} (samples ${r.samples.map((s) => fmtNum(s, w.unit)).join(', ')}; ${((Date.now() - t0) / 1000).toFixed(1)} s)`)
        } catch (err) {
          entry.impls[impl.key] = { error: String(err && err.stack || err) }
          console.log(`  ${w.name} — ${impl.label}: FAILED: ${err && err.message}`)
        }
      }
    }

    // Flatten into table rows: each workload's main metric plus any extra metrics.
    const metricRows = []
    for (const entry of results) {
      const w = selected.find((x) => x.name === entry.name)
      metricRows.push({ name: entry.name, unit: entry.unit, target: w.target, lowerIsBetter: false, values: Object.fromEntries(Object.entries(entry.impls).map(([k, r]) => [k, r.error ? null : r.value])), errors: entry.impls })
      // Extra metrics, matched by name across implementations (an implementation may have none).
      const extras = new Map()
      for (const r of Object.values(entry.impls)) for (const ex of r.extra ?? []) if (!extras.has(ex.name)) extras.set(ex.name, ex)
      for (const ex of extras.values()) {
        metricRows.push({
          name: ex.name,
          unit: ex.unit,
          target: ex.target,
          lowerIsBetter: ex.lowerIsBetter,
          values: Object.fromEntries(Object.entries(entry.impls).map(([k, r]) => [k, r.extra?.find((x) => x.name === ex.name)?.value ?? null])),
        })
      }
    }

    const header = ['workload', ...IMPLS.map((i) => i.label), ...RATIO_VS.map((k) => `ratio vs ${IMPLS.find((i) => i.key === k).label}`), 'DESIGN target']
    const rows = metricRows.map((m) => {
      const sv = m.values[SUBJECT.key]
      let target = m.target ? m.target.text : '—'
      if (m.target && sv != null) target += m.target.ok(sv) ? ' ✓' : ' ✗'
      return [
        `${m.name} (${m.unit})`,
        ...IMPLS.map((i) => (m.errors?.[i.key]?.error ? 'FAILED' : fmtNum(m.values[i.key], m.unit))),
        ...RATIO_VS.map((k) => fmtRatio(sv, m.values[k])),
        target,
      ]
    })
    console.log('')
    printTable(header, rows)
    console.log('')
    console.log(`ratio = ${SUBJECT.label} ÷ peer (for throughput higher is better; for MiB lower is better).`)
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
      impls: IMPLS.map((i) => ({ key: i.key, label: i.label })),
      workloads: results,
      table: metricRows.map((m) => ({
        name: m.name,
        unit: m.unit,
        target: m.target?.text ?? null,
        meetsTarget: m.target && m.values[SUBJECT.key] != null ? m.target.ok(m.values[SUBJECT.key]) : null,
        values: m.values,
      })),
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
