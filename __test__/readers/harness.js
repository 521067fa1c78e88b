'use strict'
// Processes for readers.test.js: agents (agent.js) driven over IPC (`fixtures/agents.js`), killed
// by pid after each test, whether it passed or not.

const path = require('path')
const { Agent, killAll } = require('../fixtures/agents')

const AGENT = path.join(__dirname, 'agent.js')

const agent = () => new Agent(AGENT, { serialization: 'advanced' })

module.exports = { agent, killAll }
