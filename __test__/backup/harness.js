'use strict'
// Real processes for backup.test.js: agents (agent.js) driven over IPC (`fixtures/agents.js`),
// each in the cwd the test chooses, always killed at the end of each test.

const path = require('path')
const { Agent, killAll } = require('../fixtures/agents')

const AGENT = path.join(__dirname, 'agent.js')

/** An agent process whose cwd is `cwd`. */
const agent = (cwd) => new Agent(AGENT, { cwd })

module.exports = { agent, killAll }
