//! Running one request of a session on the database, with node-sqlite3's semantics: what each
//! request family does and answers (`statements`, `each`, `exec`, `open`, `configure`,
//! `backup`), and the checks every request passes first (open, file gone, aborted transaction,
//! key). Nothing here decides *when* a request runs: that is the scheduler's (`scheduler.rs`),
//! and a request asks it only the questions of `Turn`. Another way to schedule sessions reuses
//! this as it is.

mod backup;
mod configure;
mod each;
mod exec;
mod open;
mod statements;

pub(super) use statements::step;

use std::sync::Arc;

use rusqlite::ffi;

use super::connection::Statement;
use super::database::Database;
use super::local_state;
use super::session::{Hooks, Session};
use super::settings::{self, Settings};
use super::sql::{is_query, is_rollback};
use super::Sink;
use crate::error::{ClusterCode, Error};
use crate::protocol::{Event, Mode, Outgoing, Request, Response, Rows, Setting, Shape};

/// What a request may ask of the scheduler that runs it, about everything besides itself.
pub(super) trait Turn {
  /// Whether opening a read group is worth it now: no transaction holds the connection, and more
  /// work than this request waits (in `session`'s queue or another session's).
  fn may_open_read_group(&self, session: &Session) -> bool;
  /// Requests received so far (a read group opened now admits those).
  fn received(&self) -> u64;
  /// The hooks the other sessions want on.
  fn hooks_of_others(&self) -> Hooks;
}

/// How the session stands after its request.
pub(super) enum Handled {
  Kept,
  /// It closed: the scheduler forgets it, then answers `Done` to this request id (so that the
  /// connection, if it was the last session, is closed by the time the answer arrives).
  Closed(u32),
}

pub(super) fn deliver(sink: &Arc<dyn Sink>, id: u32, response: Response) {
  sink.send(Outgoing::Reply { id, response });
}

/// Whether `request` runs a plain query (`is_query`, `Statement::query`), which may share a
/// read group; an `each()` never does, since a stream holds its own read.
pub(super) fn is_plain_query(session: &Session, request: &Request) -> bool {
  match request {
    Request::Query { mode, sql, .. } => *mode != Mode::Each && is_query(sql),
    Request::Execute { stmt, mode, .. } => {
      *mode != Mode::Each
        && session
          .statements
          .get(stmt)
          .is_some_and(|s| s.as_ref().is_some_and(|s| s.query))
    }
    _ => false,
  }
}

fn misuse_not_open() -> Error {
  Error::misuse("Database is not open")
}

fn txn_aborted() -> Error {
  Error::Cluster {
    code: ClusterCode::TxnAborted,
    message: "this Database's transaction was rolled back (its master was lost, or it stayed idle \
              longer than transactionTimeout); every statement fails until you run ROLLBACK"
      .into(),
  }
}

/// The success of a `ROLLBACK` that an aborted session runs when there is nothing left to roll
/// back: the answer the statement would have had inside a transaction.
fn empty_success(mode: Option<Mode>, last_id: i64) -> Response {
  match mode {
    None => Response::Done,
    Some(Mode::Run) => Response::Run { last_id, changes: 0 },
    Some(Mode::Get) => Response::Row(None),
    Some(Mode::All) => Response::Rows(Rows {
      shape: Arc::new(Shape {
        id: 0,
        columns: Vec::new(),
      }),
      values: Vec::new(),
    }),
    Some(Mode::Each) => Response::EachEnd { error: None },
  }
}

/// The SQL a request would run, for the aborted-session rule, and its result mode (`None` for
/// `exec`).
fn statement_of(session: &Session, request: &Request) -> Option<(String, Option<Mode>)> {
  match request {
    Request::Query { sql, mode, .. } => Some((sql.clone(), Some(*mode))),
    Request::Exec { sql } => Some((sql.clone(), None)),
    Request::Script(script) => Some((script.sql.clone(), None)),
    Request::Execute { stmt, mode, .. } => match session.statements.get(stmt) {
      Some(Some(s)) => Some((s.sql(), Some(*mode))),
      _ => None,
    },
    _ => None,
  }
}

/// Requests that read or write the database file (what a deleted file fails).
fn needs_file(request: &Request) -> bool {
  !matches!(
    request,
    Request::Close
      | Request::Wait
      | Request::Finalize { .. }
      | Request::Reset { .. }
      | Request::Bind { .. }
      | Request::Configure(_)
      | Request::Abort
  )
}

