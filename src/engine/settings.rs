//! Connection settings that belong to a Database, not to the file.
//!
//! With node-sqlite3 each Database is a connection of its own, so a `PRAGMA foreign_keys = ON`
//! that an ORM sends on its connections changes nothing for the app's other Databases. Here the
//! Databases of a file share the engine's connection, so the engine keeps, per session, the
//! pragmas that change what statements *do*, and puts the session's values on the connection
//! before its statements run (only when they differ from what the connection has, which is
//! almost never once an app's Databases agree). Other pragmas stay per file and the README says
//! so: `journal_mode` and `synchronous` describe the file, `busy_timeout` only concerns the
//! master's own connection, `cache_size` is memory.

use super::connection::Connection;

/// The per-Database pragmas, each SQLite's default (off) until the session sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
  pub foreign_keys: bool,
  pub recursive_triggers: bool,
  pub case_sensitive_like: bool,
  pub query_only: bool,
}

/// Names of the per-Database pragmas, in the order of `Settings`' fields.
const NAMES: [&str; 4] = [
  "foreign_keys",
  "recursive_triggers",
  "case_sensitive_like",
  "query_only",
];

impl Settings {
  fn get(&self, i: usize) -> bool {
    [
      self.foreign_keys,
      self.recursive_triggers,
      self.case_sensitive_like,
      self.query_only,
    ][i]
  }

  fn set(&mut self, i: usize, on: bool) {
    match i {
      0 => self.foreign_keys = on,
      1 => self.recursive_triggers = on,
      2 => self.case_sensitive_like = on,
      _ => self.query_only = on,
    }
  }

  /// Puts `wanted` on the connection, whose settings are `applied`, and records what took.
  /// `foreign_keys` and `recursive_triggers` only change outside a transaction (SQLite ignores
  /// them inside one); they are put on later, and only statements that write depend on them.
  pub fn apply(wanted: Settings, applied: &mut Settings, conn: &Connection) {
    let autocommit = conn.is_autocommit();
    let mut sql = String::new();
    let mut changed = *applied;
    for (i, name) in NAMES.iter().enumerate() {
      if wanted.get(i) == applied.get(i) || (i < 2 && !autocommit) {
        continue;
      }
      sql.push_str(&format!("PRAGMA {name} = {};", u8::from(wanted.get(i))));
      changed.set(i, wanted.get(i));
    }
    if !sql.is_empty() && conn.execute_batch(&sql).is_ok() {
      *applied = changed;
    }
  }

  /// After `sql` ran: what the connection's per-Database pragmas are now. `case_sensitive_like`
  /// cannot be read back, so it is taken from the SQL that set it.
  pub fn read(conn: &Connection, sql: &str, before: Settings) -> Settings {
    let mut now = before;
    for (i, name) in NAMES.iter().enumerate() {
      if i == 2 {
        if let Some(on) = assigned(sql, name) {
          now.set(i, on);
        }
      } else if let Ok(Some(on)) = conn.pragma_flag(name) {
        now.set(i, on);
      }
    }
    now
  }
}

/// `sql` may set a per-Database pragma (a cheap test run after every statement).
pub fn may_set(sql: &str) -> bool {
  sql.len() >= 6
    && sql
      .as_bytes()
      .windows(6)
      .any(|w| w.eq_ignore_ascii_case(b"pragma"))
}

/// The per-Database pragma that `sql`, a single `PRAGMA name = value` statement, sets: what a
/// cluster member replays on a new master so that the session keeps its settings.
pub fn per_database_pragma(sql: &str) -> Option<&'static str> {
  if !super::lexer::first_word(sql).eq_ignore_ascii_case("PRAGMA") {
    return None;
  }
  NAMES.iter().copied().find(|name| assigned(sql, name).is_some())
}

/// The last value `sql` gives pragma `name` (`PRAGMA name = v` or `PRAGMA name(v)`), if any.
fn assigned(sql: &str, name: &str) -> Option<bool> {
  let lower = sql.to_ascii_lowercase();
  let mut found = None;
  let mut rest = lower.as_str();
  while let Some(at) = rest.find(name) {
    let after = rest[at + name.len()..].trim_start();
    let value = after
      .strip_prefix('=')
      .or_else(|| after.strip_prefix('('))
      .map(|v| v.trim_start().trim_start_matches(['\'', '"']));
    if let Some(v) = value {
      let word: String = v.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
      found = match word.as_str() {
        "1" | "on" | "true" | "yes" => Some(true),
        "0" | "off" | "false" | "no" => Some(false),
        _ => found,
      };
    }
    rest = &rest[at + name.len()..];
  }
  found
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn reads_the_value_a_pragma_assigns() {
    assert_eq!(
      assigned("PRAGMA case_sensitive_like = ON", "case_sensitive_like"),
      Some(true)
    );
    assert_eq!(
      assigned("pragma CASE_SENSITIVE_LIKE(0);", "case_sensitive_like"),
      Some(false)
    );
    assert_eq!(
      assigned("PRAGMA case_sensitive_like='yes'", "case_sensitive_like"),
      Some(true)
    );
    assert_eq!(assigned("PRAGMA foreign_keys = 1", "case_sensitive_like"), None);
    assert!(may_set("  PRAGMA foreign_keys=ON"));
    assert!(!may_set("SELECT 1"));
    assert_eq!(
      per_database_pragma("PRAGMA foreign_keys = ON"),
      Some("foreign_keys")
    );
    assert_eq!(per_database_pragma("PRAGMA foreign_keys"), None);
    assert_eq!(per_database_pragma("SELECT 'PRAGMA foreign_keys = 1'"), None);
  }
}
