//! Where a write stores the values bound to it, and which of them a dqlite 1.11 node cannot read
//! back (docs/dqlite.md#typed-columns).
//!
//! dqlite types a result's values by the column's declared type: a column declared `DATETIME`,
//! `DATE` or `TIMESTAMP` answers integers as UNIXTIME and text as ISO8601, one declared `BOOLEAN`
//! answers integers as BOOLEAN. Any other value there (a REAL or a BLOB; text too for `BOOLEAN`)
//! fails an assertion, and the node that reads it stops. Such a value is stored without a
//! complaint and stops a node at the first `SELECT` of it, which may be much later. So a session
//! refuses to bind a value to a parameter whose value a write stores in such a column.
//!
//! Which column a parameter lands in is read from the SQL: `INSERT … (columns) VALUES (…)`, an
//! `INSERT` without columns (the table's order), `UPDATE … SET column = …`, and an upsert's
//! `DO UPDATE SET`. A parameter of an `INSERT … SELECT`, or of a form not read here, may land in
//! any column of the table. A parameter of a `WHERE` stores nothing.

use super::statement::{first_statement, numbers, tokens, Token};
use crate::value::Value;

/// How dqlite 1.11 answers a column, by its declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typed {
  /// `DATETIME`, `DATE`, `TIMESTAMP`: integers and text only.
  Time,
  /// `BOOLEAN`: integers only.
  Boolean,
}

impl Typed {
  /// The typing dqlite gives a column declared `declared`, if any.
  pub fn of(declared: &str) -> Option<Typed> {
    let declared = declared.trim();
    if ["DATETIME", "DATE", "TIMESTAMP"]
      .iter()
      .any(|t| declared.eq_ignore_ascii_case(t))
    {
      Some(Typed::Time)
    } else if declared.eq_ignore_ascii_case("BOOLEAN") {
      Some(Typed::Boolean)
    } else {
      None
    }
  }

  /// Whether `value`, stored in such a column, stops the node that reads it. The column's
  /// NUMERIC affinity first turns text that reads as a number into that number, and a REAL
  /// that is a whole number (in range) into an INTEGER, as SQLite does.
  pub fn stops_a_node(self, value: &Value) -> bool {
    match value {
      Value::Null | Value::Integer(_) => false,
      Value::Blob(_) => true,
      Value::Real(f) => !whole(*f),
      Value::Text(text) => match text.trim().parse::<f64>() {
        Ok(f) => !whole(f),
        Err(_) => self == Typed::Boolean,
      },
    }
  }
}

/// Whether NUMERIC affinity stores `f` as an INTEGER.
fn whole(f: f64) -> bool {
  f.fract() == 0.0 && f.abs() < 9.2e18
}

/// Whether `value` could stop a node in some typed column: only such values are looked at.
pub fn may_stop_a_node(value: &Value) -> bool {
  Typed::Time.stops_a_node(value) || Typed::Boolean.stops_a_node(value)
}

/// Where a parameter's value goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lands<'a> {
  /// The column of this name.
  Column(&'a str),
  /// The column at this place in the table's order (`INSERT` without columns).
  Position(usize),
  /// Any column of the table, for all the client knows.
  Anywhere,
}

/// What a write stores: its table, each parameter that lands in a column (by its number, as
/// SQLite numbers them) with where, and each value written in the SQL as a lone literal (a
/// whole expression: `VALUES (1.5)`, `SET at = X'00'`) with where, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stores<'a> {
  pub table: &'a str,
  pub parameters: Vec<(usize, Lands<'a>)>,
  pub literals: Vec<(&'a str, Lands<'a>)>,
}

/// The value a literal token stands for, as far as `Typed::stops_a_node` cares: a number with a
/// fraction or an exponent is a REAL, other numbers INTEGERs, `'…'` text, `X'…'` a BLOB.
pub fn literal_value(literal: &str) -> Value {
  if let Some(text) = literal.strip_prefix('\'') {
    return Value::Text(text.strip_suffix('\'').unwrap_or(text).replace("''", "'"));
  }
  if literal.starts_with(['x', 'X']) {
    return Value::Blob(vec![0]);
  }
  let hex = literal.len() > 1 && literal[..2].eq_ignore_ascii_case("0x");
  if !hex && literal.contains(['.', 'e', 'E']) {
    return literal.parse().map_or(Value::Null, Value::Real);
  }
  Value::Integer(0)
}