/// A statement that writes fails in a read-only session before it runs.
fn check_writable(readonly: bool, stmt: &Statement) -> Result<(), Error> {
  if readonly && !stmt.readonly() {
    return Err(Error::sqlite(
      ffi::SQLITE_READONLY,
      "attempt to write a readonly database",
    ));
  }
  Ok(())
}

fn done_or_error(result: Result<(), Error>) -> Response {
  match result {
    Ok(()) => Response::Done,
    Err(e) => Response::Error(e),
  }
}

impl Database {
  /// Runs one request of `session` and answers it (an `each()` answers in chunks as it goes).
  pub(super) fn handle(
    &mut self,
    session: &mut Session,
    rid: u32,
    request: Request,
    turn: &impl Turn,
  ) -> Handled {
    // An engine without its connection in a master that is closing: the client runs this
    // request on the next master (see `SessionPolicy`).
    if !session.opened && session.policy.hands_over_without_connection && self.conn.is_none() {
      session.sink.send(Outgoing::NotRun { id: rid });
      return Handled::Kept;
    }
    if let Request::Open(options) = request {
      let response = done_or_error(self.open(session, options));
      self.reply(session, rid, response);
      return Handled::Kept;
    }
    if !session.opened || self.conn.is_none() {
      self.reply(session, rid, Response::Error(misuse_not_open()));
      return Handled::Kept;
    }
    if let Some(gone) = &self.gone {
      if needs_file(&request) {
        let gone = gone.clone();
        self.reply(session, rid, Response::Error(gone));
        return Handled::Kept;
      }
    }
    if let Request::Abort = request {
      session.aborted = true;
      self.reply(session, rid, Response::Done);
      return Handled::Kept;
    }
    if session.aborted {
      if let Some((sql, mode)) = statement_of(session, &request) {
        if !is_rollback(&sql) {
          self.reply(session, rid, Response::Error(txn_aborted()));
          return Handled::Kept;
        }
        session.aborted = false;
        if self.conn().is_autocommit() {
          let response = empty_success(mode, self.conn().last_insert_rowid());
          self.reply(session, rid, response);
          return Handled::Kept;
        }
      }
    }
    if session.awaiting_key
      && !matches!(
        request,
        Request::Key(..) | Request::PragmaKey(_) | Request::Close | Request::Wait
      )
    {
      let e = Error::sqlite(
        ffi::SQLITE_AUTH,
        "the database is waiting for its key: call db.init({ key }) before running statements",
      );
      self.reply(session, rid, Response::Error(e));
      return Handled::Kept;
    }
    if let Some(reason) = session.key_gate {
      if !open::passes_key_gate(session, &request) {
        self.reply(
          session,
          rid,
          Response::Error(Error::sqlite(ffi::SQLITE_NOTADB, reason)),
        );
        return Handled::Kept;
      }
    }
    if self.journal_pending && !open::passes_key_gate(session, &request) {
      self.settle_journal_before_reading();
    }
    if session.settings != self.applied {
      Settings::apply(
        session.settings,
        &mut self.applied,
        self.conn.as_ref().expect("checked above"),
      );
    }
    // SQL that may set a per-Database pragma: read the settings back once it has run.
    let pragma_sql = match &request {
      Request::Query { sql, .. } | Request::Exec { sql } if settings::may_set(sql) => Some(sql.clone()),
      Request::Script(script) if settings::may_set(&script.sql) => Some(script.sql.clone()),
      Request::Execute { stmt, .. } => match session.statements.get(stmt) {
        Some(Some(s)) if s.pragma => Some(s.sql()),
        _ => None,
      },
      _ => None,
    };
    // SQL that may change what the read connections would not see (`local_state`).
    let local_sql = match &request {
      Request::Query { sql, .. } | Request::Exec { sql } if local_state::may_change(sql) => Some(sql.clone()),
      Request::Script(script) if local_state::may_change(&script.sql) => Some(script.sql.clone()),
      Request::Execute { stmt, .. } => match session.statements.get(stmt) {
        Some(Some(s)) if s.local => Some(s.sql()),
        _ => None,
      },
      Request::LoadExtension { .. } | Request::Configure(Setting::Limit { .. }) => {
        self.local.changed_for_good();
        None
      }
      _ => None,
    };
    let response = match request {
      Request::Open(_) | Request::Abort => unreachable!("handled above"),
      Request::PragmaKey(pragma) => {
        self.pragma_key(session, pragma);
        Some(Response::Done)
      }
      Request::Backup(op) => Some(match self.backup(session, op) {
        Ok(response) => response,
        Err(e) => Response::Error(e),
      }),
      Request::Query { sql, params, mode } => self.query(session, rid, sql, params, mode, turn),
      Request::Prepare { stmt, sql } => Some(self.prepare(session, stmt, &sql)),
      Request::Execute { stmt, params, mode } => self.execute(session, rid, stmt, params, mode, turn),
      Request::Bind { stmt, params } => Some(statements::bind(session, stmt, &params)),
      Request::Reset { stmt } => Some(statements::reset(session, stmt)),
      Request::Finalize { stmt } => Some(statements::finalize(session, stmt)),
      Request::Exec { sql } => Some(done_or_error(self.exec(session, &sql))),
      Request::Configure(setting) => {
        self.configure(session, setting, turn);
        Some(Response::Done)
      }
      Request::Key(key, legacy) => Some(done_or_error(self.deferred_key(session, key, legacy))),
      Request::LoadExtension { .. } if !session.policy.may_load_extensions => {
        Some(Response::Error(Error::sqlite(
          ffi::SQLITE_ERROR,
          "loadExtension is not available to cluster clients: load extensions in the master process",
        )))
      }
      Request::LoadExtension { path } => Some(done_or_error(self.conn().load_extension(&path))),
      Request::Wait => Some(Response::Done),
      Request::Script(script) => Some(Response::Script(self.script(session, script))),
      Request::Export => Some(match self.conn().serialize() {
        Ok(bytes) => Response::Bytes(bytes),
        Err(e) => Response::Error(e),
      }),
      Request::Close => {
        if !session.statements.is_empty() || session.backing_up() {
          let e = Error::sqlite(
            ffi::SQLITE_BUSY,
            "unable to close due to unfinalized statements or unfinished backups",
          );
          Some(Response::Error(e))
        } else {
          self.flush_events(session);
          return Handled::Closed(rid);
        }
      }
    };
    if let (Some(sql), Some(conn)) = (pragma_sql, &self.conn) {
      session.settings = Settings::read(conn, &sql, session.settings);
      self.applied = session.settings;
    }
    if let (Some(sql), Some(conn)) = (local_sql, self.conn.as_mut()) {
      self.local.ran(conn, &sql);
    }
    if let Some(response) = response {
      self.reply(session, rid, response);
    }
    Handled::Kept
  }

