//! What the client must know of a statement before it sends it to dqlite
//! (docs/dqlite.md#statements): whether it yields rows, whether it is a write that yields rows,
//! whether more statements follow it, and how its parameters are numbered.
//!
//! dqlite 1.11 runs a statement only through the request of its kind: a statement without
//! result columns sent as a query is refused and *not run*, and one with rows sent as an
//! execution fails after its first row. A write with `RETURNING` is worse: either way it leaves a
//! write pending, and the next write aborts the leader. And only positions exist on the wire,
//! so names must be numbered here, exactly as SQLite numbers them. All of this is read from the
//! SQL's tokens, skipping strings, quoted names and comments, since SQLite's own parser is in
//! the server.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::value::{Bind, ParamKey, Params, Value};

/// How a statement must be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
  /// It yields rows: QUERY / QUERY_SQL.
  Rows,
  /// It yields none: EXEC / EXEC_SQL.
  NoRows,
  /// A write that yields rows (`INSERT … RETURNING`): dqlite before 1.18.3 mishandles it in a
  /// way that aborts the leader, so it is refused.
  WriteWithRows,
}

/// One token of SQL, as far as the client cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token<'a> {
  Word(&'a str),
  /// A name in `"…"`, `` `…` `` or `[…]`, without its quotes.
  Quoted(&'a str),
  /// `?`, `?NNN`, `:name`, `@name`, `$name`, as written.
  Parameter(&'a str),
  Open,
  Close,
  Semicolon,
  Equals,
  Comma,
  /// A number, a string (`'…'`) or a blob (`X'…'`), as written.
  Literal(&'a str),
  Other,
}

/// The tokens of `sql`; comments come out not at all, operators and the rest as `Other`.
pub(super) fn tokens(sql: &str) -> Vec<Token<'_>> {
  scan(sql).0
}

/// The tokens of `sql`, and where each `;` token ends (a byte offset), in order.
fn scan(sql: &str) -> (Vec<Token<'_>>, Vec<usize>) {
  let bytes = sql.as_bytes();
  let mut out = Vec::new();
  let mut semicolons = Vec::new();
  let mut i = 0;
  let name_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
  while i < bytes.len() {
    let b = bytes[i];
    let start = i;
    match b {
      b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => i += 1,
      b'-' if bytes.get(i + 1) == Some(&b'-') => {
        while i < bytes.len() && bytes[i] != b'\n' {
          i += 1;
        }
      }
      b'/' if bytes.get(i + 1) == Some(&b'*') => {
        i += 2;
        while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
          i += 1;
        }
        i = (i + 2).min(bytes.len());
      }
      b'\'' | b'"' | b'`' | b'[' => {
        let close = if b == b'[' { b']' } else { b };
        i += 1;
        loop {
          match bytes.get(i) {
            None => break,
            // A doubled quote is one quote inside ('it''s'); `]` has no escape.
            Some(&c) if c == close && close != b']' && bytes.get(i + 1) == Some(&close) => i += 2,
            Some(&c) if c == close => {
              i += 1;
              break;
            }
            Some(_) => i += 1,
          }
        }
        out.push(match b {
          b'\'' => Token::Literal(&sql[start..i]),
          _ => Token::Quoted(sql.get(start + 1..i.saturating_sub(1)).unwrap_or("")),
        });
      }
      b'(' | b')' | b';' | b'=' | b',' => {
        i += 1;
        if b == b';' {
          semicolons.push(i);
        }
        out.push(match b {
          b'(' => Token::Open,
          b')' => Token::Close,
          b';' => Token::Semicolon,
          b',' => Token::Comma,
          _ => Token::Equals,
        });
      }
      b'?' => {
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
          i += 1;
        }
        out.push(Token::Parameter(&sql[start..i]));
      }
      b':' | b'@' | b'$' if bytes.get(i + 1).is_some_and(|&c| name_byte(c)) => {
        i += 1;
        while i < bytes.len() && name_byte(bytes[i]) {
          i += 1;
        }
        out.push(Token::Parameter(&sql[start..i]));
      }
      _ if b.is_ascii_digit() || (b == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) => {
        // A number, with its fraction, exponent (and its sign) or hex digits: never a word.
        while i < bytes.len()
          && (name_byte(bytes[i])
            || bytes[i] == b'.'
            || ((bytes[i] == b'+' || bytes[i] == b'-')
              && matches!(bytes[i - 1], b'e' | b'E')
              && !sql[start..i].starts_with("0x")))
        {
          i += 1;
        }
        out.push(Token::Literal(&sql[start..i]));
      }
      b'x' | b'X' if bytes.get(i + 1) == Some(&b'\'') => {
        // A blob: X'0102'.
        i += 2;
        while i < bytes.len() && bytes[i] != b'\'' {
          i += 1;
        }
        i = (i + 1).min(bytes.len());
        out.push(Token::Literal(&sql[start..i]));
      }
      _ if name_byte(b) => {
        while i < bytes.len() && name_byte(bytes[i]) {
          i += 1;
        }
        out.push(Token::Word(&sql[start..i]));
      }
      _ => {
        // Operators and the rest; a multi-byte character is skipped whole.
        i += sql[i..].chars().next().map_or(1, char::len_utf8);
        out.push(Token::Other);
      }
    }
  }
  (out, semicolons)
}

