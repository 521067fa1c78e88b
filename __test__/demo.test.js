'use strict'
// The README's main job: several processes share one encrypted database and lose nothing.

const path = require('path')
const { spawnSync } = require('child_process')

test('npm run demo: 3 workers write and read one encrypted file; every acknowledged write is stored once', () => {
  const result = spawnSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'demo.js')], {
    env: { ...process.env, DEMO_WORKERS: '3', DEMO_SECONDS: '2' },
    encoding: 'utf8',
    timeout: 60000,
  })
  expect(result.stderr).toBe('')
  expect(result.stdout).toContain('integrity_check    ok')
  expect(result.stdout).toContain('random salt: encrypted')
  expect(result.stdout).toContain('OK: every acknowledged write is in the database exactly once.')
  expect(result.status).toBe(0)
}, 70000)
