//! Which connection runs a session's next request: the write connection, or one of the read
//! connections (docs/sessions.md#read-connections).
//!
//! A read goes to a reader when running it there returns what it would return on the write
//! connection, given what the session may see: the file is in WAL mode (a reader reads the last
//! commit, and nobody waits for anybody); the session is not inside a transaction (inside one it
//! must see its own uncommitted writes, which only the write connection has); the statement is a
//! one-shot `get`, `all` or `each` whose SQL is a query (the reader checks
//! `sqlite3_stmt_readonly` too, and sends back what writes); nothing local to the write
//! connection could change its meaning (`local_state`); and the session watches no hooks
//! (`trace` and `profile` report the statements of the write connection). `db.run()` stays on
//! the write connection: its `lastID` is that connection's. So do prepared statements, whose
//! cursors and bindings live there.

use super::database::Database;
use super::read_pool::default_capacity;
use super::reader::SourceOf;
use super::session::Session;
use super::sql::is_query;
use crate::protocol::{Mode, Request};

impl Database {
  /// Whether `request`, next in `session`'s queue, runs on a read connection. `in_txn`: the
  /// session's transaction holds the write connection.
  pub fn runs_on_reader(&mut self, session: &Session, request: &Request, in_txn: bool) -> bool {
    self.is_read_for_readers(session, request, in_txn) && self.readers_usable()
  }

  /// What `runs_on_reader` asks of the request and its session; the rest (`readers_usable`) is
  /// the same for every request until the connection runs something, so a batch asks it once.
  pub fn is_read_for_readers(&self, session: &Session, request: &Request, in_txn: bool) -> bool {
    let Request::Query { sql, mode, .. } = request else {
      return false;
    };
    if in_txn || *mode == Mode::Run || !is_query(sql) {
      return false;
    }
    if !session.opened
      || session.aborted
      || session.awaiting_key
      || session.key_gate.is_some()
      || session.hooks.trace
      || session.hooks.profile
      || session.stream.is_some()
    {
      return false;
    }
    !self.readers.known_to_write(sql)
  }

  /// Whether reads may go to read connections now, whatever they are.
  pub fn readers_usable(&mut self) -> bool {
    if self.gone.is_some() || self.journal_pending || self.log.draining() {
      return false;
    }
    let capacity = self.reader_capacity();
    let Some(conn) = self.conn.as_mut() else {
      return false;
    };
    // A write still active on the connection (an `INSERT … RETURNING` read with `get()`) is
    // a transaction nobody else may see yet; its session would not see it from a reader.
    self.readers.available(capacity) && self.local.allows_readers(conn) && !conn.writing()
  }

  /// How many read connections the engine may open: the opening session's `readConnections`.
  pub fn reader_capacity(&self) -> usize {
    match self.opened_with.as_ref().and_then(|o| o.read_connections) {
      Some(n) => n as usize,
      None => default_capacity(),
    }
  }

  /// A reader free to take a job now (opened if the pool may grow), or none.
  pub fn free_reader(&mut self) -> Option<usize> {
    let capacity = self.reader_capacity();
    let source = SourceOf {
      options: self.opened_with.as_ref()?,
      key: self.key.as_ref(),
      file: self.watch.as_ref()?.opened()?,
    };
    self.readers.free_reader(source, capacity)
  }
}
