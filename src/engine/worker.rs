//! The engine thread: takes commands from sessions, picks whose request runs next, runs it on
//! the connection and sends the answer to that session's sink.
//!
//! Scheduling rules (docs/sessions.md): a session's requests run in the order it sent them; sessions
//! take turns, one request (or one `each()` chunk) at a time; while the connection is inside a
//! transaction that a session opened, only that session runs. An `each()` stream pauses when
//! its receiver has `WINDOW` chunks unacknowledged, so a slow reader never makes the engine
//! buffer a whole result.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::ffi;

use super::backup::{Backup, Direction};
use super::cache::StatementCache;
use super::connection::{Connection, Statement};
use super::identity::{Change, Watch};
use super::settings::{self, Settings};
use super::sqlcipher3;
use super::{is_query, is_rollback, Command, SessionId, Shared, Sink};
use crate::error::{ClusterCode, Error};
use crate::protocol::{
  BackupOp, Event, FirstResult, Key, LegacyKey, Mode, OpenOptions, Outgoing, PragmaKey, Request, Response,
  Rows, Script, ScriptResult, Setting, Shape, MESSAGE_LIMIT,
};
use crate::value::{Params, Value};

/// Rows per `each()` chunk, at most; a chunk also ends once its values pass `CHUNK_BYTES`, so
/// large rows travel a few at a time and a chunk always fits a cluster message.
const CHUNK_ROWS: usize = 512;
const CHUNK_BYTES: usize = 8 << 20;
/// Chunks a receiver may hold unacknowledged before the stream pauses.
const WINDOW: u32 = 4;
/// Prepared statements kept for one-shot queries (`db.run/get/all/each`).
const CACHE_CAPACITY: usize = 128;
/// Queries in one read group at most (see `Worker::group`).
const GROUP_UNITS: u32 = 64;

#[derive(Default, Clone, Copy)]
struct Hooks {
  trace: bool,
  profile: bool,
  change: bool,
}

struct Session {
  sink: Arc<dyn Sink>,
  /// Requests waiting, with their arrival numbers (`Worker::received`).
  queue: VecDeque<(u32, Request, u64)>,
  /// Statements of `db.prepare()`; `None` for a statement of empty SQL (valid, but it fails
  /// with `SQLITE_MISUSE: not an error` when run, as in node-sqlite3).
  statements: HashMap<u32, Option<Statement>>,
  /// Statements whose prepare failed: requests for them are dropped.
  failed: HashSet<u32>,
  opened: bool,
  readonly: bool,
  awaiting_key: bool,
  /// The connection is keyed but this session has not given the key (or gave a wrong one by
  /// `PRAGMA key`): statements that read the file fail with `SQLITE_NOTADB` and this message.
  key_gate: Option<&'static str>,
  /// Its `db.backup()`s in progress, by the id JavaScript gave them.
  backups: HashMap<u32, Backup>,
  /// Its per-Database pragmas (`foreign_keys`…), put on the connection for its statements.
  settings: Settings,
  hooks: Hooks,
  stream: Option<Stream>,
  unacked: u32,
  /// A cluster client (see `Command::Attach`).
  remote: bool,
  /// What the session was last told about its transaction (`Outgoing::Txn`).
  in_txn: bool,
  /// Its transaction was lost: statements fail with `CLUSTER_TXN_ABORTED` until `ROLLBACK`.
  aborted: bool,
  /// Requests that arrived from this number on are guarded (`Command::Guard`).
  guarded_from: u64,
}

/// An `each()` in progress. It owns its statement until the last row.
struct Stream {
  id: u32,
  stmt: Statement,
  origin: Origin,
  /// A row read but held back: with the rows before it, the chunk would have been too big
  /// for a client's message. It starts the next chunk.
  carry: Option<Vec<Value>>,
}

enum Origin {
  Cached(String),
  Prepared(u32),
}

struct Worker {
  shared: Arc<Shared>,
  conn: Option<Connection>,
  /// How the connection was opened, to reopen it after a failed deferred key.
  opened_with: Option<OpenOptions>,
  key: Option<Key>,
  /// The per-Database pragmas the connection has now (see `settings`).
  applied: Settings,
  sessions: HashMap<SessionId, Session>,
  order: VecDeque<SessionId>,
  /// The session whose transaction holds the connection.
  owner: Option<SessionId>,
  /// When the owner last finished a request (it is idle inside its transaction since).
  owner_idle_since: Instant,
  /// `transactionTimeout` of the session that opened the connection.
  transaction_timeout: Option<Duration>,
  cache: StatementCache,
  /// Sinks that received messages since the last flush.
  touched: Vec<(SessionId, Arc<dyn Sink>)>,
  units_since_flush: u32,
  /// Queries run in the open read group; 0 when there is none. Queries that run back to back
  /// (from any sessions, outside any transaction) share one read transaction, so SQLite locks
  /// and checks the file once per group instead of once per query: under fan-in that locking
  /// was about 40% of this thread's time. The group ends before anything else runs, when the
  /// engine runs out of work, and after `GROUP_UNITS` queries, so a writer in another process
  /// waits no longer than for a few queries. Only queries that arrived before the group began
  /// join it, so none misses a write committed (by any process) before it was sent.
  group: u32,
  /// Requests received so far, and how many had been when the open group began.
  received: u64,
  group_horizon: u64,
  /// `BEGIN` and `COMMIT` of read groups, prepared once per connection.
  group_sql: Option<(Statement, Statement)>,
  /// The file the connection has open, looked at again about once a second (see `identity`).
  watch: Option<Watch>,
  /// The file was deleted (or replaced by one that does not open): statements fail with this.
  gone: Option<Error>,
}

