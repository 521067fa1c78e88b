//! Statements answered on the JavaScript thread (docs/dqlite.md#the-event-loop-path).
//!
//! A session's thread that sends a statement, waits for its answer and hands it to JavaScript
//! costs two thread switches per statement, and on a small machine they cost more than the
//! statement: point reads from four Databases took a whole core of the client. So when the
//! session is idle and its connection is up, the JavaScript thread sends a statement itself,
//! and its event loop watches the socket (`js::event_loop::Watch`): the answer is read, decoded
//! and delivered there, as Node reads its own sockets.
//!
//! Only what needs no waiting is done there: a statement's first send and the reading of its
//! answer, and the requests answered without the leader (a prepared `get()`'s next row,
//! `bind`, `reset`, `finalize`, `configure`). Everything that may wait (opening, finding a new
//! leader, `busyTimeout`'s retries, `each()`'s pacing, a failure's handling, the typed-column
//! check when it must ask the leader, a request too large to write at once) goes to the session's
//! thread, which finishes the statement from where it stands (`Job::Resume`) with the rules of
//! `run_from`. The two never run at once: `Turn::runner` says whose turn it is.

use std::sync::Arc;
use std::time::Instant;

use rusqlite::ffi;

use super::{
  immediate, lost, may_store_unreadable, ready_query, wire_statement, Answer, Job, Kind, Mode, Outcome, Ran,
  Ready, Request, Response, Runner, Shared, Turn, Txn, Value, Watch, Worker,
};
use crate::dqlite::connection::{Connection, Sent};
use crate::dqlite::statement;
use crate::error::Error;
use crate::js::event_loop::EventLoop;
use crate::protocol::{Outgoing, Setting};

/// The largest request the JavaScript thread writes: a larger one could fill the socket's
/// buffer and wait for the node to read.
const SEND_AT_MOST: usize = 64 * 1024;

/// A statement sent by the JavaScript thread: what its answer needs.
pub(super) struct Pending {
  pub(super) id: u32,
  /// The SQL as sent (`immediate`).
  sql: String,
  values: Vec<Value>,
  kind: Kind,
  mode: Mode,
  /// The prepared statement run, whose `get()` cursor the answer sets.
  stmt: Option<u32>,
  /// The columns and values of the parts read so far, when the result has several.
  rows: Option<(Vec<String>, Vec<Value>)>,
}

/// What the JavaScript thread did with a request.
enum Start {
  /// Answered without the leader.
  Answered(Option<Response>),
  /// Sent: its answer is read when the socket has it.
  Sent,
  /// For the session's thread.
  Thread(Job),
}

/// What reading a pending statement's answer came to.
enum Progress {
  /// More must arrive.
  Waiting,
  /// The answer was delivered.
  Answered,
  /// The session's thread finishes it.
  HandOver(Job),
}

