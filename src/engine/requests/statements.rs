//! Statements: one-shot queries through the statement cache (`db.run/get/all/each`) and the
//! prepared statements of `db.prepare()` (prepare, bind, run/get/all/each, reset, finalize),
//! with node-sqlite3's semantics: `get()` is a cursor, `bind()` with nothing to bind reports the
//! statement's last status, a failed prepare is answered once and its later requests dropped.

use rusqlite::ffi;

use super::{check_writable, Turn};
use crate::engine::connection::{Connection, Statement};
use crate::engine::database::Database;
use crate::engine::session::Session;
use crate::engine::stream::Origin;
use crate::error::Error;
use crate::protocol::{Mode, Response, Rows};
use crate::value::Params;

impl Database {
  /// A one-shot statement through the statement cache.
  pub(super) fn query(
    &mut self,
    session: &mut Session,
    rid: u32,
    sql: String,
    params: Params,
    mode: Mode,
    turn: &impl Turn,
  ) -> Option<Response> {
    let mut stmt = match self.cache.take(&sql) {
      Some(stmt) => stmt,
      None => match self.conn().prepare(&sql) {
        Ok(Some(stmt)) => stmt,
        Ok(None) => return Some(Response::Error(Error::misuse("not an error"))),
        Err(e) => return Some(Response::PrepareError(e)),
      },
    };
    let result = check_writable(session.readonly, &stmt).and_then(|()| stmt.bind(&params));
    if let Err(e) = result {
      self.recycle(sql, stmt);
      return Some(Response::Error(e));
    }
    self.read_group_for(session, stmt.query && mode != Mode::Each, turn);
    if mode == Mode::Each {
      self.start_stream(session, rid, stmt, Origin::Cached(sql));
      return None;
    }
    let response = step(self.conn(), &mut stmt, mode);
    self.recycle(sql, stmt);
    Some(response)
  }

  /// Returns a one-shot statement to the cache, reset and unbound.
  pub(super) fn recycle(&mut self, sql: String, mut stmt: Statement) {
    stmt.reset();
    stmt.clear_bindings();
    self.cache.put(sql, stmt);
  }

  /// Before a statement runs: a plain query (`query`) joins the read group, or opens one when
  /// the scheduler says more work waits; anything else ends the group.
  fn read_group_for(&mut self, session: &Session, query: bool, turn: &impl Turn) {
    if self.group.is_open() || turn.may_open_read_group(session) {
      if query && !session.aborted {
        self.group.advance(self.conn.as_ref(), turn.received());
      } else {
        self.end_read_group();
      }
    }
  }

  /// `db.prepare()`. A statement of empty SQL is kept (as `None`) and fails only when run.
  pub(super) fn prepare(&mut self, session: &mut Session, stmt: u32, sql: &str) -> Response {
    match self.conn().prepare(sql) {
      Ok(prepared) => {
        session.statements.insert(stmt, prepared);
        Response::Done
      }
      Err(e) => {
        session.failed.insert(stmt);
        Response::Error(e)
      }
    }
  }

  /// `Statement#run/get/all/each` on a prepared statement.
  pub(super) fn execute(
    &mut self,
    session: &mut Session,
    rid: u32,
    id: u32,
    params: Params,
    mode: Mode,
    turn: &impl Turn,
  ) -> Option<Response> {
    let readonly = session.readonly;
    let query = mode != Mode::Each && matches!(session.statements.get(&id), Some(Some(s)) if s.query);
    self.read_group_for(session, query, turn);
    let Some(slot) = session.statements.get_mut(&id) else {
      return Some(Response::Dropped);
    };
    let Some(stmt) = slot else {
      return Some(Response::Error(Error::misuse("not an error")));
    };
    if let Err(e) = check_writable(readonly, stmt) {
      return Some(Response::Error(e));
    }
    if params.is_none() {
      // Without parameters run/all/each start over (bindings kept); get() is a cursor that
      // stays at the end once it got there.
      if mode != Mode::Get {
        stmt.reset();
      } else if stmt.done {
        return Some(Response::Row(None));
      }
    } else if let Err(e) = stmt.bind(&params) {
      return Some(Response::Error(e));
    }
    if mode == Mode::Each {
      let stmt = session.statements.remove(&id).flatten().expect("present above");
      self.start_stream(session, rid, stmt, Origin::Prepared(id));
      return None;
    }
    let conn = self.conn.as_ref().expect("checked by handle()");
    Some(step(conn, stmt, mode))
  }
}

/// `Statement#bind`.
pub(super) fn bind(session: &mut Session, stmt: u32, params: &Params) -> Response {
  match session.statements.get_mut(&stmt) {
    None => Response::Dropped,
    Some(None) if params.is_none() => Response::Done,
    Some(None) => Response::Error(Error::sqlite(ffi::SQLITE_RANGE, "column index out of range")),
    // node-sqlite3 reports the statement's last status when bind() has nothing to bind.
    Some(Some(s)) if params.is_none() && (s.status == ffi::SQLITE_ROW || s.status == ffi::SQLITE_DONE) => {
      Response::Error(Error::sqlite(s.status, ""))
    }
    Some(Some(s)) => match s.bind(params) {
      Ok(()) => Response::Done,
      Err(e) => Response::Error(e),
    },
  }
}

/// `Statement#reset`: back to the start, bindings kept.
pub(super) fn reset(session: &mut Session, stmt: u32) -> Response {
  match session.statements.get_mut(&stmt) {
    None => Response::Dropped,
    Some(s) => {
      if let Some(s) = s {
        s.reset();
      }
      Response::Done
    }
  }
}

/// `Statement#finalize`. A statement whose prepare failed is forgotten without an answer.
pub(super) fn finalize(session: &mut Session, stmt: u32) -> Response {
  if session.failed.remove(&stmt) {
    Response::Dropped
  } else {
    session.statements.remove(&stmt);
    Response::Done
  }
}

/// Steps a bound statement for `run`, `get` (one row, the cursor stays) or `all`.
pub(in crate::engine) fn step(conn: &Connection, stmt: &mut Statement, mode: Mode) -> Response {
  match mode {
    Mode::Run => match stmt.advance() {
      Ok(_) => Response::Run {
        last_id: conn.last_insert_rowid(),
        changes: conn.changes(),
      },
      Err(e) => Response::Error(e),
    },
    Mode::Get => match stmt.advance() {
      Ok(true) => {
        let shape = stmt.shape();
        let mut values = Vec::with_capacity(shape.columns.len());
        stmt.read_row(shape.columns.len(), &mut values);
        Response::Row(Some(Rows { shape, values }))
      }
      Ok(false) => Response::Row(None),
      Err(e) => Response::Error(e),
    },
    Mode::All | Mode::Each => {
      let shape = stmt.shape();
      let width = shape.columns.len();
      let mut values = Vec::new();
      loop {
        match stmt.advance() {
          Ok(true) => stmt.read_row(width, &mut values),
          Ok(false) => break,
          Err(e) => return Response::Error(e),
        }
      }
      Response::Rows(Rows { shape, values })
    }
  }
}