/// How many tokens the first statement takes, its `;` included. A `;` ends it only outside
/// parentheses, `CASE … END`, and the `BEGIN … END` body of a `CREATE TRIGGER`.
pub(super) fn first_statement(tokens: &[Token<'_>]) -> usize {
  let is = |t: &Token<'_>, k: &str| matches!(t, Token::Word(w) if w.eq_ignore_ascii_case(k));
  let trigger =
    tokens.first().is_some_and(|t| is(t, "CREATE")) && tokens.iter().take(4).any(|t| is(t, "TRIGGER"));
  let mut depth = 0usize;
  for (i, token) in tokens.iter().enumerate() {
    match token {
      Token::Open => depth += 1,
      Token::Close => depth = depth.saturating_sub(1),
      t if is(t, "CASE") || (trigger && is(t, "BEGIN")) => depth += 1,
      t if is(t, "END") => depth = depth.saturating_sub(1),
      Token::Semicolon if depth == 0 => return i + 1,
      _ => {}
    }
  }
  tokens.len()
}

/// The words of the first statement that stand outside any parentheses.
fn top_level_words<'a>(tokens: &[Token<'a>]) -> Vec<&'a str> {
  let mut depth = 0usize;
  let mut words = Vec::new();
  for token in &tokens[..first_statement(tokens)] {
    match token {
      Token::Open => depth += 1,
      Token::Close => depth = depth.saturating_sub(1),
      Token::Word(w) if depth == 0 => words.push(*w),
      _ => {}
    }
  }
  words
}

/// How the first statement of `sql` must be sent.
pub fn kind(sql: &str) -> Kind {
  read(sql).kind
}

/// Whether any statement of the script `sql` is a write that yields rows (`exec()` sends the
/// whole script: one such statement anywhere in it would stop a 1.11 leader).
pub fn writes_with_rows_anywhere(sql: &str) -> bool {
  let tokens = tokens(sql);
  let mut rest = &tokens[..];
  while !rest.is_empty() {
    if kind_of(rest) == Kind::WriteWithRows {
      return true;
    }
    rest = &rest[first_statement(rest)..];
  }
  false
}

/// The kind of the first statement of `tokens`.
fn kind_of(tokens: &[Token<'_>]) -> Kind {
  let words = top_level_words(tokens);
  let is = |w: &str, k: &str| w.eq_ignore_ascii_case(k);
  let Some(first) = words.first() else {
    return Kind::NoRows;
  };
  // After WITH, the statement is the first of these words outside the common table expressions
  // (whose bodies are in parentheses).
  let main = if is(first, "WITH") {
    words
      .iter()
      .copied()
      .find(|w| {
        ["SELECT", "VALUES", "INSERT", "UPDATE", "DELETE", "REPLACE"]
          .iter()
          .any(|k| is(w, k))
      })
      .unwrap_or(first)
  } else {
    first
  };
  if ["SELECT", "VALUES", "EXPLAIN"].iter().any(|k| is(main, k)) {
    return Kind::Rows;
  }
  if is(main, "PRAGMA") {
    // `PRAGMA name` and `PRAGMA name(arg)` report; `PRAGMA name = value` sets.
    let sets = tokens[..first_statement(tokens)].contains(&Token::Equals);
    return if sets { Kind::NoRows } else { Kind::Rows };
  }
  let writes = ["INSERT", "UPDATE", "DELETE", "REPLACE"]
    .iter()
    .any(|k| is(main, k));
  if writes && words.iter().any(|w| is(w, "RETURNING")) {
    return Kind::WriteWithRows;
  }
  Kind::NoRows
}

/// One statement of a script: its own text, with the `;` that ends it, and the text SQLite
/// reports for it, which also holds the empty statements (`;` alone) before it, as
/// `sqlite3_prepare` skips those into the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part<'a> {
  pub own: &'a str,
  pub reported: &'a str,
}

