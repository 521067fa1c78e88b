//! The request side of `each()`: a stream starts from a one-shot or prepared statement, each turn
//! the scheduler gives it delivers one chunk (`stream.rs` cuts the chunks), and its end gives the
//! statement back.

use crate::engine::connection::Statement;
use crate::engine::database::Database;
use crate::engine::session::Session;
use crate::engine::stream::{Chunk, Origin, Stream};
use crate::protocol::Response;

use super::deliver;

impl Database {
  /// Starts the session's `each()` (request `rid`) and delivers its first chunk.
  pub(super) fn start_stream(&mut self, session: &mut Session, rid: u32, stmt: Statement, origin: Origin) {
    session.stream = Some(Stream::new(rid, stmt, origin));
    self.continue_stream(session);
  }

  /// Produces the next chunk of the session's `each()` stream, or ends it.
  pub(in crate::engine) fn continue_stream(&mut self, session: &mut Session) {
    let Some(mut stream) = session.stream.take() else {
      return;
    };
    let Chunk { rows, end } = stream.next_chunk(session.policy.chunk_bytes_limit);
    if let Some(rows) = rows {
      self.flush_events(session);
      deliver(&session.sink, stream.id, Response::Chunk(rows));
      session.window.sent();
    }
    match end {
      None => session.stream = Some(stream),
      Some(error) => {
        self.reply(session, stream.id, Response::EachEnd { error });
        self.end_stream(session, stream);
      }
    }
  }

  /// Gives a finished stream's statement back: to the cache, or to its `Statement`.
  pub(super) fn end_stream(&mut self, session: &mut Session, stream: Stream) {
    match stream.origin {
      Origin::Cached(sql) => self.recycle(sql, stream.stmt),
      Origin::Prepared(id) => {
        session.statements.insert(id, Some(stream.stmt));
      }
    }
  }
}
