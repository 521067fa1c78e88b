//! Scripts of several statements: `db.exec()` (node-sqlite3) and Worker1's `exec`.

use super::check_writable;
use crate::engine::database::Database;
use crate::engine::session::Session;
use crate::error::Error;
use crate::protocol::{FirstResult, Script, ScriptResult};

impl Database {
  /// `db.exec()`: every statement of the script, in order; stops at the first error and keeps
  /// what ran before it (no implicit transaction), as `sqlite3_exec` does.
  pub(super) fn exec(&mut self, session: &Session, sql: &str) -> Result<(), Error> {
    let conn = self.conn();
    let mut rest = sql;
    while let Some((stmt, tail)) = conn.prepare_one(rest)? {
      if let Some(mut stmt) = stmt {
        check_writable(session.readonly, &stmt)?;
        while stmt.advance()? {}
      }
      // As sqlite3_exec: the next statement starts after the whitespace that follows this one.
      rest = tail.trim_start();
    }
    Ok(())
  }

  /// Worker1's `exec` (see `protocol::Script`).
  pub(super) fn script(&mut self, session: &Session, script: Script) -> ScriptResult {
    let conn = self.conn();
    let before = conn.total_changes();
    let mut result = ScriptResult {
      columns: None,
      values: Vec::new(),
      statements: Vec::new(),
      changes: 0,
      last_insert_rowid: 0,
      error: None,
    };
    let mut bound = script.bind.is_none();
    let sql = script.sql.as_str();
    let mut rest = sql;
    let mut start = 0usize; // where the current statement's saved text begins
    let outcome = (|| -> Result<(), Error> {
      while let Some((stmt, tail)) = conn.prepare_one(rest)? {
        let end = sql.len() - tail.len();
        rest = tail;
        let Some(mut stmt) = stmt else { continue };
        result.statements.push(sql[start..end].trim().to_string());
        start = end;
        check_writable(session.readonly, &stmt)?;
        if !bound && stmt.parameter_count() > 0 {
          stmt.bind_strict(&script.bind)?;
          bound = true;
        }
        let width = stmt.column_count();
        if width > 0 && result.columns.is_none() && script.first != FirstResult::Step {
          result.columns = Some(stmt.shape().columns.clone());
          if script.first == FirstResult::Read {
            while stmt.advance()? {
              stmt.read_row(width, &mut result.values);
            }
          }
          continue;
        }
        stmt.advance()?;
      }
      Ok(())
    })();
    result.error = outcome.err();
    result.changes = conn.total_changes() - before;
    result.last_insert_rowid = conn.last_insert_rowid();
    result
  }
}
