#!/usr/bin/env node
'use strict'
// `npx sqlite3-cluster-node …`: runs the package's dqlite node program (docs/dqlite.md#running-nodes)
// with the arguments given. The program links Debian's libdqlite, so it is not prebuilt: where it
// has not been built, this says how to build it. SIGTERM, SIGINT and SIGHUP are passed on, so
// that the node hands its leadership over before it stops; its exit status is this one's.
// Under systemd, run the program itself (the path below) rather than through npx.

const { spawn } = require('child_process')
const fs = require('fs')
const path = require('path')

const ROOT = path.join(__dirname, '..')
const PROGRAM = path.join(ROOT, 'dqlite-node', 'bin', 'sqlite3-cluster-node')

if (!fs.existsSync(PROGRAM)) {
  process.stderr.write(
    `sqlite3-cluster-node is not built here (${PROGRAM} is missing).\n` +
    'It links libdqlite, so it is built on the machine that runs it (Debian 12 or Ubuntu 22.04 and later):\n' +
    '  apt-get install libdqlite-dev    # and a Rust toolchain (https://rustup.rs)\n' +
    `  bash ${path.join(ROOT, 'scripts', 'build-dqlite-node.sh')}\n`)
  process.exit(1)
}

const child = spawn(PROGRAM, process.argv.slice(2), { stdio: 'inherit' })
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(signal, () => child.kill(signal))
}
child.on('error', (e) => {
  process.stderr.write(`sqlite3-cluster-node: cannot start ${PROGRAM}: ${e.message}\n`)
  process.exit(1)
})
child.on('exit', (code, signal) => {
  if (signal) {
    // Ended by a signal: end the same way (after the handlers above are gone).
    process.removeAllListeners(signal)
    process.kill(process.pid, signal)
  } else {
    process.exit(code)
  }
})
