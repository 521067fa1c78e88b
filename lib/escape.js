'use strict'
// `escape(s)`: the text with every single quote doubled, for the rare SQL that must be built
// from strings. No surrounding quotes are added (as in 1.x). 1.x doubled only the first quote.

function escape(value) {
  return String(value).replace(/'/g, "''")
}

module.exports = { escape, sanitize: escape }
