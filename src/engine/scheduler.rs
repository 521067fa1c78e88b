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
//!
//! Reads that may run on a read connection (`routing.rs`) are handed to a free reader instead,
//! several of one session at a time, and the session waits for the reader's report before its
//! next request runs. They are handed out even while another session's transaction pins the
//! write connection: that is what read connections are for. With no reader free, a read waits
//! for one while the connection is pinned, and runs on the write connection otherwise.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

use super::database::Database;
use super::reader::{Job, Outcome, Read};
use super::requests::{self, deliver, Handled, Turn};
use super::session::{Hooks, Session};
use super::{Command, SessionId, Shared, Sink};
use crate::protocol::{Mode, Outgoing, Request, Response};

/// Sinks are flushed at least every this many units of work, so a busy engine never holds
/// answers back for long.
const FLUSH_UNITS: u32 = 32;

/// Reads of one session handed to a reader in one job, at most: one report and one wake-up for
/// a client that sends many reads at once, and still a short wait for its next write.
const READS_PER_JOB: usize = 32;

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
  /// The `client_reads_version` every client's session has been told of.
  client_reads_told: u64,
}

pub(super) fn run(commands: Receiver<Command>, readers_done: Sender<Command>, shared: Arc<Shared>) {
  let mut scheduler = Scheduler {
    db: Database::new(shared.clone(), readers_done),
    shared,
    sessions: HashMap::new(),
    order: VecDeque::new(),
    owner: None,
    owner_idle_since: Instant::now(),
    touched: Vec::new(),
    units_since_flush: 0,
    received: 0,
    client_reads_told: 0,
  };
  loop {
    loop {
      match commands.try_recv() {
        Ok(Command::Stop) => return scheduler.close_connection(),
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
        scheduler.limit_log();
      }
      continue;
    }
    scheduler.db.end_read_group();
    scheduler.flush_sinks();
    scheduler.look_at_file();
    scheduler.limit_log();
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
      Some(Command::Stop) | None => return scheduler.close_connection(),
      Some(command) => scheduler.command(command),
    }
  }
}

