'use strict'
// `npm pack` of the root package and the x64 platform package gives tarballs that install into
// an empty folder offline, without Rust, and `require('sqlite3-cluster')` then works.

const { execFileSync } = require('child_process')
const fs = require('fs')
const os = require('os')
const path = require('path')

const ROOT = path.join(__dirname, '..')
const PLATFORM = 'linux-x64-gnu'
const BINARY = path.join(ROOT, `sqlite3-cluster.${PLATFORM}.node`)

const run = (cmd, args, cwd, env = {}) =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })

const testOnX64 = process.platform === 'linux' && process.arch === 'x64' ? test : test.skip

testOnX64('the packed root and platform packages install offline and load without a Rust toolchain', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite3-cluster-pack-'))
  try {
    // The platform package, with the binary this checkout built.
    const stage = path.join(dir, 'stage')
    fs.cpSync(path.join(ROOT, 'npm', PLATFORM), stage, { recursive: true })
    fs.copyFileSync(BINARY, path.join(stage, path.basename(BINARY)))
    run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], stage)
    run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], ROOT)
    const version = require('../package.json').version
    const rootTgz = path.join(dir, `sqlite3-cluster-${version}.tgz`)
    const platformTgz = path.join(dir, `sqlite3-cluster-${PLATFORM}-${version}.tgz`)
    const listing = run('tar', ['tzf', rootTgz], dir)
    expect(listing).toContain('package/worker1.js')
    expect(listing).not.toMatch(/\.node$/m) // the root package carries no binary
    // The dqlite node program travels as source, built where libdqlite is (bin/ says how).
    for (const file of ['bin/sqlite3-cluster-node.js', 'dqlite-node/src/main.rs', 'src/dqlite/wire.rs', 'scripts/build-dqlite-node.sh']) {
      expect(listing).toContain(`package/${file}`)
    }
    expect(listing).not.toContain('package/dqlite-node/bin/')

    const app = path.join(dir, 'app')
    fs.mkdirSync(app)
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
    // No registry and no cargo: everything comes from the two tarballs.
    const noRust = (process.env.PATH || '').split(':').filter((p) => !fs.existsSync(path.join(p, 'cargo'))).join(':')
    run('npm', ['install', '--offline', '--no-audit', '--no-fund', platformTgz, rootTgz], app,
      { PATH: noRust, npm_config_registry: 'http://127.0.0.1:9/' })
    expect(fs.existsSync(path.join(app, 'node_modules', `sqlite3-cluster-${PLATFORM}`, path.basename(BINARY)))).toBe(true)
    const out = run(process.execPath, ['-e', `
      const sqlite = require('sqlite3-cluster')
      sqlite.create({ filename: 'x.db', key: 'k', standalone: true }).then((db) =>
        db.get('SELECT sqlite_version() AS v, count(*) AS n FROM sqlite_master', (err, row) => {
          if (err) throw err
          console.log(JSON.stringify(row))
          db.close()
        }))`], app, { PATH: noRust })
    expect(JSON.parse(out)).toEqual({ v: expect.stringMatching(/^3\.\d+\.\d+$/), n: 0 })

    // `npx sqlite3-cluster-node` where the program was never built: how to build it, status 1.
    let failed = null
    try {
      run(path.join(app, 'node_modules', '.bin', 'sqlite3-cluster-node'), ['--help'], app)
    } catch (e) {
      failed = e
    }
    expect(failed && failed.status).toBe(1)
    expect(failed.stderr).toMatch(/is not built here[^]*apt-get install libdqlite-dev[^]*build-dqlite-node\.sh/)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}, 120000)
