'use strict'
// `db.prepare(sql, [params…], [callback])`: a Statement (lib/statement.js), prepared by the
// engine in call order; parameters given here are bound as by `statement.bind()`.

const { Statement } = require('../statement')
const { splitCallback } = require('../callbacks')

module.exports = {
  prepare(sql, ...args) {
    if (typeof sql !== 'string') throw new TypeError('SQL query expected')
    const { callback } = splitCallback(args)
    const errBack = callback ? (err) => { if (err) callback(err) } : undefined
    const statement = new Statement(this, sql, errBack)
    return args.length ? statement.bind(...args) : statement
  },
}