/// Whether session `id` has something to run and may run it now: its sink takes answers and,
/// for a stream, its receiver keeps up.
fn runnable(sessions: &HashMap<SessionId, Session>, id: SessionId) -> bool {
  match sessions.get(&id) {
    Some(s) if s.away => false,
    Some(s) if s.stream.is_some() || s.streaming_on.is_some() => s.window.is_open() && s.sink.ready(),
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
      Command::Wake | Command::Stop => {}
      Command::Barrier(done) => {
        self.db.end_read_group();
        let _ = done.send(());
      }
      Command::ReadDone {
        reader,
        session,
        outcome,
      } => self.read_done(reader, session, outcome),
    }
  }

  /// A reader finished reads of `session`: it may run its next request.
  fn read_done(&mut self, reader: (u64, usize), id: SessionId, outcome: Outcome) {
    self.db.readers.finished(reader, id, &outcome);
    let Some(session) = self.sessions.get_mut(&id) else {
      // It detached meanwhile: a stream the reader kept for it ends.
      self.db.readers.forget(id);
      return;
    };
    session.away = false;
    match outcome {
      Outcome::Answered { chunks, stream } => {
        for _ in 0..chunks {
          session.window.sent();
        }
        session.streaming_on = stream.map(|rid| (reader, rid));
      }
      Outcome::Returned { reads, writes } => {
        for read in reads.into_iter().rev() {
          session.queue.push_front(read.into_request());
        }
        if writes.is_none() {
          // The reader could not read the file: it may be gone or replaced, which the write
          // connection finds out now, before it runs the reads.
          self.db.notice_file_gone();
          self.look_at_file();
        }
      }
    }
  }

  /// Whether session `id`'s next unit goes to a read connection now: the next chunk of an
  /// `each()` a reader holds, or a read `routing.rs` sends to one while a reader is free.
  fn goes_to_reader(&mut self, id: SessionId) -> bool {
    let Some(session) = self.sessions.get(&id) else {
      return false;
    };
    if session.streaming_on.is_some() {
      return true;
    }
    let Some((_, request, arrival)) = session.queue.front() else {
      return false;
    };
    let guarded = *arrival >= session.guarded_from && self.owner != Some(id) && !session.aborted;
    !guarded
      && self.db.runs_on_reader(session, request, self.owner == Some(id))
      && self.db.free_reader().is_some()
  }

  /// Hands session `id`'s next unit to a read connection if it goes to one (`goes_to_reader`):
  /// the next chunk of its `each()`, or its next reads (up to `READS_PER_JOB`, the last of them
  /// possibly an `each()`). False when the unit stays on the write connection.
  fn hand_to_reader(&mut self, id: SessionId, session: &mut Session) -> bool {
    if let Some((reader, rid)) = session.streaming_on {
      if self.db.readers.next_chunk(reader) {
        session.away = true;
      } else {
        // The reader was closed under the stream (the connection changed): the stream is lost.
        session.streaming_on = None;
        let error = crate::error::Error::sqlite(
          rusqlite::ffi::SQLITE_ABORT,
          "the each() was cut: the database connection was reopened while it ran",
        );
        deliver(&session.sink, rid, Response::EachEnd { error: Some(error) });
        session.sink.flush();
      }
      return true;
    }
    let in_txn = self.owner == Some(id);
    let mut reads = Vec::new();
    while reads.len() < READS_PER_JOB {
      let Some((_, request, arrival)) = session.queue.front() else {
        break;
      };
      let guarded = *arrival >= session.guarded_from && !in_txn && !session.aborted;
      if guarded || !self.db.is_read_for_readers(session, request, in_txn) {
        break;
      }
      // Asked once per job, and only when there is a read to hand out.
      if reads.is_empty() && !self.db.readers_usable() {
        break;
      }
      let Some((rid, Request::Query { sql, params, mode }, arrival)) = session.queue.pop_front() else {
        unreachable!("is_read_for_readers takes only queries");
      };
      let each = mode == Mode::Each;
      reads.push(Read {
        id: rid,
        arrival,
        sql,
        params,
        mode,
      });
      if each {
        break;
      }
    }
    if reads.is_empty() {
      return false;
    }
    let Some(reader) = self.db.free_reader() else {
      for read in reads.into_iter().rev() {
        session.queue.push_front(read.into_request());
      }
      return false;
    };
    let job = Job::Run {
      session: id,
      reads,
      settings: session.settings,
      sink: session.sink.clone(),
      chunk_limit: session.policy.chunk_bytes_limit,
    };
    self.db.readers.send(reader, job);
    session.away = true;
    true
  }

  fn runnable(&self, id: SessionId) -> bool {
    runnable(&self.sessions, id)
  }

  /// The next session in turn that may run: while a transaction pins the connection, its owner
  /// or a session whose next unit goes to a read connection.
  fn next_runnable(&mut self) -> Option<SessionId> {
    for _ in 0..self.order.len() {
      let id = self.order.pop_front()?;
      self.order.push_back(id);
      if !self.runnable(id) {
        continue;
      }
      let owner = self.owner;
      match owner {
        Some(owner) if owner != id && !self.goes_to_reader(id) => continue,
        _ => return Some(id),
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
    self.tell_clients_of_reads();
    self.units_since_flush = 0;
    for (_, sink) in self.touched.drain(..) {
      sink.flush();
    }
  }

  /// Tells every client's session what changed for the reads it runs itself (`client_reads`):
  /// the session whose request changed it was told before its reply.
  fn tell_clients_of_reads(&mut self) {
    self.db.look_at_client_reads();
    if self.db.client_reads_version == self.client_reads_told {
      return;
    }
    self.client_reads_told = self.db.client_reads_version;
    for (id, session) in self.sessions.iter_mut() {
      let told = session.told_reads;
      self.db.tell_client_reads(session);
      if session.told_reads != told && !self.touched.iter().any(|(s, _)| s == id) {
        self.touched.push((*id, session.sink.clone()));
      }
    }
  }

  /// Runs one unit of session `id`: a chunk of its stream, or its next request. Then pins the
  /// connection to it if it left a transaction open, or unpins it if it ended one.
  fn run_unit(&mut self, id: SessionId) {
    let Some(mut session) = self.sessions.remove(&id) else {
      return;
    };
    if session.stream.is_none() && self.hand_to_reader(id, &mut session) {
      self.sessions.insert(id, session);
      return;
    }
    debug_assert!(
      self.owner.is_none() || self.owner == Some(id),
      "only reads run beside a transaction"
    );
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

  fn limit_log(&mut self) {
    self.db.limit_log(self.owner.is_some());
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
    if session.streaming_on.take().is_some() {
      self.db.readers.forget(id);
    }
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