/// Sinks are flushed at least every this many units of work, so a busy engine never holds
/// answers back for long.
const FLUSH_UNITS: u32 = 32;

pub(super) fn run(commands: Receiver<Command>, shared: Arc<Shared>) {
  let mut worker = Worker {
    shared,
    conn: None,
    opened_with: None,
    key: None,
    applied: Settings::default(),
    sessions: HashMap::new(),
    order: VecDeque::new(),
    owner: None,
    owner_idle_since: Instant::now(),
    transaction_timeout: None,
    cache: StatementCache::new(CACHE_CAPACITY),
    touched: Vec::new(),
    units_since_flush: 0,
    group: 0,
    received: 0,
    group_horizon: 0,
    group_sql: None,
    watch: None,
    gone: None,
  };
  loop {
    loop {
      match commands.try_recv() {
        Ok(command) => worker.command(command),
        Err(TryRecvError::Empty) => break,
        Err(TryRecvError::Disconnected) => return worker.close_connection(),
      }
    }
    if let Some(session) = worker.next_runnable() {
      worker.run_unit(session);
      if worker.group >= GROUP_UNITS {
        worker.end_group();
      }
      worker.units_since_flush += 1;
      if worker.units_since_flush >= FLUSH_UNITS {
        worker.flush_sinks();
        // A busy engine looks at its file between bursts, not between every two requests.
        worker.look_at_file();
      }
      continue;
    }
    worker.end_group();
    worker.flush_sinks();
    worker.look_at_file();
    let deadline = match (worker.owner_deadline(), worker.watch_deadline()) {
      (Some(a), Some(b)) => Some(a.min(b)),
      (a, b) => a.or(b),
    };
    let received = match deadline {
      Some(deadline) => match commands.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Err(RecvTimeoutError::Timeout) => {
          if worker.owner_deadline().is_some_and(|d| d <= Instant::now()) {
            worker.expire_transaction();
            worker.flush_sinks();
          }
          continue;
        }
        Err(RecvTimeoutError::Disconnected) => None,
        Ok(command) => Some(command),
      },
      None => commands.recv().ok(),
    };
    match received {
      Some(command) => worker.command(command),
      None => return worker.close_connection(),
    }
  }
}

const NEEDS_KEY: &str =
  "file is not a database: it is encrypted; give its `key` (or send `PRAGMA key = '…'` first)";
const NEEDS_KEY_AT_OPEN: &str =
  "file is not a database: it is encrypted, pass its `key` (or `bits` and call db.init({ key }))";
const WRONG_KEY: &str = "file is not a database: the key given by `PRAGMA key` is wrong";

/// A `PRAGMA` that SQLite runs without reading the database (none of them reads the schema),
/// so a connection without the right key runs it too.
fn is_keyless_pragma(sql: &str) -> bool {
  const KEYLESS: &[&str] = &[
    "foreign_keys",
    "busy_timeout",
    "recursive_triggers",
    "case_sensitive_like",
    "defer_foreign_keys",
    "legacy_alter_table",
    "automatic_index",
    "query_only",
    "reverse_unordered_selects",
    "trusted_schema",
    "ignore_check_constraints",
    "read_uncommitted",
    "short_column_names",
    "full_column_names",
    "count_changes",
    "threads",
    "soft_heap_limit",
    "hard_heap_limit",
  ];
  let words: Vec<&str> = sql
    .split(|c: char| c.is_whitespace() || c == '=' || c == '(' || c == ';')
    .filter(|w| !w.is_empty())
    .collect();
  let [first, name, ..] = words.as_slice() else {
    return false;
  };
  if !first.eq_ignore_ascii_case("pragma") {
    return false;
  }
  let name = name.strip_prefix("main.").unwrap_or(name).to_ascii_lowercase();
  KEYLESS.contains(&name.as_str()) || name.starts_with("cipher_")
}

fn misuse_not_open() -> Error {
  Error::misuse("Database is not open")
}