/// The statements of the script `sql`, in order.
pub fn statements(sql: &str) -> Vec<Part<'_>> {
  let (tokens, semicolons) = scan(sql);
  let mut out = Vec::new();
  let (mut rest, mut start, mut own, mut seen) = (&tokens[..], 0, 0, 0);
  while !rest.is_empty() {
    let n = first_statement(rest);
    let statement = &rest[..n];
    seen += statement.iter().filter(|t| **t == Token::Semicolon).count();
    let end = match statement.last() {
      Some(Token::Semicolon) => semicolons[seen - 1],
      _ => sql.len(),
    };
    if statement.iter().any(|t| *t != Token::Semicolon) {
      out.push(Part {
        own: &sql[own..end],
        reported: &sql[start..end],
      });
      start = end;
    }
    own = end;
    rest = &rest[n..];
  }
  out
}

/// Whether anything but blanks and comments follows the first statement of `sql`.
pub fn has_tail(sql: &str) -> bool {
  read(sql).tail
}

/// What the session reads of a statement's SQL to send it and to follow its transaction.
#[derive(Debug)]
pub struct Reading {
  pub kind: Kind,
  /// Whether anything but blanks and comments follows the first statement.
  pub tail: bool,
  pub layout: Parameters,
  /// The first statement's words outside parentheses, as written, in order (`BEGIN`,
  /// `IMMEDIATE`, …).
  pub words: Vec<Box<str>>,
}

/// At most this many readings are kept per thread, of texts up to `READ_AGAIN_AT_MOST` bytes:
/// an app runs the same few statements again and again, and a script or a statement with its
/// values written into it is read once anyway.
const READINGS_KEPT: usize = 256;
const READ_AGAIN_AT_MOST: usize = 1024;

thread_local! {
  static READINGS: RefCell<HashMap<Box<str>, Rc<Reading>>> = RefCell::new(HashMap::new());
}

/// The reading of `sql`, kept for the next time the same text comes: the session reads each
/// statement several times on its way (its kind, its tail, its parameters, whether it begins a
/// transaction), and reading it from its tokens each time was a twentieth of the client's time
/// per point read.
pub fn read(sql: &str) -> Rc<Reading> {
  if sql.len() > READ_AGAIN_AT_MOST {
    return Rc::new(reading(sql));
  }
  READINGS.with_borrow_mut(|kept| {
    if let Some(reading) = kept.get(sql) {
      return Rc::clone(reading);
    }
    if kept.len() >= READINGS_KEPT {
      kept.clear();
    }
    let fresh = Rc::new(reading(sql));
    kept.insert(sql.into(), Rc::clone(&fresh));
    fresh
  })
}

fn reading(sql: &str) -> Reading {
  let tokens = tokens(sql);
  let first = &tokens[..first_statement(&tokens)];
  Reading {
    kind: kind_of(&tokens),
    tail: tokens[first.len()..].iter().any(|t| *t != Token::Semicolon),
    layout: layout_of(first),
    words: top_level_words(&tokens).into_iter().map(Box::from).collect(),
  }
}

/// The parameters of the first statement of `sql`, numbered as SQLite numbers them: `?` takes
/// the next number, `?NNN` is number NNN, and a name takes the next number the first time it
/// appears and the same number after.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parameters {
  /// The highest number: how many values the statement takes.
  pub count: usize,
  /// Each name with its number, prefix included (`:id`).
  pub names: Vec<(String, usize)>,
}