  /// Sends the hook events the last step produced (those this session asked for), any change
  /// of its transaction state and of what it may read itself (`client_reads`), then `response`.
  pub(super) fn reply(&mut self, session: &mut Session, id: u32, response: Response) {
    self.flush_events(session);
    self.sync_txn(session);
    if session.policy.runs_reads_itself {
      // A Database of this process reads through the engine: others hear at the next flush.
      self.look_at_client_reads();
      self.tell_client_reads(session);
    }
    deliver(&session.sink, id, response);
  }

  /// Hands the session the hook events of its last step that it asked for.
  pub(super) fn flush_events(&mut self, session: &Session) {
    let Some(conn) = self.conn.as_mut() else { return };
    for event in conn.take_events() {
      let wanted = match event {
        Event::Trace(_) => session.hooks.trace,
        Event::Profile { .. } => session.hooks.profile,
        Event::Change { .. } => session.hooks.change,
        Event::Leader { .. } => true, // a local connection makes none
      };
      if wanted {
        session.sink.send(Outgoing::Event(event));
      }
    }
  }

  /// Tells the session when its transaction state changed (before the reply that follows).
  fn sync_txn(&self, session: &mut Session) {
    let now =
      !self.group.is_open() && self.conn.as_ref().is_some_and(|c| !c.is_autocommit()) && !session.aborted;
    if now != session.in_txn {
      session.in_txn = now;
      session.sink.send(Outgoing::Txn(now));
    }
  }

  /// The session's transaction was rolled back without its doing (`transactionTimeout`): a
  /// stream it had running ends with `CLUSTER_TXN_ABORTED`, and its statements fail so until it
  /// runs `ROLLBACK` (docs/sessions.md#aborted-sessions).
  pub(super) fn abort(&mut self, session: &mut Session) {
    if let Some(stream) = session.stream.take() {
      deliver(
        &session.sink,
        stream.id,
        Response::EachEnd {
          error: Some(txn_aborted()),
        },
      );
      self.end_stream(session, stream);
    }
    session.aborted = true;
    self.sync_txn(session);
    self.tell_client_reads(session);
  }
}
