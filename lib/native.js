'use strict'
// Loads the compiled addon: a local build (`npm run build`) first, then the prebuilt package
// for this platform. When none fits, the error names every file and package it tried.

const path = require('path')

function platformTriple() {
  const { platform, arch } = process
  if (platform !== 'linux') return `${platform}-${arch}`
  const report = typeof process.report?.getReport === 'function' ? process.report.getReport() : null
  const glibc = report?.header?.glibcVersionRuntime
  const libc = glibc ? 'gnu' : 'musl'
  if (arch === 'arm') return `linux-arm-${libc}eabihf`
  return `linux-${arch}-${libc}`
}

function load() {
  const triple = platformTriple()
  const file = path.join(__dirname, '..', `sqlite3-cluster.${triple}.node`)
  const pkg = `sqlite3-cluster-${triple}`
  const tried = []
  for (const candidate of [file, pkg]) {
    try {
      return require(candidate)
    } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND') throw e
      tried.push(candidate)
    }
  }
  const error = new Error(
    `sqlite3-cluster has no native binary for this platform (${triple}, Node ${process.version}). ` +
      `Looked for: ${tried.join(', ')}. Build it from source with \`npm run build\` (needs Rust), ` +
      `or install on a supported platform (see the README).`
  )
  error.code = 'ERR_SQLITE3_CLUSTER_NO_BINARY'
  throw error
}

module.exports = load()
