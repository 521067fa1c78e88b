//! What the engine must know about a statement before SQLite compiles it: whether it is a plain
//! query (it may share a read group), whether it opens a transaction, whether it is the whole
//! `ROLLBACK` an aborted session may run, and whether a `PRAGMA` reads the file. Each answer is
//! read from the leading words (`lexer`), so a comment in front of a statement never changes it.

use super::lexer;

/// Whether `sql` is a `ROLLBACK` of the whole transaction (not `ROLLBACK TO` a savepoint): the
/// one statement an aborted session may run (docs/sessions.md#aborted-sessions).
pub fn is_rollback(sql: &str) -> bool {
  let (words, rest) = lexer::leading_words(sql);
  let whole = match words.as_slice() {
    [first] => first.eq_ignore_ascii_case("ROLLBACK"),
    [first, second] => first.eq_ignore_ascii_case("ROLLBACK") && second.eq_ignore_ascii_case("TRANSACTION"),
    _ => false,
  };
  whole && lexer::skip_blanks(rest.strip_prefix(';').unwrap_or(rest)).is_empty()
}

/// Whether `sql` opens a transaction (`BEGIN …` or a `SAVEPOINT` outside one).
pub fn begins_transaction(sql: &str) -> bool {
  let word = lexer::first_word(sql);
  word.eq_ignore_ascii_case("BEGIN") || word.eq_ignore_ascii_case("SAVEPOINT")
}

/// SQL that starts with `SELECT`, `WITH` or `VALUES` (after blanks and comments): with a
/// read-only statement that returns columns, a query and nothing else (no pragma, no BEGIN).
pub fn is_query(sql: &str) -> bool {
  let word = lexer::first_word(sql);
  ["SELECT", "WITH", "VALUES"]
    .iter()
    .any(|w| word.eq_ignore_ascii_case(w))
}

/// A `PRAGMA` that SQLite runs without reading the database (none of them reads the schema),
/// so a connection without the right key runs it too.
pub(super) fn is_keyless_pragma(sql: &str) -> bool {
  const KEYLESS: &[&str] = &[
    "foreign_keys",
    "busy_timeout",
    "recursive_triggers",
    "case_sensitive_like",
    "defer_foreign_keys",
    "legacy_alter_table",
    "automatic_index",
    "query_only",
    "reverse_unordered_selects",
    "trusted_schema",
    "ignore_check_constraints",
    "read_uncommitted",
    "short_column_names",
    "full_column_names",
    "count_changes",
    "threads",
    "soft_heap_limit",
    "hard_heap_limit",
  ];
  let words: Vec<&str> = sql
    .split(|c: char| c.is_whitespace() || c == '=' || c == '(' || c == ';')
    .filter(|w| !w.is_empty())
    .collect();
  let [first, name, ..] = words.as_slice() else {
    return false;
  };
  if !first.eq_ignore_ascii_case("pragma") {
    return false;
  }
  let name = name.strip_prefix("main.").unwrap_or(name).to_ascii_lowercase();
  KEYLESS.contains(&name.as_str()) || name.starts_with("cipher_")
}
