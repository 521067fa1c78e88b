'use strict'
// The jest project run by handover.test.js ("jest with several workers on one database file").
// Its test files are named *.inner.js so the repository's own jest run (testMatch
// __test__/**/*.test.js) never picks them up; only this config matches them.

module.exports = {
  rootDir: __dirname,
  testMatch: ['<rootDir>/*.inner.js'],
  testEnvironment: 'node',
  watchman: false,
  testTimeout: 30000,
  // A private cache per run: with cached timings of fast files jest would run them in band (one
  // process), which is not the situation under test.
  cacheDirectory: process.env.HANDOVER_JEST_CACHE,
}
