//! The engine thread: takes commands from sessions, picks whose request runs next, and hands it
//! to `requests` to run on the database. It decides *when*, never *what*: how each request is
//! run and answered lives in `requests/`, `each()` chunks in `stream.rs`.
//!
//! Scheduling rules (docs/sessions.md): a session's requests run in the order it sent them;
//! sessions take turns, one request (or one `each()` chunk) at a time; while the connection is
//! inside a transaction that a session opened, only that session runs (it is *pinned*), and if
//! it stays idle longer than `transactionTimeout` its transaction is rolled back. A session runs
//! only while its sink takes answers (`Sink::ready`) and, for a stream, while its receiver keeps
//! up (`Window`). A guarded session (a master closing) runs only inside its transaction.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

use super::database::Database;
use super::requests::{self, deliver, Handled, Turn};
use super::session::{Hooks, Session};
use super::{Command, SessionId, Shared, Sink};
use crate::protocol::{Outgoing, Response};

/// Sinks are flushed at least every this many units of work, so a busy engine never holds
/// answers back for long.
const FLUSH_UNITS: u32 = 32;

struct Scheduler {
  shared: Arc<Shared>,
  db: Database,
  sessions: HashMap<SessionId, Session>,
  /// Sessions in turn order: the next one to look at is at the front.
  order: VecDeque<SessionId>,
  /// The session whose transaction holds the connection: only it runs.
  owner: Option<SessionId>,
  /// When the owner last finished a request (it is idle inside its transaction since).
  owner_idle_since: Instant,
  /// Sinks that received messages since the last flush.
  touched: Vec<(SessionId, Arc<dyn Sink>)>,
  units_since_flush: u32,
  /// Requests received so far: each request's arrival number (see `ReadGroup::admits`).
  received: u64,
}

pub(super) fn run(commands: Receiver<Command>, shared: Arc<Shared>) {
  let mut scheduler = Scheduler {
    db: Database::new(shared.clone()),
    shared,
    sessions: HashMap::new(),
    order: VecDeque::new(),
    owner: None,
    owner_idle_since: Instant::now(),
    touched: Vec::new(),
    units_since_flush: 0,
    received: 0,
  };
  loop {
    loop {
      match commands.try_recv() {
        Ok(command) => scheduler.command(command),
        Err(TryRecvError::Empty) => break,
        Err(TryRecvError::Disconnected) => return scheduler.close_connection(),
      }
    }
    if let Some(session) = scheduler.next_runnable() {
      scheduler.run_unit(session);
      if scheduler.db.group.is_full() {
        scheduler.db.end_read_group();
      }
      scheduler.units_since_flush += 1;
      if scheduler.units_since_flush >= FLUSH_UNITS {
        scheduler.flush_sinks();
        // A busy engine looks at its file between bursts, not between every two requests.
        scheduler.look_at_file();
      }
      continue;
    }
    scheduler.db.end_read_group();
    scheduler.flush_sinks();
    scheduler.look_at_file();
    let watch_deadline = scheduler
      .db
      .watch_deadline(&scheduler.sessions, scheduler.owner.is_some());
    let deadline = match (scheduler.owner_deadline(), watch_deadline) {
      (Some(a), Some(b)) => Some(a.min(b)),
      (a, b) => a.or(b),
    };
    let received = match deadline {
      Some(deadline) => match commands.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Err(RecvTimeoutError::Timeout) => {
          if scheduler.owner_deadline().is_some_and(|d| d <= Instant::now()) {
            scheduler.expire_transaction();
            scheduler.flush_sinks();
          }
          continue;
        }
        Err(RecvTimeoutError::Disconnected) => None,
        Ok(command) => Some(command),
      },
      None => commands.recv().ok(),
    };
    match received {
      Some(command) => scheduler.command(command),
      None => return scheduler.close_connection(),
    }
  }
}

/// Whether session `id` has something to run and may run it now: its sink takes answers and,
/// for a stream, its receiver keeps up.
fn runnable(sessions: &HashMap<SessionId, Session>, id: SessionId) -> bool {
  match sessions.get(&id) {
    Some(s) if s.stream.is_some() => s.window.is_open() && s.sink.ready(),
    Some(s) => !s.queue.is_empty() && s.sink.ready(),
    None => false,
  }
}

/// The hooks that `sessions` want, with `also`: each connection hook is on while any session
/// wants it.
fn hooks_wanted(sessions: &HashMap<SessionId, Session>, also: Hooks) -> Hooks {
  sessions.values().fold(also, |hooks, s| hooks.union(s.hooks))
}

/// What the request being run may learn of the others (`requests::Turn`), borrowed from the
/// scheduler for the length of one request.
struct Others<'a> {
  sessions: &'a HashMap<SessionId, Session>,
  order: &'a VecDeque<SessionId>,
  owner: Option<SessionId>,
  received: u64,
}

impl Turn for Others<'_> {
  fn may_open_read_group(&self, session: &Session) -> bool {
    self.owner.is_none()
      && (!session.queue.is_empty() || self.order.iter().any(|id| runnable(self.sessions, *id)))
  }

  fn received(&self) -> u64 {
    self.received
  }

  fn hooks_of_others(&self) -> Hooks {
    hooks_wanted(self.sessions, Hooks::default())
  }
}

