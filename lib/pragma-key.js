'use strict'
// `PRAGMA key = …` sent as a statement: the route ORMs take to SQLCipher (sequelize's
// `password`, TypeORM's `key`, a knex `afterCreate` hook). It cannot run as SQL on a connection
// other Databases share, and in a cluster client the key must stay in the process, so the
// Database recognises it and sends it as a key of its own session (see src/engine/requests/open.rs
// `pragma_key`).

// PRAGMA [main.]key = <value>  or  PRAGMA [main.]key(<value>), alone, an optional `;` after.
const PRAGMA_KEY = /^\s*PRAGMA\s+(?:main\s*\.\s*)?key\s*(?:=\s*([\s\S]+?)|\(\s*([\s\S]+?)\s*\))\s*;?\s*$/i

/** SQLite's reading of a pragma value: a quoted string (quotes doubled inside) or a word. */
function unquote(token) {
  const quote = token[0]
  const close = { "'": "'", '"': '"', '`': '`', '[': ']' }[quote]
  if (close === undefined) return /^[^\s;'"`[\]]+$/.test(token) ? token : undefined
  if (token.length < 2 || token[token.length - 1] !== close) return undefined
  const body = token.slice(1, -1)
  if (close === ']') return body.includes(']') ? undefined : body
  // Every quote inside must be doubled; a lone one means the text is not one string.
  if (body.split(close + close).some((part) => part.includes(close))) return undefined
  return body.split(close + close).join(close)
}

/** The key text of a `PRAGMA key` statement, or undefined when `sql` is anything else. */
function pragmaKeyText(sql) {
  if (sql.length > 4096 || !/^\s*PRAGMA/i.test(sql)) return undefined
  const match = PRAGMA_KEY.exec(sql)
  if (match === null) return undefined
  const text = unquote(match[1] ?? match[2])
  return text === undefined || text.length === 0 ? undefined : text
}

// A script whose first statement is `PRAGMA key = <value>;` (the value quoted or one word).
const LEADING_KEY = /^\s*PRAGMA\s+(?:main\s*\.\s*)?key\s*=\s*('(?:[^']|'')*'|"(?:[^"]|"")*"|[^\s;'"]+)\s*;([\s\S]*)$/i

/**
 * For `exec()`: a script that starts with a `PRAGMA key` statement, split into the key text and
 * the rest of the script; undefined when it does not.
 */
function leadingPragmaKey(sql) {
  if (!/^\s*PRAGMA/i.test(sql)) return undefined
  const match = LEADING_KEY.exec(sql)
  if (match === null) return undefined
  const text = unquote(match[1])
  return text === undefined || text.length === 0 ? undefined : { text, rest: match[2] }
}

module.exports = { pragmaKeyText, leadingPragmaKey }