impl Shared {
  /// Runs the jobs at the head of the queue on the JavaScript thread while they can be, then
  /// gives the turn to the session's thread (jobs left) or to nobody. Called with the turn
  /// `Idle` (or ending a statement of the event loop), on the JavaScript thread.
  pub(super) fn next(self: &Arc<Self>, turn: &mut Turn) {
    turn.runner = Runner::Idle;
    if let Some(event_loop) = self.event_loop {
      while let Some(Job::Run(..)) = turn.jobs.front() {
        let Some(Job::Run(id, request)) = turn.jobs.pop_front() else {
          unreachable!("the front job is a Run")
        };
        let mut worker = self.worker();
        let watched = self.watch(event_loop, turn, &worker);
        let start = if let Some(quiet) = watched {
          // A fault here answers the request, as on the session's thread (`Worker::guarded`).
          let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            worker.start_direct(id, request, quiet)
          }));
          started.unwrap_or_else(|_| Start::Answered(Some(worker.fault())))
        } else {
          Start::Thread(Job::Run(id, request))
        };
        match start {
          Start::Answered(response) => {
            if let Some(response) = response {
              self.sink.send(Outgoing::Reply { id, response });
            }
          }
          Start::Sent => {
            turn.runner = Runner::EventLoop {
              since: Instant::now(),
            };
            drop(worker);
            self.sink.flush();
            return;
          }
          Start::Thread(job) => {
            turn.jobs.push_front(job);
            break;
          }
        }
      }
    }
    if !turn.jobs.is_empty() {
      // The thread reads the socket now: the loop stops watching it. An idle session's watch
      // stays started, which saves two system calls per statement; should the socket become
      // readable meanwhile (the node closed it), `on_readable` stops it.
      if let Some((_, watch)) = turn.watch.as_mut() {
        // SAFETY: on the JavaScript thread (as above).
        unsafe { watch.stop() };
      }
      turn.runner = Runner::Thread;
      self.wake.notify_one();
    }
    self.sink.flush();
  }

  /// Makes the loop watch the worker's connection (a watch of an earlier connection is
  /// closed): watching before sending, an answer is never sent that nobody will read. `None`
  /// when there is no connection or it cannot be watched; else whether the connection is
  /// quiet: a watch still started since the last answer has seen nothing arrive on the idle
  /// connection (`on_readable` stops it when something does), so the node has not closed it.
  fn watch(self: &Arc<Self>, event_loop: EventLoop, turn: &mut Turn, worker: &Worker) -> Option<bool> {
    let conn = worker.conn.as_ref()?;
    let number = worker.connections;
    if turn.watch.as_ref().map(|(n, _)| *n) != Some(number) {
      let shared = Arc::downgrade(self);
      let on_readable = Box::new(move || {
        if let Some(shared) = shared.upgrade() {
          // The answer is delivered from this event of the loop, not from a later one.
          shared.sink.hold();
          let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shared.on_readable()));
          // SAFETY: the watch calls on the JavaScript thread, from its loop, and `on_readable`
          // has let go of the session's locks.
          unsafe { shared.sink.deliver_held() };
        }
      });
      // SAFETY: this runs on the JavaScript thread of `event_loop` (`next`'s contract), and the
      // connection's socket is open.
      turn.watch = unsafe { Watch::new(event_loop, conn.fd(), on_readable) }.map(|w| (number, w));
    }
    let (_, watch) = turn.watch.as_mut().filter(|(n, _)| *n == number)?;
    let quiet = watch.is_started();
    // SAFETY: on the JavaScript thread (as above).
    unsafe { watch.start() }.then_some(quiet)
  }

  /// The watch says the socket has something to read (JavaScript thread).
  fn on_readable(self: &Arc<Self>) {
    let mut turn = self.turn();
    if !matches!(turn.runner, Runner::EventLoop { .. }) {
      if let Some((_, watch)) = turn.watch.as_mut() {
        // SAFETY: the watch calls on the JavaScript thread.
        unsafe { watch.stop() };
      }
      return;
    }
    let progress = {
      let mut worker = self.worker();
      let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.receive_direct()));
      read.unwrap_or_else(|_| {
        let id = worker.pending.as_ref().map_or(0, |p| p.id);
        let response = worker.fault();
        self.sink.send(Outgoing::Reply { id, response });
        Progress::Answered
      })
    };
    match progress {
      // Part of the answer came: the time limit counts from now, as a read's timeout would.
      Progress::Waiting => {
        turn.runner = Runner::EventLoop {
          since: Instant::now(),
        }
      }
      Progress::Answered => self.next(&mut turn),
      Progress::HandOver(job) => {
        turn.jobs.push_front(job);
        self.next(&mut turn);
      }
    }
  }
}

impl Worker {
  /// Starts request `id` on the JavaScript thread (see the module's comment).
  fn start_direct(&mut self, id: u32, request: Request, quiet: bool) -> Start {
    match request {
      Request::Query { sql, params, mode } if mode != Mode::Each => match ready_query(sql, &params) {
        Ok(ready) => self.send_direct(id, ready, mode, quiet),
        Err(response) => Start::Answered(Some(*response)),
      },
      Request::Execute { stmt, params, mode } if mode != Mode::Each => {
        match self.ready_execute(stmt, &params, mode) {
          Ok(ready) => self.send_direct(id, ready, mode, quiet),
          Err(response) => Start::Answered(Some(*response)),
        }
      }
      request @ (Request::Bind { .. }
      | Request::Reset { .. }
      | Request::Finalize { .. }
      | Request::Configure(Setting::BusyTimeout(_))) => Start::Answered(self.handle(id, request)),
      request => Start::Thread(Job::Run(id, request)),
    }
  }

  /// Sends the `ready` statement from the JavaScript thread, after the checks `statement` and `run`
  /// make.
  ///
  /// Before a write, the socket is peeked at (`is_closed`): a write sent on a connection the
  /// node has closed would be in doubt, though it never ran. A read is sent at once on a
  /// `quiet` connection (one system call less per read): were the connection closed after all,
  /// the read is sent again to the new leader.
  fn send_direct(&mut self, id: u32, ready: Ready, mode: Mode, quiet: bool) -> Start {
    let Ready { sql, values, stmt } = ready;
    if self.txn == Txn::Aborted {
      return Start::Answered(Some(self.aborted(&sql, mode)));
    }
    let sql = immediate(&sql);
    let kind = statement::kind(&sql);
    self.forget_typed_columns(&sql, kind);
    let pending = Pending {
      id,
      sql,
      values,
      kind,
      mode,
      stmt,
      rows: None,
    };
    // The typed-column check, when it must ask the leader: the thread runs it, then the statement.
    let mut checked = true;
    if may_store_unreadable(&pending.sql, &pending.values, kind) {
      match self.check_unreadable(&pending.sql, &pending.values, false) {
        Ok(known) => checked = known,
        Err(e) => return Start::Answered(self.finish(pending, Err(e))),
      }
    }
    let open = |conn: &Connection| (kind == Kind::Rows && quiet) || !conn.is_closed();
    let Some(conn) = self.conn.as_mut().filter(|conn| checked && open(conn)) else {
      return Start::Thread(Job::Resume(pending, None));
    };
    let request = wire_statement(conn.db, &pending.sql, &pending.values, kind);
    match conn.send(request, SEND_AT_MOST) {
      Ok(Sent::Sent) => {
        self.pending = Some(pending);
        Start::Sent
      }
      Ok(Sent::TooLarge) => Start::Thread(Job::Resume(pending, None)),
      Err(Outcome::Refused(refused)) => {
        let ran = Err(Error::sqlite(ffi::SQLITE_MISMATCH, refused.0.to_string()));
        Start::Answered(self.finish(pending, ran))
      }
      Err(lost) => Start::Thread(Job::Resume(pending, Some(lost))),
    }
  }

