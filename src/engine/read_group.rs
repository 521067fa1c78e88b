//! Read groups: queries that run back to back (from any sessions, outside any transaction) share
//! one read transaction, so SQLite locks and checks the file once per group instead of once per
//! query: under fan-in that locking was about 40% of the engine thread's time. The group ends
//! before anything else runs, when the engine runs out of work, and after `GROUP_UNITS` queries,
//! so a writer in another process waits no longer than for a few queries. Only queries that
//! arrived before the group began join it, so none misses a write committed (by any process)
//! before it was sent (docs/sessions.md#read-groups).
//!
//! A group is not a transaction for the sessions: it never pins the connection to one, and no
//! session is told `Txn` about it.

use rusqlite::ffi;

use super::connection::{Connection, Statement};

/// Queries in one read group at most.
pub(super) const GROUP_UNITS: u32 = 64;

/// The read group of one connection: open or not, and its `BEGIN` and `COMMIT`.
pub(super) struct ReadGroup {
  /// Queries run in the open group; 0 when there is none.
  units: u32,
  /// How many requests the engine had received when the open group began.
  horizon: u64,
  /// `BEGIN DEFERRED` and `COMMIT`, prepared once per connection.
  sql: Option<(Statement, Statement)>,
}

impl ReadGroup {
  pub fn new() -> ReadGroup {
    ReadGroup {
      units: 0,
      horizon: 0,
      sql: None,
    }
  }

  pub fn is_open(&self) -> bool {
    self.units > 0
  }

  /// Whether the request that arrived as number `arrival` may run in the group open now (or in
  /// a new one): the group's snapshot then holds everything committed before it was sent.
  pub fn admits(&self, arrival: u64) -> bool {
    self.units == 0 || arrival <= self.horizon
  }

  /// Whether the group has run its share of queries and must end before the next one.
  pub fn is_full(&self) -> bool {
    self.units >= GROUP_UNITS
  }

  /// Adds the query about to run to the group, opening one (for the requests received so far,
  /// `received`) if none is open. Without a group (hooks on, a transaction open, a writing
  /// statement still active, or `BEGIN` failing) the query runs on its own as usual. A writing
  /// statement would make the group's `COMMIT` fail (and it would own that write); none can
  /// start inside a group, since anything but a query ends the group first.
  pub fn advance(&mut self, conn: Option<&Connection>, received: u64) {
    if self.units > 0 {
      self.units += 1;
      return;
    }
    let Some(conn) = conn else { return };
    if conn.hooked() || !conn.is_autocommit() || conn.writing() {
      return;
    }
    if self.sql.is_none() {
      let begin = conn.prepare("BEGIN DEFERRED");
      let commit = conn.prepare("COMMIT");
      if let (Ok(Some(begin)), Ok(Some(commit))) = (begin, commit) {
        self.sql = Some((begin, commit));
      }
    }
    let Some((begin, _)) = self.sql.as_mut() else {
      return;
    };
    let rc = begin.step();
    begin.reset();
    if rc == ffi::SQLITE_DONE {
      self.units = 1;
      self.horizon = received;
    }
  }

  /// Ends the group, if one is open.
  pub fn end(&mut self, conn: Option<&Connection>) {
    if std::mem::take(&mut self.units) == 0 {
      return;
    }
    let (Some(conn), Some((_, commit))) = (conn, self.sql.as_mut()) else {
      return;
    };
    if conn.is_autocommit() {
      return;
    }
    let rc = commit.step();
    commit.reset();
    if rc != ffi::SQLITE_DONE {
      let _ = conn.execute_batch("ROLLBACK");
    }
  }

  /// After a unit of work: a group whose transaction SQLite ended by itself (an I/O error rolls
  /// back, say), or whose connection is gone, is over.
  pub fn notice_end(&mut self, conn: Option<&Connection>) {
    if self.units > 0 && conn.is_none_or(|c| c.is_autocommit()) {
      self.units = 0;
    }
  }

  /// The connection is closing or being replaced: the group ends with it, and its statements
  /// are finalized before the connection closes.
  pub fn reset(&mut self) {
    self.units = 0;
    self.sql = None;
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_group_opens_a_read_transaction_for_the_requests_received_so_far() {
    let conn = Connection::memory();
    let mut group = ReadGroup::new();
    assert!(!group.is_open());
    assert!(group.admits(100), "with no group open, any query may start one");
    group.advance(Some(&conn), 10);
    assert!(group.is_open());
    assert!(!conn.is_autocommit());
    assert!(group.admits(10));
    assert!(
      !group.admits(11),
      "a query sent after the group began waits for the next one"
    );
    group.end(Some(&conn));
    assert!(!group.is_open());
    assert!(conn.is_autocommit());
  }

  #[test]
  fn a_group_is_full_after_group_units_queries() {
    let conn = Connection::memory();
    let mut group = ReadGroup::new();
    for _ in 0..GROUP_UNITS {
      assert!(!group.is_full());
      group.advance(Some(&conn), 1);
    }
    assert!(group.is_full());
    group.end(Some(&conn));
    assert!(!group.is_full());
  }

  #[test]
  fn no_group_opens_inside_a_transaction_or_without_a_connection() {
    let mut group = ReadGroup::new();
    group.advance(None, 1);
    assert!(!group.is_open());
    let conn = Connection::memory();
    conn.execute_batch("BEGIN").unwrap();
    group.advance(Some(&conn), 1);
    assert!(!group.is_open());
    assert!(!conn.is_autocommit(), "the session's transaction is left alone");
  }

  #[test]
  fn a_group_that_sqlite_rolled_back_is_over() {
    let conn = Connection::memory();
    let mut group = ReadGroup::new();
    group.advance(Some(&conn), 1);
    group.notice_end(Some(&conn));
    assert!(group.is_open());
    conn.execute_batch("ROLLBACK").unwrap();
    group.notice_end(Some(&conn));
    assert!(!group.is_open());
  }

  #[test]
  fn reset_forgets_the_group_and_its_statements() {
    let conn = Connection::memory();
    let mut group = ReadGroup::new();
    group.advance(Some(&conn), 1);
    group.reset();
    assert!(!group.is_open());
    assert!(group.sql.is_none());
  }
}