pub fn parameters(sql: &str) -> Parameters {
  read(sql).layout.clone()
}

/// The parameters of the statement of `tokens`.
fn layout_of(tokens: &[Token<'_>]) -> Parameters {
  let mut layout = Parameters::default();
  for (token, number) in tokens.iter().zip(numbers(tokens)) {
    let Some(number) = number else { continue };
    layout.count = layout.count.max(number);
    if let Token::Parameter(name) = token {
      if !name.starts_with('?') && !layout.names.iter().any(|(n, _)| n == name) {
        layout.names.push(((*name).to_owned(), number));
      }
    }
  }
  layout
}

/// Each token's parameter number, if it is a parameter: `?` takes the next number, `?NNN` is
/// NNN, and a name takes the next number when it first appears and the same number after.
pub(super) fn numbers(tokens: &[Token<'_>]) -> Vec<Option<usize>> {
  let (mut count, mut names) = (0usize, Vec::<(&str, usize)>::new());
  tokens
    .iter()
    .map(|t| match *t {
      Token::Parameter("?") => {
        count += 1;
        Some(count)
      }
      Token::Parameter(p) if p.starts_with('?') => {
        let n = p[1..].parse::<usize>().ok()?;
        count = count.max(n);
        Some(n)
      }
      Token::Parameter(name) => match names.iter().find(|(n, _)| *n == name) {
        Some((_, i)) => Some(*i),
        None => {
          count += 1;
          names.push((name, count));
          Some(count)
        }
      },
      _ => None,
    })
    .collect()
}

/// Why values cannot be bound: what SQLite itself would answer (`SQLITE_RANGE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfRange(pub String);

/// The values to send for `params`, by position, as SQLite would bind them: positions start at
/// 1, a name must name a parameter (prefix included), an unbound parameter is NULL.
pub fn bind(params: &Params, layout: &Parameters) -> Result<Vec<Value>, OutOfRange> {
  let mut values = vec![Value::Null; layout.count];
  let mut put = |index: usize, bind: &Bind| -> Result<(), OutOfRange> {
    // A value that binds nothing (`undefined`) is never out of range, as in node-sqlite3: knex
    // runs `BEGIN;` with one.
    let Bind::Value(value) = bind else {
      return Ok(());
    };
    if index == 0 || index > layout.count {
      return Err(OutOfRange(format!(
        "column index out of range: parameter {index} of a statement with {}",
        layout.count
      )));
    }
    values[index - 1] = value.clone();
    Ok(())
  };
  match params {
    Params::None => {}
    Params::Positional(binds) => {
      for (i, bind) in binds.iter().enumerate() {
        put(i + 1, bind)?;
      }
    }
    Params::Named(pairs) => {
      for (key, bind) in pairs {
        let index = match key {
          ParamKey::Index(i) => usize::try_from(*i).unwrap_or(0),
          ParamKey::Name(name) => layout
            .names
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, i)| *i)
            .ok_or_else(|| {
              OutOfRange(format!(
                "column index out of range: the statement has no parameter {name}"
              ))
            })?,
        };
        put(index, bind)?;
      }
    }
  }
  Ok(values)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn statements_are_sent_by_their_kind() {
    for sql in [
      "SELECT 1",
      "  -- a comment\n select * from t",
      "/* x */ VALUES (1), (2)",
      "EXPLAIN QUERY PLAN SELECT 1",
      "PRAGMA table_info(t)",
      "PRAGMA user_version",
      "PRAGMA table_info('a=b')",
      "WITH x(n) AS (SELECT 1) SELECT n FROM x",
      "WITH RECURSIVE c(n) AS (VALUES(1) UNION ALL SELECT n+1 FROM c WHERE n < 3) SELECT * FROM c",
    ] {
      assert_eq!(kind(sql), Kind::Rows, "{sql}");
    }
    for sql in [
      "INSERT INTO t VALUES (1)",
      "CREATE TABLE t(x)",
      "BEGIN",
      "PRAGMA user_version = 3",
      "WITH x(n) AS (SELECT 1) INSERT INTO t SELECT n FROM x",
      "UPDATE t SET a = 'returning'",
      "INSERT INTO \"returning\" VALUES (1)",
      "",
      "-- nothing",
    ] {
      assert_eq!(kind(sql), Kind::NoRows, "{sql}");
    }
    for sql in [
      "INSERT INTO t VALUES (1) RETURNING id",
      "delete from t where x = 1 returning *",
      "WITH x AS (SELECT 1) UPDATE t SET a = 1 RETURNING a",
      "REPLACE INTO t VALUES (2) /* c */ RETURNING rowid",
    ] {
      assert_eq!(kind(sql), Kind::WriteWithRows, "{sql}");
    }
  }

  /// The kinds above agree with what SQLite itself says of the statements (result columns, and
  /// whether it writes), where it can compile them without the server's schema.
  #[test]
  fn kinds_match_sqlites_result_columns() {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, a, x)")
      .unwrap();
    for sql in [
      "SELECT 1",
      "VALUES (1), (2)",
      "PRAGMA table_info(t)",
      "PRAGMA user_version = 3",
      "WITH x(n) AS (SELECT 1) SELECT n FROM x",
      "WITH x(n) AS (SELECT 1) INSERT INTO t(a) SELECT n FROM x",
      "INSERT INTO t(a) VALUES (1) RETURNING id",
      "UPDATE t SET a = 'returning'",
      "DELETE FROM t WHERE x = 1 RETURNING *",
      "CREATE TABLE u(x)",
    ] {
      let stmt = db.prepare(sql).unwrap();
      let rows = stmt.column_count() > 0;
      let expected = match (rows, stmt.readonly()) {
        (false, _) => Kind::NoRows,
        (true, true) => Kind::Rows,
        (true, false) => Kind::WriteWithRows,
      };
      assert_eq!(kind(sql), expected, "{sql}");
    }
  }

  #[test]
  fn a_write_with_rows_is_found_in_any_statement_of_a_script() {
    assert!(writes_with_rows_anywhere(
      "CREATE TABLE t(x); INSERT INTO t VALUES (1) RETURNING x; SELECT 1"
    ));
    assert!(!writes_with_rows_anywhere(
      "CREATE TABLE t(x); INSERT INTO t VALUES ('returning'); SELECT 1"
    ));
    assert!(!writes_with_rows_anywhere(
      "CREATE TRIGGER r AFTER INSERT ON t BEGIN UPDATE t SET x = 1; END; SELECT 1"
    ));
  }

  #[test]
  fn a_tail_is_a_second_statement_not_a_semicolon_in_a_string_or_a_comment() {
    assert!(has_tail("SELECT 1; SELECT 2"));
    assert!(!has_tail("SELECT 1;"));
    assert!(!has_tail("SELECT ';' ; -- the end"));
    assert!(!has_tail("SELECT 1 /* ; SELECT 2 */"));
    assert!(has_tail(
      "CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END; SELECT 2"
    ));
  }

  #[test]
  fn a_kept_reading_is_the_reading_of_its_text() {
    let texts: Vec<String> = (0..READINGS_KEPT + 10)
      .map(|i| match i % 3 {
        0 => format!("SELECT * FROM t{i} WHERE a = ? AND b = :b"),
        1 => format!("INSERT INTO t{i} VALUES (?1, ?2) RETURNING a"),
        _ => format!("BEGIN; SELECT {i}"),
      })
      .chain([format!("SELECT '{}', ?", "x".repeat(READ_AGAIN_AT_MOST))])
      .collect();
    // Twice over: the second pass meets kept readings, and those kept before the store was
    // emptied read afresh.
    for _ in 0..2 {
      for text in &texts {
        let (kept, fresh) = (read(text), reading(text));
        assert_eq!(kept.kind, fresh.kind, "{text}");
        assert_eq!(kept.tail, fresh.tail, "{text}");
        assert_eq!(kept.layout, fresh.layout, "{text}");
        assert_eq!(kept.words, fresh.words, "{text}");
      }
    }
    assert!(READINGS.with_borrow(|kept| kept.len() <= READINGS_KEPT));
    let long = texts.last().expect("the long text");
    assert!(READINGS.with_borrow(|kept| !kept.contains_key(long.as_str())));
    assert_eq!(read(long).layout.count, 1);
  }

  #[test]
  fn parameters_are_numbered_as_sqlite_numbers_them() {
    let layout = parameters("SELECT ?, :a, ?5, @b, :a, ?, $c, ':x', \"?\" -- ?");
    assert_eq!(layout.count, 8);
    assert_eq!(
      layout.names,
      vec![(":a".into(), 2), ("@b".into(), 6), ("$c".into(), 8)]
    );
    assert_eq!(parameters("SELECT 1").count, 0);
    assert_eq!(
      parameters("SELECT ?; SELECT ?, ?").count,
      1,
      "the first statement only"
    );
  }

  /// The numbering above, checked against SQLite's own (`sqlite3_bind_parameter_count` and
  /// `_name`), for statements the tokenizer could trip on.
  #[test]
  fn parameter_numbers_match_sqlites() {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch("CREATE TABLE t(a, b, c)").unwrap();
    for sql in [
      "SELECT ?, :a, ?5, @b, :a, ?, $c, ':x', \"?\" -- ?",
      "SELECT * FROM t WHERE a = :a AND b = ?2 AND c = :a /* :z */",
      "INSERT INTO t VALUES (?3, ?, ?)",
      "SELECT '?' || ? AS [?], ? AS `?`",
      "UPDATE t SET a = $x, b = @y WHERE c = $x",
      "SELECT :é, :é, ?",
      "SELECT 1e5, 0x1F, ?",
    ] {
      let stmt = db.prepare(sql).unwrap();
      let count = stmt.parameter_count();
      let names: Vec<(String, usize)> = (1..=count)
        .filter_map(|i| {
          stmt
            .parameter_name(i)
            .filter(|n| !n.starts_with('?'))
            .map(|n| (n.to_owned(), i))
        })
        .collect();
      assert_eq!(parameters(sql), Parameters { count, names }, "{sql}");
    }
  }

  #[test]
  fn a_script_splits_into_its_statements() {
    let script = "CREATE TABLE t(x); ; INSERT INTO t VALUES (';'); -- a comment\n\
      CREATE TRIGGER r AFTER INSERT ON t BEGIN DELETE FROM t; END; SELECT x FROM t";
    let parts = statements(script);
    assert_eq!(
      parts.iter().map(|p| p.reported).collect::<Vec<_>>(),
      vec![
        "CREATE TABLE t(x);",
        " ; INSERT INTO t VALUES (';');",
        " -- a comment\nCREATE TRIGGER r AFTER INSERT ON t BEGIN DELETE FROM t; END;",
        " SELECT x FROM t",
      ]
    );
    assert_eq!(parts[1].own, " INSERT INTO t VALUES (';');");
    assert!(parts.iter().all(|p| !has_tail(p.own)), "each sends alone");
    assert!(statements(" ; -- nothing\n").is_empty());
  }

  #[test]
  fn binding_follows_sqlite_positions_names_and_errors() {
    let layout = parameters("SELECT :a, ?, :b");
    let int = |i| Bind::Value(Value::Integer(i));
    let named = Params::Named(vec![
      (ParamKey::Name(":b".into()), int(3)),
      (ParamKey::Name(":a".into()), int(1)),
    ]);
    assert_eq!(
      bind(&named, &layout),
      Ok(vec![Value::Integer(1), Value::Null, Value::Integer(3)])
    );
    let positional = Params::Positional(vec![int(1), Bind::Skip, int(3)]);
    assert_eq!(
      bind(&positional, &layout),
      Ok(vec![Value::Integer(1), Value::Null, Value::Integer(3)])
    );
    assert!(bind(&Params::Positional(vec![int(1); 4]), &layout).is_err());
    assert!(bind(
      &Params::Named(vec![(ParamKey::Name("a".into()), int(1))]),
      &layout
    )
    .is_err());
    assert!(bind(&Params::Named(vec![(ParamKey::Index(0), int(1))]), &layout).is_err());
    // `undefined` binds nothing, so it is out of range nowhere (knex's `run('BEGIN;', undefined)`).
    assert_eq!(
      bind(&Params::Positional(vec![Bind::Skip]), &parameters("BEGIN;")),
      Ok(vec![])
    );
  }
}