/// Whether `sql` may write a literal that `stops_a_node` in some column: a quote, or a number
/// with a fraction or an exponent. Most writes hold neither and are not read further.
pub fn may_hold_unreadable_literal(sql: &str) -> bool {
  let bytes = sql.as_bytes();
  bytes
    .iter()
    .enumerate()
    .any(|(i, &b)| b == b'\'' || (matches!(b, b'.' | b'e' | b'E') && i > 0 && bytes[i - 1].is_ascii_digit()))
}

/// Whether the token at `at` is a literal that is a whole expression: after `(`, `,` or `=`
/// (a unary sign between is allowed), and before `,`, `)`, a word, or the end.
fn lone_literal<'a>(tokens: &[Token<'a>], at: usize) -> Option<&'a str> {
  let Token::Literal(literal) = tokens[at] else {
    return None;
  };
  let starts = |t: Option<&Token<'_>>| matches!(t, Some(Token::Open | Token::Comma | Token::Equals));
  let before = at.checked_sub(1).map(|i| &tokens[i]);
  let signed = before == Some(&Token::Other) && starts(at.checked_sub(2).map(|i| &tokens[i]));
  let ends = matches!(
    tokens.get(at + 1),
    None | Some(Token::Comma | Token::Close | Token::Semicolon | Token::Word(_))
  );
  ((starts(before) || signed) && ends).then_some(literal)
}

/// What the first statement of `sql` stores, if it writes into a table.
pub fn stores(sql: &str) -> Option<Stores<'_>> {
  let tokens = tokens(sql);
  let tokens = &tokens[..first_statement(&tokens)];
  let numbers = numbers(tokens);
  let word = |t: &Token<'_>, k: &str| matches!(t, Token::Word(w) if w.eq_ignore_ascii_case(k));
  // The statement's own keyword: after a WITH, the first at the top level past its tables.
  let mut depth = 0usize;
  let start = tokens.iter().enumerate().position(|(i, t)| {
    match t {
      Token::Open => depth += 1,
      Token::Close => depth = depth.saturating_sub(1),
      _ => {}
    }
    depth == 0 && ["INSERT", "REPLACE", "UPDATE"].iter().any(|k| word(t, k)) && {
      // `REPLACE` is also a function (`replace(x, y, z)`); the statement's is followed by INTO.
      !word(t, "REPLACE") || tokens.get(i + 1).is_some_and(|n| word(n, "INTO"))
    }
  })?;
  let rest = &tokens[start..];
  // A parameter of the WITH before the statement may reach any column through its tables.
  let mut parameters: Vec<(usize, Lands<'_>)> = numbers[..start]
    .iter()
    .flatten()
    .map(|n| (*n, Lands::Anywhere))
    .collect();
  let mut literals = Vec::new();
  let table = if word(&rest[0], "UPDATE") {
    // UPDATE [OR …] name [[AS] alias] SET …
    let at = 1 + usize::from(rest.get(1).is_some_and(|t| word(t, "OR"))) * 2;
    let (table, after) = name(rest, at)?;
    let set = after + rest[after..].iter().position(|t| word(t, "SET"))? + 1;
    assignments(rest, set, &numbers[start..], &mut parameters, &mut literals);
    table
  } else {
    // INSERT [OR …] INTO name …, REPLACE INTO name …
    let into = rest.iter().position(|t| word(t, "INTO"))? + 1;
    let (table, mut at) = name(rest, into)?;
    if rest.get(at).is_some_and(|t| word(t, "AS")) {
      at += 2;
    }
    let mut columns = Vec::new();
    if rest.get(at) == Some(&Token::Open) {
      at += 1;
      while let Some(t) = rest.get(at) {
        at += 1;
        match t {
          Token::Word(c) | Token::Quoted(c) => columns.push(*c),
          Token::Close => break,
          _ => {}
        }
      }
    }
    if rest.get(at).is_some_and(|t| word(t, "VALUES")) {
      at = values(
        rest,
        at + 1,
        &columns,
        &numbers[start..],
        &mut parameters,
        &mut literals,
      );
    }
    // An upsert's assignments; anything else that stores (a SELECT) may store anywhere.
    let mut depth = 0usize;
    while at < rest.len() {
      match rest[at] {
        Token::Open => depth += 1,
        Token::Close => depth = depth.saturating_sub(1),
        ref t if depth == 0 && word(t, "SET") => {
          at = assignments(rest, at + 1, &numbers[start..], &mut parameters, &mut literals);
          continue;
        }
        ref t if depth == 0 && (word(t, "WHERE") || word(t, "RETURNING")) => {
          // Until the next SET (of a further upsert clause), nothing here is stored.
          while at < rest.len() && !word(&rest[at], "SET") {
            at += 1;
          }
          continue;
        }
        _ => {}
      }
      if let Some(n) = numbers[start + at] {
        parameters.push((n, Lands::Anywhere));
      }
      at += 1;
    }
    table
  };
  Some(Stores {
    table,
    parameters,
    literals,
  })
}