  /// Reads what has arrived of the pending statement's answer.
  fn receive_direct(&mut self) -> Progress {
    loop {
      let Some(conn) = self.conn.as_mut() else {
        let pending = self.pending.take().expect("a pending statement");
        return Progress::HandOver(Job::Resume(pending, None));
      };
      let read = conn.try_read();
      let pending = self.pending.as_mut().expect("a pending statement");
      let message = match read {
        Ok(None) => return Progress::Waiting,
        Ok(Some(message)) => message,
        Err(failure) => {
          let pending = self.pending.take().expect("a pending statement");
          if pending.rows.is_some() {
            // Lost between parts: as `next_part`, the statement fails, and no read is resent.
            self.conn = None;
            let ran = Err(lost(&failure.to_string()));
            return self.deliver(pending, ran);
          }
          return Progress::HandOver(Job::Resume(pending, Some(Outcome::Lost(failure))));
        }
      };
      match (pending.rows.as_mut(), message) {
        (
          None,
          Answer::Result {
            last_insert_id,
            changes,
          },
        ) => {
          let pending = self.pending.take().expect("a pending statement");
          let ran = Ok(Ran::Done {
            last_id: last_insert_id,
            changes,
          });
          return self.deliver(pending, ran);
        }
        (None, Answer::Rows(part)) => {
          let values = part.rows.into_iter().flatten().collect();
          pending.rows = Some((part.columns, values));
          if !part.more {
            return self.deliver_rows();
          }
        }
        (Some((_, values)), Answer::Rows(part)) => {
          values.extend(part.rows.into_iter().flatten());
          if !part.more {
            return self.deliver_rows();
          }
        }
        (Some(_), Answer::Failure { code, message }) => {
          let pending = self.pending.take().expect("a pending statement");
          return self.deliver(pending, Err(Error::sqlite(code as i32, message)));
        }
        (Some(_), _) => {
          let pending = self.pending.take().expect("a pending statement");
          self.conn = None;
          return self.deliver(pending, Err(lost("an unexpected answer")));
        }
        // A failure (busy, not the leader…) or an answer that does not fit: `run_from`'s rules.
        (None, other) => {
          let pending = self.pending.take().expect("a pending statement");
          return Progress::HandOver(Job::Resume(pending, Some(Outcome::Answered(other))));
        }
      }
    }
  }

  fn deliver_rows(&mut self) -> Progress {
    let mut pending = self.pending.take().expect("a pending statement");
    let (columns, values) = pending.rows.take().expect("rows read");
    self.deliver(pending, Ok(Ran::Rows { columns, values }))
  }

  fn deliver(&mut self, pending: Pending, ran: Result<Ran, Error>) -> Progress {
    let id = pending.id;
    if let Some(response) = self.finish(pending, ran) {
      self.sink.send(Outgoing::Reply { id, response });
    }
    Progress::Answered
  }

  /// The answer to `pending`, once it ran (or failed).
  fn finish(&mut self, pending: Pending, ran: Result<Ran, Error>) -> Option<Response> {
    let mut cursor = None;
    let response = self.answer(ran, &pending.sql, pending.mode, Some(&mut cursor));
    if let Some(prepared) = pending.stmt.and_then(|stmt| self.statements.get_mut(&stmt)) {
      prepared.cursor = cursor;
    }
    response
  }

  /// The session's thread finishes a statement the JavaScript thread began.
  pub(super) fn resume(&mut self, pending: Pending, first: Option<Outcome<Answer>>) -> Response {
    let ran = match first {
      None => self.run(&pending.sql, &pending.values, pending.kind),
      Some(first) => self.run_from(&pending.sql, &pending.values, pending.kind, Some(first)),
    };
    self.finish(pending, ran).unwrap_or(Response::Done)
  }
}