impl Scheduler {
  fn command(&mut self, command: Command) {
    match command {
      Command::Attach {
        session,
        sink,
        policy,
      } => {
        self.sessions.insert(session, Session::new(sink, policy));
        self.order.push_back(session);
      }
      Command::Request { session, id, request } => {
        if let Some(s) = self.sessions.get_mut(&session) {
          self.received += 1;
          s.queue.push_back((id, request, self.received));
        }
      }
      Command::Guard { session } => {
        if let Some(s) = self.sessions.get_mut(&session) {
          s.guarded_from = s.guarded_from.min(self.received + 1);
        }
      }
      Command::Resume { session } => {
        if let Some(s) = self.sessions.get_mut(&session) {
          s.window.acknowledged();
        }
      }
      Command::Detach { session } => {
        self.db.end_read_group();
        self.detach(session)
      }
      Command::Wake => {}
      Command::Barrier(done) => {
        self.db.end_read_group();
        let _ = done.send(());
      }
    }
  }

  fn runnable(&self, id: SessionId) -> bool {
    runnable(&self.sessions, id)
  }

  /// The owner if it may run (no one else may), otherwise the next session in turn that may.
  fn next_runnable(&mut self) -> Option<SessionId> {
    if let Some(owner) = self.owner {
      return self.runnable(owner).then_some(owner);
    }
    for _ in 0..self.order.len() {
      let id = self.order.pop_front()?;
      self.order.push_back(id);
      if self.runnable(id) {
        return Some(id);
      }
    }
    None
  }

  fn set_running(&self, session: SessionId) {
    let mut target = self.shared.interrupt.lock().unwrap_or_else(|e| e.into_inner());
    target.running = session;
    // An interrupt is for the statement running when it came, never for the next turn.
    self
      .shared
      .interrupted
      .store(false, std::sync::atomic::Ordering::Relaxed);
  }

  fn flush_sinks(&mut self) {
    self.units_since_flush = 0;
    for (_, sink) in self.touched.drain(..) {
      sink.flush();
    }
  }

  /// Runs one unit of session `id`: a chunk of its stream, or its next request. Then pins the
  /// connection to it if it left a transaction open, or unpins it if it ended one.
  fn run_unit(&mut self, id: SessionId) {
    let Some(mut session) = self.sessions.remove(&id) else {
      return;
    };
    if !self.touched.iter().any(|(s, _)| *s == id) {
      self.touched.push((id, session.sink.clone()));
    }
    let joins = session.queue.front().is_some_and(|(_, request, arrival)| {
      self.db.group.admits(*arrival) && requests::is_plain_query(&session, request)
    });
    if session.stream.is_some() || session.aborted || !joins {
      self.db.end_read_group();
    }
    self.set_running(id);
    let keep = if session.stream.is_some() {
      self.db.continue_stream(&mut session);
      true
    } else if let Some((rid, request, arrival)) = session.queue.pop_front() {
      // An aborted session still gets its CLUSTER_TXN_ABORTED answers here: the next master
      // would not know that its transaction was lost.
      if arrival >= session.guarded_from && self.owner != Some(id) && !session.aborted {
        session.sink.send(Outgoing::NotRun { id: rid });
        true
      } else {
        let others = Others {
          sessions: &self.sessions,
          order: &self.order,
          owner: self.owner,
          received: self.received,
        };
        match self.db.handle(&mut session, rid, request, &others) {
          Handled::Kept => true,
          Handled::Closed(rid) => {
            self.end_session(id, &mut session);
            deliver(&session.sink, rid, Response::Done);
            false
          }
        }
      }
    } else {
      true
    };
    self.set_running(0);
    if keep {
      self.sessions.insert(id, session);
    }
    self.db.group.notice_end(self.db.conn.as_ref());
    if let Some(conn) = &self.db.conn {
      if conn.is_autocommit() || self.db.group.is_open() {
        if self.owner == Some(id) {
          self.owner = None;
        }
      } else if keep && self.owner.is_none() {
        self.owner = Some(id);
      }
    }
    if self.owner == Some(id) {
      self.owner_idle_since = Instant::now();
    }
  }

  /// When the owner's transaction expires, if the owner is idle and a timeout is set.
  fn owner_deadline(&self) -> Option<Instant> {
    let owner = self.owner?;
    let timeout = self.db.transaction_timeout?;
    (!self.runnable(owner)).then_some(self.owner_idle_since + timeout)
  }

  /// `transactionTimeout`: rolls back the idle owner's transaction and marks it aborted.
  fn expire_transaction(&mut self) {
    let Some(id) = self.owner.take() else { return };
    self.db.roll_back();
    let Some(mut session) = self.sessions.remove(&id) else {
      return;
    };
    self.touched.push((id, session.sink.clone()));
    self.db.abort(&mut session);
    self.sessions.insert(id, session);
  }

  fn look_at_file(&mut self) {
    self.db.look_at_file(&mut self.sessions, self.owner.is_some());
  }

  fn detach(&mut self, id: SessionId) {
    if let Some(mut session) = self.sessions.remove(&id) {
      self.end_session(id, &mut session);
    }
  }

  /// Forgets a session: rolls back the transaction it left open, drops its statements, and
  /// closes the connection when it was the last one.
  fn end_session(&mut self, id: SessionId, session: &mut Session) {
    session.release();
    self.order.retain(|s| *s != id);
    if self.owner == Some(id) {
      self.owner = None;
      self.db.roll_back();
    }
    if session.hooks.any() {
      session.hooks = Hooks::default();
      self.db.set_hooks(hooks_wanted(&self.sessions, session.hooks));
    }
    if self.sessions.is_empty() {
      self.close_connection();
    }
  }

  fn close_connection(&mut self) {
    for session in self.sessions.values_mut() {
      session.release();
    }
    self.db.close();
  }
}
