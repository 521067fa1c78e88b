//! What the write connection holds that a read connection would not see: its connection-local
//! state (docs/sessions.md#read-connections). Every Database of a file shares the write
//! connection, so a `TEMP` table one of them creates (which may hide a main table of the same
//! name), a database it `ATTACH`es, an extension it loads, a limit it sets, or a pragma that
//! changes what reads return (`reverse_unordered_selects`, `full_column_names`…) is seen by all
//! of them, as it was before read connections existed. While any of that is there, every read
//! runs on the write connection, so that it keeps meaning what it meant.
//!
//! The per-Database pragmas (`settings.rs`) are not part of it: they are put on whichever
//! connection runs a Database's statement.
//!
//! Finding out costs a query, so it is done only after SQL that may have changed it: SQL naming
//! `temp`, `attach`, `detach`, `drop` or `pragma`.

use super::connection::Connection;
use super::lexer;

/// Pragmas whose assignment changes nothing a read on another connection returns: they describe
/// the file (`journal_mode`, `user_version`…), only the writer (`synchronous`, `cache_size`…),
/// or are carried per Database (`settings.rs`). Pragmas that take an argument to report
/// something (`table_info(t)`) are here too. Any other assigned pragma sends reads to the writer.
const HARMLESS_PRAGMAS: &[&str] = &[
  "analysis_limit",
  "application_id",
  "auto_vacuum",
  "automatic_index",
  "busy_timeout",
  "cache_size",
  "cache_spill",
  "case_sensitive_like",
  "cell_size_check",
  "checkpoint_fullfsync",
  "defer_foreign_keys",
  "foreign_key_check",
  "foreign_key_list",
  "foreign_keys",
  "fullfsync",
  "hard_heap_limit",
  "hexkey",
  "hexrekey",
  "ignore_check_constraints",
  "incremental_vacuum",
  "index_info",
  "index_list",
  "index_xinfo",
  "integrity_check",
  "journal_mode",
  "journal_size_limit",
  "key",
  "max_page_count",
  "mmap_size",
  "optimize",
  "page_size",
  "query_only",
  "quick_check",
  "recursive_triggers",
  "rekey",
  "secure_delete",
  "soft_heap_limit",
  "synchronous",
  "table_info",
  "table_list",
  "table_xinfo",
  "temp_store",
  "textkey",
  "threads",
  "user_version",
  "wal_autocheckpoint",
  "wal_checkpoint",
];

/// The write connection's local state, as far as reads are concerned.
#[derive(Default)]
pub(super) struct LocalState {
  /// `TEMP` objects or attached databases exist (checked again after SQL that may change it).
  schema: bool,
  /// Something that stays for the connection's life: an extension, a limit, another pragma.
  lasting: bool,
  /// The connection is in WAL mode; `None` until asked after a change.
  wal: Option<bool>,
}

impl LocalState {
  /// Whether reads may run on read connections: WAL mode, and nothing local to the writer.
  pub fn allows_readers(&mut self, conn: &mut Connection) -> bool {
    if self.schema || self.lasting {
      return false;
    }
    *self.wal.get_or_insert_with(|| {
      conn.unobserved(|c| {
        c.pragma_text("PRAGMA journal_mode")
          .is_ok_and(|mode| mode.as_deref() == Some("wal"))
      })
    })
  }

  /// `sql` ran on the write connection: notes what it may have changed. The caller asked
  /// `may_change` first.
  pub fn ran(&mut self, conn: &mut Connection, sql: &str) {
    let lower = sql.to_ascii_lowercase();
    if lower.contains("pragma") {
      self.wal = None;
      if assigns_unknown_pragma(&lower) {
        self.lasting = true;
      }
    }
    if ["temp", "attach", "detach", "drop"]
      .iter()
      .any(|w| lower.contains(w))
    {
      self.schema = conn.unobserved(has_local_schema);
    }
  }

  /// An extension was loaded or a limit set: reads stay on the write connection from now on.
  pub fn changed_for_good(&mut self) {
    self.lasting = true;
  }
}

/// Whether `sql` may change the connection's local state (a cheap test run for every statement).
pub fn may_change(sql: &str) -> bool {
  const WORDS: [&[u8]; 5] = [b"pragma", b"temp", b"attach", b"detach", b"drop"];
  let bytes = sql.as_bytes();
  WORDS
    .iter()
    .any(|word| bytes.windows(word.len()).any(|w| w.eq_ignore_ascii_case(word)))
}

/// Whether the connection has `TEMP` objects or attached databases. If it cannot tell, it
/// answers yes: a read on the write connection is always right.
fn has_local_schema(conn: &Connection) -> bool {
  const SQL: &str = "SELECT CASE WHEN (SELECT count(*) FROM temp.sqlite_master) \
                     + (SELECT count(*) FROM pragma_database_list WHERE name NOT IN ('main', 'temp')) \
                     = 0 THEN 'none' ELSE 'some' END";
  !matches!(conn.pragma_text(SQL), Ok(Some(n)) if n == "none")
}

/// Whether lower-case `sql` assigns a pragma (`PRAGMA x = v`, `PRAGMA x(v)`) that is not in
/// `HARMLESS_PRAGMAS`.
fn assigns_unknown_pragma(sql: &str) -> bool {
  sql.match_indices("pragma").any(|(at, _)| {
    let rest = lexer::skip_blanks(&sql[at + "pragma".len()..]);
    let name_len = rest
      .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
      .unwrap_or(rest.len());
    let (name, after) = rest.split_at(name_len);
    let name = name.rsplit('.').next().unwrap_or(name);
    let assigns = lexer::skip_blanks(after).starts_with(['=', '(']);
    assigns && !name.is_empty() && !name.starts_with("cipher_") && !HARMLESS_PRAGMAS.contains(&name)
  })
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn only_pragmas_outside_the_list_count() {
    assert!(!assigns_unknown_pragma(
      "pragma journal_mode=wal; pragma synchronous = normal"
    ));
    assert!(!assigns_unknown_pragma("pragma main.user_version = 3"));
    assert!(!assigns_unknown_pragma("pragma table_info(t)"));
    assert!(!assigns_unknown_pragma("pragma cipher_memory_security = off"));
    assert!(
      !assigns_unknown_pragma("pragma reverse_unordered_selects"),
      "a read, not an assignment"
    );
    assert!(assigns_unknown_pragma("pragma reverse_unordered_selects = 1"));
    assert!(assigns_unknown_pragma("select 1; pragma full_column_names(1)"));
    assert!(assigns_unknown_pragma("pragma locking_mode = exclusive"));
  }

  #[test]
  fn temp_objects_and_attached_databases_are_local() {
    let mut conn = Connection::memory();
    let mut state = LocalState::default();
    conn.execute_batch("CREATE TABLE t(x)").unwrap();
    state.ran(&mut conn, "CREATE TABLE t(x)");
    assert!(!state.schema);
    conn.execute_batch("CREATE TEMP TABLE t(x)").unwrap();
    state.ran(&mut conn, "create temp table t(x)");
    assert!(state.schema, "a temp table");
    conn.execute_batch("DROP TABLE temp.t").unwrap();
    state.ran(&mut conn, "drop table temp.t");
    assert!(!state.schema, "dropped again");
    conn.execute_batch("ATTACH ':memory:' AS other").unwrap();
    state.ran(&mut conn, "attach ':memory:' as other");
    assert!(state.schema, "an attached database");
    conn.execute_batch("DETACH other").unwrap();
    state.ran(&mut conn, "detach other");
    assert!(!state.schema);
  }
}
