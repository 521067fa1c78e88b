'use strict'
// The README's main job: several processes share one encrypted database through one master,
// survive the master's SIGKILL, and lose nothing they acknowledged.

const path = require('path')
const { spawnSync } = require('child_process')

test('npm run demo: 3 workers share one encrypted file, the master is killed, every acknowledged write is stored once', () => {
  const result = spawnSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'demo.js')], {
    env: { ...process.env, DEMO_WORKERS: '3', DEMO_SECONDS: '3', DEMO_KILLS: '1' },
    encoding: 'utf8',
    timeout: 60000,
  })
  expect(result.stderr).toBe('')
  expect(result.stdout).toMatch(/killed the master \(pid \d+\) with SIGKILL/)
  expect(result.stdout).toMatch(/failover +master \d+ killed; pid \d+ took over in \d+ ms/)
  expect(result.stdout).toMatch(/acked writes lost +0\n/)
  expect(result.stdout).toMatch(/rows in the file +\d+ \(0 duplicated\)/)
  expect(result.stdout).toMatch(/integrity_check +ok/)
  expect(result.stdout).toContain('random salt: encrypted')
  expect(result.stdout).toContain('OK: every acknowledged write is in the database exactly once.')
  expect(result.status).toBe(0)
}, 70000)