fn deliver(sink: &Arc<dyn Sink>, id: u32, response: Response) {
  sink.send(Outgoing::Reply { id, response });
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

impl Worker {
  fn command(&mut self, command: Command) {
    match command {
      Command::Attach {
        session,
        sink,
        remote,
      } => {
        self.sessions.insert(
          session,
          Session {
            sink,
            queue: VecDeque::new(),
            statements: HashMap::new(),
            failed: HashSet::new(),
            opened: false,
            key_gate: None,
            backups: HashMap::new(),
            settings: Settings::default(),
            readonly: false,
            awaiting_key: false,
            hooks: Hooks::default(),
            stream: None,
            unacked: 0,
            remote,
            in_txn: false,
            aborted: false,
            guarded_from: u64::MAX,
          },
        );
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
          s.unacked = s.unacked.saturating_sub(1);
        }
      }
      Command::Detach { session } => {
        self.end_group();
        self.detach(session)
      }
      Command::Wake => {}
      Command::Barrier(done) => {
        self.end_group();
        let _ = done.send(());
      }
    }
  }

  fn runnable(&self, id: SessionId) -> bool {
    match self.sessions.get(&id) {
      Some(s) if s.stream.is_some() => s.unacked < WINDOW && s.sink.ready(),
      Some(s) => !s.queue.is_empty() && s.sink.ready(),
      None => false,
    }
  }

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

  fn run_unit(&mut self, id: SessionId) {
    let Some(mut session) = self.sessions.remove(&id) else {
      return;
    };
    if !self.touched.iter().any(|(s, _)| *s == id) {
      self.touched.push((id, session.sink.clone()));
    }
    // A query joins the open group only if it arrived before the group began: the group's
    // snapshot then holds everything committed before the query was sent.
    let joins = match session.queue.front() {
      Some((_, Request::Query { mode, sql, .. }, arrival)) => {
        *mode != Mode::Each && is_query(sql) && (self.group == 0 || *arrival <= self.group_horizon)
      }
      Some((_, Request::Execute { stmt, mode, .. }, arrival)) => {
        *mode != Mode::Each
          && session
            .statements
            .get(stmt)
            .is_some_and(|s| s.as_ref().is_some_and(|s| s.query))
          && (self.group == 0 || *arrival <= self.group_horizon)
      }
      _ => false,
    };
    if session.stream.is_some() || session.aborted || !joins {
      self.end_group();
    }
    self.set_running(id);
    let keep = if session.stream.is_some() {
      self.continue_stream(&mut session);
      true
    } else if let Some((rid, request, arrival)) = session.queue.pop_front() {
      // An aborted session still gets its CLUSTER_TXN_ABORTED answers here: the next master
      // would not know that its transaction was lost.
      if arrival >= session.guarded_from && self.owner != Some(id) && !session.aborted {
        session.sink.send(Outgoing::NotRun { id: rid });
        true
      } else {
        self.handle(id, &mut session, rid, request)
      }
    } else {
      true
    };
    self.set_running(0);
    if keep {
      self.sessions.insert(id, session);
    }
    if self.group > 0 && self.conn.as_ref().is_none_or(|c| c.is_autocommit()) {
      self.group = 0; // SQLite rolled the group back itself (an I/O error, say)
    }
    if let Some(conn) = &self.conn {
      if conn.is_autocommit() || self.group > 0 {
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
    let timeout = self.transaction_timeout?;
    (!self.runnable(owner)).then_some(self.owner_idle_since + timeout)
  }

  /// `transactionTimeout`: rolls back the idle owner's transaction and marks it aborted.
  fn expire_transaction(&mut self) {
    let Some(id) = self.owner.take() else { return };
    if let Some(conn) = &self.conn {
      if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
      }
    }
    let Some(mut session) = self.sessions.remove(&id) else {
      return;
    };
    self.touched.push((id, session.sink.clone()));
    if let Some(stream) = session.stream.take() {
      deliver(
        &session.sink,
        stream.id,
        Response::EachEnd {
          error: Some(txn_aborted()),
        },
      );
      self.end_stream(&mut session, stream);
    }
    session.aborted = true;
    self.sync_txn(&mut session);
    self.sessions.insert(id, session);
  }

  /// Tells the session when its transaction state changed (before the reply that follows).
  fn sync_txn(&self, session: &mut Session) {
    let now = self.group == 0 && self.conn.as_ref().is_some_and(|c| !c.is_autocommit()) && !session.aborted;
    if now != session.in_txn {
      session.in_txn = now;
      session.sink.send(Outgoing::Txn(now));
    }
  }

  /// The SQL a request would run, for the aborted-session rule, and its result mode
  /// (`None` for `exec`).
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

  /// Sends the hook events the last step produced (those this session asked for) and any change
  /// of its transaction state, then `response`.
  fn reply(&mut self, session: &mut Session, id: u32, response: Response) {
    self.flush_events(session);
    self.sync_txn(session);
    deliver(&session.sink, id, response);
  }

  fn flush_events(&mut self, session: &Session) {
    let Some(conn) = self.conn.as_mut() else { return };
    for event in conn.take_events() {
      let wanted = match event {
        Event::Trace(_) => session.hooks.trace,
        Event::Profile { .. } => session.hooks.profile,
        Event::Change { .. } => session.hooks.change,
      };
      if wanted {
        session.sink.send(Outgoing::Event(event));
      }
    }
  }

  /// Runs one request. Returns false when the session ended (closed).
  fn handle(&mut self, id: SessionId, session: &mut Session, rid: u32, request: Request) -> bool {
    if !session.opened && session.remote && self.conn.is_none() {
      // A master without its connection is closing (or its own open failed, and it hands over
      // next): the client sends this session's requests to the next master.
      session.sink.send(Outgoing::NotRun { id: rid });
      return true;
    }
    if let Request::Open(options) = request {
      let response = match self.open(session, options) {
        Ok(()) => Response::Done,
        Err(e) => Response::Error(e),
      };
      self.reply(session, rid, response);
      return true;
    }
    if !session.opened || self.conn.is_none() {
      self.reply(session, rid, Response::Error(misuse_not_open()));
      return true;
    }
    if let Some(gone) = &self.gone {
      if Self::needs_file(&request) {
        let gone = gone.clone();
        self.reply(session, rid, Response::Error(gone));
        return true;
      }
    }
    if let Request::Abort = request {
      session.aborted = true;
      self.reply(session, rid, Response::Done);
      return true;
    }
    if session.aborted {
      if let Some((sql, mode)) = Self::statement_of(session, &request) {
        if !is_rollback(&sql) {
          self.reply(session, rid, Response::Error(txn_aborted()));
          return true;
        }
        session.aborted = false;
        if self.conn().is_autocommit() {
          let response = empty_success(mode, self.conn().last_insert_rowid());
          self.reply(session, rid, response);
          return true;
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
      return true;
    }
    if let Some(reason) = session.key_gate {
      if !Self::passes_key_gate(session, &request) {
        self.reply(
          session,
          rid,
          Response::Error(Error::sqlite(ffi::SQLITE_NOTADB, reason)),
        );
        return true;
      }
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
      Request::Query { sql, params, mode } => self.query(session, rid, sql, params, mode),
      Request::Prepare { stmt, sql } => match self.conn().prepare(&sql) {
        Ok(prepared) => {
          session.statements.insert(stmt, prepared);
          Some(Response::Done)
        }
        Err(e) => {
          session.failed.insert(stmt);
          Some(Response::Error(e))
        }
      },
      Request::Execute { stmt, params, mode } => self.execute(session, rid, stmt, params, mode),
      Request::Bind { stmt, params } => Some(match session.statements.get_mut(&stmt) {
        None => Response::Dropped,
        Some(None) if params.is_none() => Response::Done,
        Some(None) => Response::Error(Error::sqlite(ffi::SQLITE_RANGE, "column index out of range")),
        // node-sqlite3 reports the statement's last status when bind() has nothing to bind.
        Some(Some(s))
          if params.is_none() && (s.status == ffi::SQLITE_ROW || s.status == ffi::SQLITE_DONE) =>
        {
          Response::Error(Error::sqlite(s.status, ""))
        }
        Some(Some(s)) => match s.bind(&params) {
          Ok(()) => Response::Done,
          Err(e) => Response::Error(e),
        },
      }),
      Request::Reset { stmt } => Some(match session.statements.get_mut(&stmt) {
        None => Response::Dropped,
        Some(s) => {
          if let Some(s) = s {
            s.reset();
          }
          Response::Done
        }
      }),
      Request::Finalize { stmt } => Some(if session.failed.remove(&stmt) {
        Response::Dropped
      } else {
        session.statements.remove(&stmt);
        Response::Done
      }),
      Request::Exec { sql } => Some(match self.exec(session, &sql) {
        Ok(()) => Response::Done,
        Err(e) => Response::Error(e),
      }),
      Request::Configure(setting) => {
        self.configure(session, setting);
        Some(Response::Done)
      }
      Request::Key(key, legacy) => Some(match self.deferred_key(session, key, legacy) {
        Ok(()) => Response::Done,
        Err(e) => Response::Error(e),
      }),
      Request::LoadExtension { .. } if session.remote => Some(Response::Error(Error::sqlite(
        ffi::SQLITE_ERROR,
        "loadExtension is not available to cluster clients: load extensions in the master process",
      ))),
      Request::LoadExtension { path } => Some(match self.conn().load_extension(&path) {
        Ok(()) => Response::Done,
        Err(e) => Response::Error(e),
      }),
      Request::Wait => Some(Response::Done),
      Request::Script(script) => Some(Response::Script(self.script(session, script))),
      Request::Export => Some(match self.conn().serialize() {
        Ok(bytes) => Response::Bytes(bytes),
        Err(e) => Response::Error(e),
      }),
      Request::Close => {
        if !session.statements.is_empty() || session.backups.values().any(Backup::is_live) {
          let e = Error::sqlite(
            ffi::SQLITE_BUSY,
            "unable to close due to unfinalized statements or unfinished backups",
          );
          Some(Response::Error(e))
        } else {
          self.flush_events(session);
          self.end_session(id, session);
          deliver(&session.sink, rid, Response::Done);
          return false;
        }
      }
    };
    if let (Some(sql), Some(conn)) = (pragma_sql, &self.conn) {
      session.settings = Settings::read(conn, &sql, session.settings);
      self.applied = session.settings;
    }
    if let Some(response) = response {
      self.reply(session, rid, response);
    }
    true
  }

  fn conn(&self) -> &Connection {
    self.conn.as_ref().expect("checked by handle()")
  }

  fn open(&mut self, session: &mut Session, options: OpenOptions) -> Result<(), Error> {
    if session.remote {
      // A client joins the master's connection; its own key (if any) stays in its process.
      if self.conn.is_none() {
        return Err(Error::Cluster {
          code: ClusterCode::MasterLost,
          message:
            "the master has not got the database open (its own open failed, or it is closing); try again"
              .into(),
        });
      }
      session.opened = true;
      session.readonly = options.flags & ffi::SQLITE_OPEN_READONLY != 0;
      session.awaiting_key = self.key.is_none() && self.opened_with.as_ref().is_some_and(|o| o.deferred_key);
      // A client without a key is served, as 1.x served its workers: processes of the same user
      // are trusted (`secret` keeps out the others); its `PRAGMA key`, if it sends one, is checked.
      return Ok(());
    }
    if self.conn.is_none() {
      let conn = match &options.key {
        Some(key) => self.open_keyed(&options, key, options.legacy.as_ref())?,
        None => {
          let conn = self.open_connection(&options)?;
          if !options.deferred_key {
            // An encrypted file opens without its key, as with node-sqlite3: reads fail with
            // SQLITE_NOTADB until a `PRAGMA key` (the ORMs' route) keys the connection.
            match conn.verify_readable(false) {
              Err(e) if options.strict_key || e.errno() != ffi::SQLITE_NOTADB => return Err(e),
              _ => {}
            }
          }
          conn
        }
      };
      self.key = options.key.clone();
      self.transaction_timeout = (options.transaction_timeout_ms > 0)
        .then(|| Duration::from_millis(options.transaction_timeout_ms.into()));
      self.conn = Some(conn);
      self.publish_handle();
      self.watch = Watch::new(&options.filename);
      self.gone = None;
    } else if let (Some(key), None) = (&options.key, &self.key) {
      // The connection was opened without a key (a Database waiting for its `PRAGMA key`):
      // this key keys it if it opens the file.
      let filename = &self
        .opened_with
        .as_ref()
        .expect("the connection is open")
        .filename;
      if !(super::prove_key(filename, key, options.verbose) && self.conn().apply_key(key).is_ok()) {
        return Err(Error::sqlite(
          ffi::SQLITE_NOTADB,
          "file is not a database: the key is wrong, or the file is not a SQLCipher database",
        ));
      }
      self.key = Some(key.clone());
    } else if options.key.is_some() && options.key != self.key {
      return Err(Error::sqlite(
        ffi::SQLITE_NOTADB,
        "file is not a database: the key is wrong (this process has the file open with another key)",
      ));
    } else if options.key.is_none() && self.key.is_some() && !options.deferred_key {
      if options.strict_key {
        return Err(Error::sqlite(ffi::SQLITE_NOTADB, NEEDS_KEY_AT_OPEN));
      }
      // As on a connection of its own: it opens, and reads fail until it gives the key.
      session.key_gate = Some(NEEDS_KEY);
    }
    session.opened = true;
    session.readonly = options.flags & ffi::SQLITE_OPEN_READONLY != 0;
    session.awaiting_key = options.deferred_key && options.key.is_none();
    if self.opened_with.is_none() {
      self.opened_with = Some(options);
    }
    Ok(())
  }

  /// A new connection to the file, set up as the engine needs it (interrupts, quiet SQLCipher).
  fn open_connection(&self, options: &OpenOptions) -> Result<Connection, Error> {
    let mut conn = Connection::open(&options.filename, options.flags, options.busy_timeout_ms)?;
    conn.watch_interrupts(self.shared.interrupted.clone());
    if !options.verbose {
      // SQLCipher logs a failed HMAC check on stderr; the error itself is reported anyway.
      let _ = conn.execute_batch("PRAGMA cipher_log_level = NONE");
    }
    Ok(conn)
  }

  /// A new connection keyed with `key`. A file this key does not open, but `legacy` (the way
  /// 1.x applied it) does, is a 1.x file: it is moved to SQLCipher 4 once, then opened.
  fn open_keyed(
    &self,
    options: &OpenOptions,
    key: &Key,
    legacy: Option<&LegacyKey>,
  ) -> Result<Connection, Error> {
    let conn = self.open_connection(options)?;
    let error = match conn.apply_key(key) {
      Ok(()) => return Ok(conn),
      Err(e) => e,
    };
    drop(conn);
    let Some(legacy) = legacy.filter(|_| error.errno() == ffi::SQLITE_NOTADB) else {
      return Err(error);
    };
    if !sqlcipher3::migrate(Path::new(&options.filename), key, legacy)? {
      return Err(error);
    }
    let conn = self.open_connection(options)?;
    conn.apply_key(key)?;
    Ok(conn)
  }

  /// A new connection (or none): tells `interrupt()` which handle to stop, and forgets the
  /// per-Database settings the old connection had.
  fn publish_handle(&mut self) {
    self.applied = Settings::default();
    let mut target = self.shared.interrupt.lock().unwrap_or_else(|e| e.into_inner());
    target.open = self.conn.is_some();
  }

  /// One operation of a session's `db.backup()`.
  fn backup(&mut self, session: &mut Session, op: BackupOp) -> Result<Response, Error> {
    match op {
      BackupOp::Start {
        backup,
        filename,
        source_name,
        dest_name,
        filename_is_dest,
      } => {
        let direction = Direction {
          filename: &filename,
          source_name: &source_name,
          dest_name: &dest_name,
          filename_is_dest,
        };
        if !filename_is_dest && session.readonly {
          return Err(Error::sqlite(
            ffi::SQLITE_READONLY,
            "attempt to write a readonly database",
          ));
        }
        let started = Backup::start(self.conn(), &direction, self.key.as_ref())?;
        session.backups.insert(backup, started);
        Ok(Response::Done)
      }
      BackupOp::Step { backup, pages, retry } => {
        let job = session
          .backups
          .get_mut(&backup)
          .ok_or_else(|| Error::misuse("Backup is already finished"))?;
        let progress = job.step(pages, &retry);
        Ok(Response::Backup {
          done: progress.done,
          remaining: progress.remaining,
          page_count: progress.page_count,
          error: progress.error,
        })
      }
      BackupOp::Finish { backup } => {
        session.backups.remove(&backup);
        Ok(Response::Done)
      }
    }
  }

  /// A session's `PRAGMA key`: it keys a connection that has no key yet, if it opens the file
  /// (tried on a connection of its own first, so that a wrong key disturbs nobody); otherwise
  /// it must be the connection's key. A wrong key closes the session's gate, never the pragma.
  fn pragma_key(&mut self, session: &mut Session, pragma: PragmaKey) {
    let right = match pragma {
      PragmaKey::Checked(right) => right,
      PragmaKey::Given(key) => match &self.key {
        Some(existing) => *existing == key,
        None => {
          let options = self.opened_with.as_ref().expect("a session is open");
          let right =
            super::prove_key(&options.filename, &key, options.verbose) && self.conn().apply_key(&key).is_ok();
          if right {
            self.key = Some(key);
          }
          right
        }
      },
    };
    session.key_gate = (!right).then_some(WRONG_KEY);
    if right {
      session.awaiting_key = false;
    }
  }

  /// What a session without the key may still run: closing, waiting, settings, and the
  /// pragmas that do not read the file (ORMs send `PRAGMA foreign_keys = ON` right after the
  /// key, without a callback). Everything else would read the file.
  fn passes_key_gate(session: &Session, request: &Request) -> bool {
    match request {
      Request::PragmaKey(_)
      | Request::Key(..)
      | Request::Close
      | Request::Wait
      | Request::Configure(_)
      | Request::Reset { .. }
      | Request::Finalize { .. }
      | Request::Bind { .. } => true,
      Request::Query { sql, .. } | Request::Exec { sql } | Request::Prepare { sql, .. } => {
        is_keyless_pragma(sql)
      }
      Request::Execute { stmt, .. } => session
        .statements
        .get(stmt)
        .is_some_and(|s| s.as_ref().is_some_and(|s| is_keyless_pragma(&s.sql()))),
      _ => false,
    }
  }

  /// `db.init({ key })` for a session opened with `bits` and no key.
  fn deferred_key(
    &mut self,
    session: &mut Session,
    key: Key,
    legacy: Option<LegacyKey>,
  ) -> Result<(), Error> {
    if !session.awaiting_key {
      return Ok(());
    }
    if let Some(existing) = &self.key {
      if *existing != key {
        return Err(Error::sqlite(
          ffi::SQLITE_NOTADB,
          "file is not a database: the key is wrong",
        ));
      }
    } else if let Err(e) = self.conn().apply_key(&key) {
      // A connection that saw a wrong key is reopened clean before the next attempt.
      self.cache.clear();
      self.group = 0;
      self.group_sql = None;
      self.conn = None;
      self.publish_handle();
      if let Some(options) = self.opened_with.clone() {
        if legacy.is_some() && e.errno() == ffi::SQLITE_NOTADB {
          // Perhaps a 1.x file: keyed the 1.x way, it is moved to SQLCipher 4 and opens.
          if let Ok(conn) = self.open_keyed(&options, &key, legacy.as_ref()) {
            self.conn = Some(conn);
            self.publish_handle();
            self.key = Some(key);
            session.awaiting_key = false;
            return Ok(());
          }
        }
        self.conn = Some(self.open_connection(&options)?);
        self.publish_handle();
      }
      return Err(e);
    } else {
      self.key = Some(key);
    }
    session.awaiting_key = false;
    Ok(())
  }

  fn configure(&mut self, session: &mut Session, setting: Setting) {
    let conn = self.conn.as_mut().expect("checked by handle()");
    match setting {
      Setting::BusyTimeout(ms) => conn.set_busy_timeout(ms),
      Setting::Limit { id, value } => conn.set_limit(id, value),
      Setting::Trace(on) => session.hooks.trace = on,
      Setting::Profile(on) => session.hooks.profile = on,
      Setting::Change(on) => session.hooks.change = on,
    }
    if matches!(
      setting,
      Setting::Trace(_) | Setting::Profile(_) | Setting::Change(_)
    ) {
      self.update_hooks(session);
    }
  }

  /// Turns each connection hook on while any session (this one included) wants it.
  fn update_hooks(&mut self, current: &Session) {
    let mut wanted = current.hooks;
    for s in self.sessions.values() {
      wanted.trace |= s.hooks.trace;
      wanted.profile |= s.hooks.profile;
      wanted.change |= s.hooks.change;
    }
    if let Some(conn) = self.conn.as_mut() {
      conn.set_hooks(wanted.trace, wanted.profile, wanted.change);
    }
  }

  fn check_writable(readonly: bool, stmt: &Statement) -> Result<(), Error> {
    if readonly && !stmt.readonly() {
      return Err(Error::sqlite(
        ffi::SQLITE_READONLY,
        "attempt to write a readonly database",
      ));
    }
    Ok(())
  }

  /// A one-shot statement through the statement cache.
  fn query(
    &mut self,
    session: &mut Session,
    rid: u32,
    sql: String,
    params: Params,
    mode: Mode,
  ) -> Option<Response> {
    let mut stmt = match self.cache.take(&sql) {
      Some(stmt) => stmt,
      None => match self.conn().prepare(&sql) {
        Ok(Some(stmt)) => stmt,
        Ok(None) => return Some(Response::Error(Error::misuse("not an error"))),
        Err(e) => return Some(Response::PrepareError(e)),
      },
    };
    let result = Self::check_writable(session.readonly, &stmt).and_then(|()| stmt.bind(&params));
    if let Err(e) = result {
      self.recycle(sql, stmt);
      return Some(Response::Error(e));
    }
    self.group_for(session, stmt.query && mode != Mode::Each);
    if mode == Mode::Each {
      session.stream = Some(Stream {
        id: rid,
        stmt,
        origin: Origin::Cached(sql),
        carry: None,
      });
      self.continue_stream(session);
      return None;
    }
    let response = self.step(&mut stmt, mode);
    self.recycle(sql, stmt);
    Some(response)
  }

  /// Returns a one-shot statement to the cache, reset and unbound.
  fn recycle(&mut self, sql: String, mut stmt: Statement) {
    stmt.reset();
    stmt.clear_bindings();
    self.cache.put(sql, stmt);
  }

  /// Before a statement runs: a plain query (`query`) joins the read group, or opens one when
  /// more work waits; anything else ends the group.
  fn group_for(&mut self, session: &Session, query: bool) {
    if self.group > 0 || (self.owner.is_none() && self.more_work(session)) {
      if query && !session.aborted {
        self.join_group();
      } else {
        self.end_group();
      }
    }
  }

  /// Whether anything besides `session`'s current request waits to run.
  fn more_work(&self, session: &Session) -> bool {
    !session.queue.is_empty() || self.order.iter().any(|id| self.runnable(*id))
  }

  /// Adds the query about to run to the read group, opening one if needed. Without a group
  /// (hooks on, a transaction open, a writing statement still active, or `BEGIN` failing) the
  /// query runs on its own as usual. A writing statement would make the group's `COMMIT` fail
  /// (and it would own that write); none can start inside a group, since anything but a query
  /// ends the group first.
  fn join_group(&mut self) {
    if self.group > 0 {
      self.group += 1;
      return;
    }
    let Some(conn) = self.conn.as_mut() else { return };
    if conn.hooked() || !conn.is_autocommit() || conn.writing() {
      return;
    }
    if self.group_sql.is_none() {
      let begin = conn.prepare("BEGIN DEFERRED");
      let commit = conn.prepare("COMMIT");
      if let (Ok(Some(begin)), Ok(Some(commit))) = (begin, commit) {
        self.group_sql = Some((begin, commit));
      }
    }
    let Some((begin, _)) = self.group_sql.as_mut() else {
      return;
    };
    let rc = begin.step();
    begin.reset();
    if rc == ffi::SQLITE_DONE {
      self.group = 1;
      self.group_horizon = self.received;
    }
  }

  /// Ends the read group, if one is open.
  fn end_group(&mut self) {
    if std::mem::take(&mut self.group) == 0 {
      return;
    }
    let (Some(conn), Some((_, commit))) = (self.conn.as_ref(), self.group_sql.as_mut()) else {
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

  /// `Statement#run/get/all/each` on a prepared statement.
  fn execute(
    &mut self,
    session: &mut Session,
    rid: u32,
    id: u32,
    params: Params,
    mode: Mode,
  ) -> Option<Response> {
    let readonly = session.readonly;
    let query = mode != Mode::Each && matches!(session.statements.get(&id), Some(Some(s)) if s.query);
    self.group_for(session, query);
    let Some(slot) = session.statements.get_mut(&id) else {
      return Some(Response::Dropped);
    };
    let Some(stmt) = slot else {
      return Some(Response::Error(Error::misuse("not an error")));
    };
    if let Err(e) = Self::check_writable(readonly, stmt) {
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
      session.stream = Some(Stream {
        id: rid,
        stmt,
        origin: Origin::Prepared(id),
        carry: None,
      });
      self.continue_stream(session);
      return None;
    }
    let conn = self.conn.as_ref().expect("checked by handle()");
    Some(Self::step_with(conn, stmt, mode))
  }

  fn step(&mut self, stmt: &mut Statement, mode: Mode) -> Response {
    let conn = self.conn.as_ref().expect("checked by handle()");
    Self::step_with(conn, stmt, mode)
  }

  fn step_with(conn: &Connection, stmt: &mut Statement, mode: Mode) -> Response {
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

  /// Produces the next chunk of the session's `each()` stream, or ends it.
  fn continue_stream(&mut self, session: &mut Session) {
    let Some(mut stream) = session.stream.take() else {
      return;
    };
    let shape = stream.stmt.shape();
    let width = shape.columns.len();
    let mut values = Vec::with_capacity(width * 64);
    let mut rows = 0;
    let mut bytes = 0;
    // A chunk for a client must fit one message.
    let limit = if session.remote {
      MESSAGE_LIMIT - (1 << 20)
    } else {
      usize::MAX
    };
    let mut end: Option<Option<Error>> = None;
    while rows < CHUNK_ROWS && bytes < CHUNK_BYTES {
      let start = values.len();
      if let Some(row) = stream.carry.take() {
        values.extend(row);
      } else {
        match stream.stmt.advance() {
          Ok(true) => stream.stmt.read_row(width, &mut values),
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
          stream.carry = Some(values.split_off(start)); // the rows before it go now
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
    if rows > 0 {
      self.flush_events(session);
      deliver(&session.sink, stream.id, Response::Chunk(Rows { shape, values }));
      session.unacked += 1;
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
  fn end_stream(&mut self, session: &mut Session, stream: Stream) {
    match stream.origin {
      Origin::Cached(sql) => self.recycle(sql, stream.stmt),
      Origin::Prepared(id) => {
        session.statements.insert(id, Some(stream.stmt));
      }
    }
  }

  /// `db.exec()`: every statement of the script, in order; stops at the first error and keeps
  /// what ran before it (no implicit transaction), as `sqlite3_exec` does.
  fn exec(&mut self, session: &Session, sql: &str) -> Result<(), Error> {
    let conn = self.conn.as_ref().expect("checked by handle()");
    let mut rest = sql;
    while let Some((stmt, tail)) = conn.prepare_one(rest)? {
      if let Some(mut stmt) = stmt {
        Self::check_writable(session.readonly, &stmt)?;
        while stmt.advance()? {}
      }
      // As sqlite3_exec: the next statement starts after the whitespace that follows this one.
      rest = tail.trim_start();
    }
    Ok(())
  }

  /// Worker1's `exec` (see `protocol::Script`).
  fn script(&mut self, session: &Session, script: Script) -> ScriptResult {
    let conn = self.conn.as_ref().expect("checked by handle()");
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
        Self::check_writable(session.readonly, &stmt)?;
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

  fn detach(&mut self, id: SessionId) {
    if let Some(mut session) = self.sessions.remove(&id) {
      self.end_session(id, &mut session);
    }
  }

  /// Forgets a session: rolls back the transaction it left open, drops its statements, and
  /// closes the connection when it was the last one.
  fn end_session(&mut self, id: SessionId, session: &mut Session) {
    session.stream = None;
    session.statements.clear();
    session.backups.clear();
    self.order.retain(|s| *s != id);
    if self.owner == Some(id) {
      self.owner = None;
      if let Some(conn) = &self.conn {
        if !conn.is_autocommit() {
          let _ = conn.execute_batch("ROLLBACK");
        }
      }
    }
    if session.hooks.trace || session.hooks.profile || session.hooks.change {
      session.hooks = Hooks::default();
      self.update_hooks(session);
    }
    if self.sessions.is_empty() {
      self.close_connection();
    }
  }

  fn close_connection(&mut self) {
    for session in self.sessions.values_mut() {
      session.stream = None;
      session.statements.clear();
      session.backups.clear();
    }
    self.cache.clear();
    self.group = 0;
    self.group_sql = None;
    self.conn = None;
    self.key = None;
    self.opened_with = None;
    self.watch = None;
    self.gone = None;
    self.publish_handle();
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

  /// Whether the path may be looked at now: between transactions and read groups, with no
  /// cursor or backup that a reopen would cut.
  fn file_may_change(&self) -> bool {
    self.owner.is_none()
      && self.group == 0
      && self
        .sessions
        .values()
        .all(|s| s.stream.is_none() && !s.backups.values().any(Backup::is_live))
  }

  /// When the engine, idle, should wake up to look at the path.
  fn watch_deadline(&self) -> Option<Instant> {
    let watch = self.watch.as_ref()?;
    self.file_may_change().then(|| watch.due())
  }

  /// Looks at the path when it is time: a replaced file is opened in place of the old one, a
  /// deleted one fails what needs it (see `identity`).
  fn look_at_file(&mut self) {
    match &self.watch {
      Some(watch) if Instant::now() >= watch.due() => {}
      _ => return,
    }
    self.end_group();
    if !self.file_may_change() {
      return;
    }
    let Some(watch) = self.watch.as_mut() else { return };
    match watch.check(Instant::now()) {
      Change::Same if self.gone.is_none() => {}
      // Same identity after a deletion: the inode number was reused by a new file.
      Change::Same | Change::Replaced => {
        if let Err(e) = self.reopen() {
          let path = self
            .watch
            .as_ref()
            .map(|w| w.path().display().to_string())
            .unwrap_or_default();
          self.gone = Some(Error::sqlite(
            e.errno(),
            format!(
              "{} (the database file {path} was replaced while open, and the new file does not open)",
              e.message()
            ),
          ));
        }
      }
      Change::Deleted => {
        let path = watch.path().display().to_string();
        self.gone = Some(Error::sqlite(
          ffi::SQLITE_CANTOPEN,
          format!(
            "unable to open database file: {path} was deleted while open; put a database back at that path (it is opened within a second) or close the Database"
          ),
        ));
      }
    }
  }

  /// Opens the file now at the path in place of the connection's (with its key and hooks), and
  /// prepares every session's statements again on it. Bindings are not carried over.
  fn reopen(&mut self) -> Result<(), Error> {
    let Some(options) = self.opened_with.clone() else {
      return Ok(());
    };
    let fresh = match &self.key {
      Some(key) => self.open_keyed(&options, key, None)?,
      None => self.open_connection(&options)?,
    };
    // Every statement of the old connection is finalized before it closes.
    let mut again: Vec<(SessionId, u32, String)> = Vec::new();
    let mut hooks = Hooks::default();
    for (sid, session) in self.sessions.iter_mut() {
      hooks.trace |= session.hooks.trace;
      hooks.profile |= session.hooks.profile;
      hooks.change |= session.hooks.change;
      for (id, statement) in session.statements.iter_mut() {
        if let Some(statement) = statement.take() {
          again.push((*sid, *id, statement.sql()));
        }
      }
    }
    self.cache.clear();
    self.group_sql = None;
    self.conn = Some(fresh);
    self.publish_handle();
    self.gone = None;
    if let Some(watch) = self.watch.as_mut() {
      watch.reopened();
    }
    let conn = self.conn.as_mut().expect("just opened");
    conn.set_hooks(hooks.trace, hooks.profile, hooks.change);
    for (sid, id, sql) in again {
      let prepared = conn.prepare(&sql);
      let Some(session) = self.sessions.get_mut(&sid) else {
        continue;
      };
      match prepared {
        Ok(prepared) => {
          session.statements.insert(id, prepared);
        }
        Err(_) => {
          session.statements.remove(&id);
          session.failed.insert(id);
        }
      }
    }
    Ok(())
  }
}
