//! `each()` streaming: a result is delivered in chunks, and the receiver acknowledges each one.
//! A session whose receiver holds `WINDOW` chunks unacknowledged pauses while the others go on,
//! so a slow reader never makes the engine buffer a whole result, and a long `each()` never
//! holds the connection against the other sessions (docs/sessions.md#streaming-each).

use rusqlite::ffi;

use super::connection::Statement;
use crate::error::Error;
use crate::protocol::{Rows, MESSAGE_LIMIT};
use crate::value::Value;

/// Rows per chunk, at most; a chunk also ends once its values pass `CHUNK_BYTES`, so large rows
/// travel a few at a time.
pub(super) const CHUNK_ROWS: usize = 512;
pub(super) const CHUNK_BYTES: usize = 8 << 20;
/// Chunks a receiver may hold unacknowledged before the stream pauses.
pub(super) const WINDOW: u32 = 4;

/// An `each()` in progress. It owns its statement until the last row.
pub(super) struct Stream {
  /// The request it answers.
  pub id: u32,
  pub stmt: Statement,
  pub origin: Origin,
  /// A row read but held back: with the rows before it, the chunk would have been too big
  /// for a client's message. It starts the next chunk.
  carry: Option<Vec<Value>>,
}

/// Where a stream's statement goes back when the stream ends.
pub(super) enum Origin {
  /// The statement cache, under this SQL (a one-shot `db.each()`).
  Cached(String),
  /// The session's prepared statement of this id (`Statement#each`).
  Prepared(u32),
}

/// What one turn of a stream produced.
pub(super) struct Chunk {
  /// The rows to deliver; `None` when the stream ended before a row.
  pub rows: Option<Rows>,
  /// `Some` when the stream ended, with the error that ended it, if any.
  pub end: Option<Option<Error>>,
}

impl Stream {
  pub fn new(id: u32, stmt: Statement, origin: Origin) -> Stream {
    Stream {
      id,
      stmt,
      origin,
      carry: None,
    }
  }

  /// Steps the statement for the next chunk: up to `CHUNK_ROWS` rows and about `CHUNK_BYTES`
  /// of values, none of whose rows takes the chunk past `limit` bytes (see
  /// `SessionPolicy::chunk_bytes_limit`).
  pub fn next_chunk(&mut self, limit: usize) -> Chunk {
    let shape = self.stmt.shape();
    let width = shape.columns.len();
    let mut values = Vec::with_capacity(width * 64);
    let mut rows = 0;
    let mut bytes = 0;
    let mut end: Option<Option<Error>> = None;
    while rows < CHUNK_ROWS && bytes < CHUNK_BYTES {
      let start = values.len();
      if let Some(row) = self.carry.take() {
        values.extend(row);
      } else {
        match self.stmt.advance() {
          Ok(true) => self.stmt.read_row(width, &mut values),
          Ok(false) => {
            end = Some(None);
            break;
          }
          Err(e) => {
            end = Some(Some(e));
            break;
          }
        }
      }
      let size = values[start..].iter().map(Value::size).sum::<usize>();
      if bytes + size > limit {
        if rows > 0 {
          self.carry = Some(values.split_off(start)); // the rows before it go now
        } else {
          values.clear();
          end = Some(Some(Error::sqlite(
            ffi::SQLITE_TOOBIG,
            format!(
              "a row of {} MiB is more than one cluster message may carry ({} MiB): select that value in parts (substr) or read it in the master",
              size >> 20,
              MESSAGE_LIMIT >> 20
            ),
          )));
        }
        break;
      }
      bytes += size;
      rows += 1;
    }
    Chunk {
      rows: (rows > 0).then_some(Rows { shape, values }),
      end,
    }
  }
}

/// The chunks a session's receiver has not acknowledged yet. The count outlives one stream: a
/// chunk of a stream that ended is still acknowledged later.
#[derive(Default)]
pub(super) struct Window {
  unacknowledged: u32,
}

impl Window {
  /// Whether the session's stream may produce another chunk now.
  pub fn is_open(&self) -> bool {
    self.unacknowledged < WINDOW
  }

  pub fn sent(&mut self) {
    self.unacknowledged += 1;
  }

  pub fn acknowledged(&mut self) {
    self.unacknowledged = self.unacknowledged.saturating_sub(1);
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::engine::connection::Connection;

  fn stream_of(conn: &Connection, sql: &str) -> Stream {
    let stmt = conn.prepare(sql).unwrap().unwrap();
    Stream::new(7, stmt, Origin::Prepared(1))
  }

  #[test]
  fn a_window_closes_after_four_chunks_and_opens_on_an_acknowledgement() {
    let mut window = Window::default();
    for _ in 0..WINDOW {
      assert!(window.is_open());
      window.sent();
    }
    assert!(!window.is_open());
    window.acknowledged();
    assert!(window.is_open());
  }

  #[test]
  fn rows_come_in_chunks_of_at_most_chunk_rows_then_the_end() {
    let conn = Connection::memory();
    let mut stream = stream_of(
      &conn,
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) SELECT i FROM n",
    );
    let first = stream.next_chunk(usize::MAX);
    assert_eq!(first.rows.unwrap().values.len(), CHUNK_ROWS);
    assert!(first.end.is_none());
    let second = stream.next_chunk(usize::MAX);
    assert_eq!(second.rows.unwrap().values.len(), 1000 - CHUNK_ROWS);
    assert!(matches!(second.end, Some(None)));
  }

  #[test]
  fn a_row_past_the_limit_starts_the_next_chunk_and_a_row_alone_past_it_ends_the_stream() {
    let conn = Connection::memory();
    let mut stream = stream_of(&conn, "VALUES (zeroblob(100)), (zeroblob(100)), (zeroblob(1000))");
    let first = stream.next_chunk(250);
    assert_eq!(first.rows.unwrap().values.len(), 2);
    assert!(first.end.is_none());
    let second = stream.next_chunk(250);
    assert!(second.rows.is_none());
    let error = second.end.unwrap().unwrap();
    assert_eq!(error.errno(), ffi::SQLITE_TOOBIG);
  }
}