/// The name at `at` (`schema.name` gives `name`), and where what follows it starts.
fn name<'a>(tokens: &[Token<'a>], mut at: usize) -> Option<(&'a str, usize)> {
  let mut found = None;
  loop {
    match tokens.get(at) {
      Some(Token::Word(n) | Token::Quoted(n)) => {
        found = Some(*n);
        at += 1;
      }
      _ => return found.map(|n| (n, at)),
    }
    // After a name, only the `.` of `schema.name` is an `Other`.
    if tokens.get(at) != Some(&Token::Other) {
      return found.map(|n| (n, at));
    }
    at += 1;
  }
}

/// `VALUES (…), (…)` from `at`: each parameter of the n-th expression of a row goes to the n-th
/// listed column (or the table's n-th). Returns where the rows end.
fn values<'a>(
  tokens: &[Token<'a>],
  mut at: usize,
  columns: &[&'a str],
  numbers: &[Option<usize>],
  out: &mut Vec<(usize, Lands<'a>)>,
  literals: &mut Vec<(&'a str, Lands<'a>)>,
) -> usize {
  let (mut depth, mut place) = (0usize, 0usize);
  while let Some(t) = tokens.get(at) {
    match t {
      Token::Open => {
        depth += 1;
        if depth == 1 {
          place = 0;
        }
      }
      Token::Close => depth = depth.saturating_sub(1),
      Token::Comma if depth == 1 => place += 1,
      Token::Comma if depth == 0 => {}
      _ if depth == 0 => return at,
      _ => {}
    }
    let into = || match columns.get(place) {
      Some(c) => Lands::Column(c),
      None if columns.is_empty() => Lands::Position(place),
      None => Lands::Anywhere,
    };
    if let Some(n) = numbers[at] {
      out.push((n, into()));
    }
    if let Some(literal) = lone_literal(tokens, at).filter(|_| depth == 1) {
      literals.push((literal, into()));
    }
    at += 1;
  }
  at
}

/// `column = expression, …` from `at`, until the top-level word that ends them: the parameters
/// of each expression go to its column (those of `(a, b) = (…)` anywhere). Returns where they end.
fn assignments<'a>(
  tokens: &[Token<'a>],
  mut at: usize,
  numbers: &[Option<usize>],
  out: &mut Vec<(usize, Lands<'a>)>,
  literals: &mut Vec<(&'a str, Lands<'a>)>,
) -> usize {
  let ends = ["FROM", "WHERE", "RETURNING", "ORDER", "LIMIT", "ON", "DO"];
  let mut depth = 0usize;
  let mut target: Option<&'a str> = None;
  let mut expecting_target = true;
  while let Some(t) = tokens.get(at) {
    match t {
      Token::Word(w) if depth == 0 && ends.iter().any(|e| w.eq_ignore_ascii_case(e)) => return at,
      Token::Open => depth += 1,
      Token::Close => depth = depth.saturating_sub(1),
      Token::Comma if depth == 0 => {
        expecting_target = true;
        target = None;
      }
      Token::Word(c) | Token::Quoted(c) if depth == 0 && expecting_target => {
        target = Some(c);
        expecting_target = false;
      }
      Token::Equals if depth == 0 => expecting_target = false,
      _ => {}
    }
    if let Some(n) = numbers[at] {
      out.push((n, target.map_or(Lands::Anywhere, Lands::Column)));
    }
    if let Some(literal) = lone_literal(tokens, at).filter(|_| depth == 0) {
      literals.push((literal, target.map_or(Lands::Anywhere, Lands::Column)));
    }
    at += 1;
  }
  at
}

#[cfg(test)]
mod tests {
  use super::*;

  fn stored(sql: &str) -> Option<(String, Vec<(usize, Lands<'_>)>)> {
    stores(sql).map(|s| (s.table.to_owned(), s.parameters))
  }

  #[test]
  fn inserts_store_each_value_in_its_column() {
    assert_eq!(
      stored("INSERT INTO main.t (a, \"b c\") VALUES (?, :x), (?3, :x + 1)"),
      Some((
        "t".into(),
        vec![
          (1, Lands::Column("a")),
          (2, Lands::Column("b c")),
          (3, Lands::Column("a")),
          (2, Lands::Column("b c")),
        ]
      ))
    );
    assert_eq!(
      stored("INSERT OR REPLACE INTO t VALUES (?, coalesce(?, 0))"),
      Some(("t".into(), vec![(1, Lands::Position(0)), (2, Lands::Position(1))]))
    );
    assert_eq!(
      stored("REPLACE INTO t(a) SELECT ? FROM u WHERE x = ?"),
      Some(("t".into(), vec![(1, Lands::Anywhere)]))
    );
    assert_eq!(
      stored("INSERT INTO t(a, b) VALUES (?, ?) ON CONFLICT(a) DO UPDATE SET b = ? WHERE b < ?"),
      Some((
        "t".into(),
        vec![
          (1, Lands::Column("a")),
          (2, Lands::Column("b")),
          (3, Lands::Column("b")),
        ]
      ))
    );
  }

  #[test]
  fn updates_store_their_assignments_not_their_where() {
    assert_eq!(
      stored("WITH x AS (SELECT ?) UPDATE OR IGNORE t SET a = ?, b = replace(?, 'x', 'y') WHERE id = ?"),
      Some((
        "t".into(),
        vec![
          (1, Lands::Anywhere),
          (2, Lands::Column("a")),
          (3, Lands::Column("b"))
        ]
      ))
    );
    assert_eq!(
      stored("UPDATE t SET (a, b) = (?, ?)"),
      Some(("t".into(), vec![(1, Lands::Anywhere), (2, Lands::Anywhere)]))
    );
    assert_eq!(stored("DELETE FROM t WHERE a = ?"), None);
    assert_eq!(stored("SELECT replace(?, 'a', 'b')"), None);
  }

  #[test]
  fn lone_literals_are_stored_where_they_stand_and_computed_ones_are_not_read() {
    let literals = |sql| stores(sql).map(|s| s.literals);
    assert_eq!(
      literals("INSERT INTO t(a, b, c, d) VALUES (1.5, 'x''y', X'00', -2e3), (abs(0.5), 1 + 0.5, ?, 7)"),
      Some(vec![
        ("1.5", Lands::Column("a")),
        ("'x''y'", Lands::Column("b")),
        ("X'00'", Lands::Column("c")),
        ("2e3", Lands::Column("d")),
        ("7", Lands::Column("d")),
      ])
    );
    assert_eq!(
      literals("UPDATE t SET a = .5, b = 'no' WHERE c = 0.5"),
      Some(vec![(".5", Lands::Column("a")), ("'no'", Lands::Column("b"))])
    );
    assert_eq!(literal_value("1.5"), Value::Real(1.5));
    assert_eq!(literal_value("2e3"), Value::Real(2000.0));
    assert_eq!(literal_value("0x1E"), Value::Integer(0));
    assert_eq!(literal_value("'it''s'"), Value::Text("it's".into()));
    assert_eq!(literal_value("x'01'"), Value::Blob(vec![0]));
    assert!(may_hold_unreadable_literal("INSERT INTO t VALUES (1.5)"));
    assert!(may_hold_unreadable_literal("UPDATE t SET a = 'x'"));
    assert!(!may_hold_unreadable_literal("INSERT INTO main.t VALUES (?, 2)"));
  }

  #[test]
  fn only_values_that_do_not_read_back_stop_a_node() {
    let time = |v: Value| Typed::Time.stops_a_node(&v);
    let boolean = |v: Value| Typed::Boolean.stops_a_node(&v);
    assert!(!time(Value::Real(1_700_000_000_123.0)), "a Date's milliseconds");
    assert!(time(Value::Real(1.5)));
    assert!(time(Value::Blob(vec![1])));
    assert!(!time(Value::Text("2026-12-03 10:00:00".into())));
    assert!(
      time(Value::Text(" 2.5".into())),
      "text that NUMERIC affinity makes a REAL"
    );
    assert!(boolean(Value::Text("yes".into())));
    assert!(!boolean(Value::Text("1".into())));
    assert!(!boolean(Value::Integer(1)));
    assert_eq!(Typed::of(" datetime"), Some(Typed::Time));
    assert_eq!(
      Typed::of("DATETIME(3)"),
      None,
      "dqlite compares the whole declared type"
    );
  }
}
