//! A Database's session on a dqlite cluster: the `Backend` behind a `dqlite://` filename
//! (docs/dqlite.md#sessions).
//!
//! Each session has a thread and a connection to the leader (`connection.rs`); its requests run
//! one at a time, in order, and their answers go to its sink as the local engine's do. Most
//! statements are sent and answered on the JavaScript thread instead (`direct`): the thread
//! keeps what may wait.
//! What dqlite leaves to its clients is done here:
//!
//! - **Statements by kind** (`statement.rs`): queries through QUERY_SQL, the rest through
//!   EXEC_SQL; a write with `RETURNING` and a statement followed by another are refused.
//! - **`busyTimeout`.** dqlite answers a second writer "database is locked" at once (it has no
//!   busy handler), so a `SQLITE_BUSY` answer is sent again after a short, growing wait until
//!   `busyTimeout` has passed since the first one. Nothing ran when BUSY is answered.
//! - **Transactions.** dqlite does not report whether a connection is inside a transaction, so
//!   the session follows its own `BEGIN`, `COMMIT` and `ROLLBACK`. A bare `BEGIN` is sent as
//!   `BEGIN IMMEDIATE`: the write lock is taken at once, and two sessions' transactions queue
//!   on BUSY at their `BEGIN` instead of failing later with `SQLITE_BUSY_SNAPSHOT`.
//! - **A lost leader.** A request refused by a node that is not the leader (`NOT_LEADER`, or
//!   1.11's "no database opened" after it led again) did not run: it goes to the new leader, as
//!   does a request whose connection was found closed before it was sent. A read whose
//!   connection was lost is sent again too. A write whose connection was lost, or whose leader
//!   lost its leadership while committing it (`LEADERSHIP_LOST`), may or may not have run, so
//!   it fails with `CLUSTER_MASTER_LOST` and is never sent again. Any loss
//!   inside a transaction takes the transaction with it: the session's statements then fail with
//!   `CLUSTER_TXN_ABORTED` until it sends `ROLLBACK` (answered here).

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::ffi;

use super::connection::{Connection, Outcome};
use super::shapes::Shapes;
use super::statement::{self, Kind, Parameters};
use super::stored::{self, Lands, Typed};
use super::wire::{Request as Wire, Response as Answer};
use crate::backend::Backend;
use crate::engine::{begins_transaction, first_word, is_rollback, Sink};
use crate::error::{ClusterCode, Error};
use crate::js::event_loop::{EventLoop, Watch};
use crate::protocol::{
  Event, FirstResult, Mode, Outgoing, Request, Response, Rows, Script, ScriptResult, Setting, Shape,
  SCRIPT_ERROR,
};
use crate::value::{ParamKey, Params, Value};

mod direct;
use direct::Pending;

/// `SQLITE_IOERR_NOT_LEADER`: refused before running, by a node that does not lead.
const NOT_LEADER: u64 = 10 | (40 << 8);
/// `SQLITE_IOERR_LEADERSHIP_LOST`: the write was handed to Raft, then leadership went: it may
/// still commit.
const LEADERSHIP_LOST: u64 = 10 | (41 << 8);
/// How long finding a leader may take, at open and after a loss.
const FIND_LEADER_WITHIN: Duration = Duration::from_secs(10);
/// How long a node may take to answer one request.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// `each()` chunks sent ahead of the receiver's acknowledgements, at most, and rows per chunk.
const WINDOW: u32 = 4;
const CHUNK_ROWS: usize = 256;
/// How many times a request refused by a node that does not lead goes to the next leader.
const RESENDS: u32 = 5;

/// A Database on a dqlite cluster.
pub struct DqliteSession {
  shared: Arc<Shared>,
  window: Arc<Window>,
}

enum Job {
  Run(u32, Request),
  /// A statement that the JavaScript thread began (`direct`), for the session's thread to
  /// finish: from its start, or from the answer (or loss) it met.
  Resume(Pending, Option<Outcome<Answer>>),
  /// The session leaves: its connection closes (a transaction left open is rolled back by the
  /// leader), then `done` runs.
  Leave(Box<dyn FnOnce() + Send>),
}

/// What the session's thread and the JavaScript thread share. Locks are taken in this order:
/// `turn`, then `worker`.
struct Shared {
  turn: Mutex<Turn>,
  /// Wakes the session's thread: a job for it, the end, or a second to check the time.
  wake: Condvar,
  worker: Mutex<Worker>,
  sink: Arc<dyn Sink>,
  /// The JavaScript thread's loop, where answers can be read without the session's thread
  /// (`direct`); `None` outside Node.
  event_loop: Option<EventLoop>,
}

/// Whose turn it is to run the session's requests, and those waiting.
struct Turn {
  jobs: VecDeque<Job>,
  runner: Runner,
  /// The session is gone: its thread ends.
  ended: bool,
  /// The watch on the connection's socket, with the number of the connection it watches
  /// (`Worker::connections`). Made, started, stopped and dropped on the JavaScript thread only.
  watch: Option<(u64, Watch)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runner {
  /// Nothing runs; no job waits.
  Idle,
  /// The session's thread runs the jobs, until none is left.
  Thread,
  /// A statement sent by the JavaScript thread is waiting for its answer there, since `since`.
  EventLoop { since: Instant },
}

/// The `each()` window: chunks delivered and not acknowledged yet, and whether the session left.
#[derive(Default)]
struct Window {
  state: Mutex<(u32, bool)>,
  changed: Condvar,
}

impl Window {
  /// Waits until one more chunk may be delivered; false once the session has left.
  fn acquire(&self) -> bool {
    let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
    while state.0 >= WINDOW && !state.1 {
      state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
    }
    state.0 += 1;
    !state.1
  }

  fn release(&self) {
    let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
    state.0 = state.0.saturating_sub(1);
    self.changed.notify_all();
  }

  fn close(&self) {
    self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
    self.changed.notify_all();
  }
}

impl DqliteSession {
  /// A session whose answers go to `sink`; its first request must be its `Open`. With
  /// `event_loop` (the JavaScript thread's, on which every call to the session is then made),
  /// answers to statements are read on that thread when they can be (`direct`).
  pub fn start(sink: Arc<dyn Sink>, event_loop: Option<EventLoop>) -> DqliteSession {
    let window = Arc::new(Window::default());
    let worker = Worker {
      sink: sink.clone(),
      target: None,
      conn: None,
      connections: 0,
      busy_timeout: Duration::ZERO,
      txn: Txn::None,
      window: window.clone(),
      last: (0, 0),
      statements: HashMap::new(),
      streaming: None,
      shapes: Shapes::default(),
      leader: None,
      typed: HashMap::new(),
      pending: None,
    };
    let shared = Arc::new(Shared {
      turn: Mutex::new(Turn {
        jobs: VecDeque::new(),
        runner: Runner::Idle,
        ended: false,
        watch: None,
      }),
      wake: Condvar::new(),
      worker: Mutex::new(worker),
      sink,
      event_loop,
    });
    let serving = shared.clone();
    let started = std::thread::Builder::new()
      .name("sqlite3-cluster dqlite session".into())
      .spawn(move || serving.serve());
    if started.is_err() {
      // Every request is answered with the error (`send`).
      shared.turn().ended = true;
    }
    DqliteSession { shared, window }
  }
}

impl Backend for DqliteSession {
  fn send(&self, id: u32, request: Request) {
    let mut turn = self.shared.turn();
    if turn.ended {
      drop(turn);
      let error = Error::sqlite(ffi::SQLITE_MISUSE, "the dqlite session has no thread to run on");
      self.shared.sink.send(Outgoing::Reply {
        id,
        response: Response::Error(error),
      });
      self.shared.sink.flush();
      return;
    }
    turn.jobs.push_back(Job::Run(id, request));
    if turn.runner == Runner::Idle {
      self.shared.next(&mut turn);
    }
  }

  fn resume(&self) {
    self.window.release();
  }

  /// dqlite reads an INTERRUPT only after the query has sent its whole result, so a running
  /// statement cannot be stopped early (docs/dqlite.md#sessions).
  fn interrupt(&self) {}

  fn leave(&mut self, done: Box<dyn FnOnce() + Send>) {
    self.window.close();
    let mut turn = self.shared.turn();
    if turn.ended {
      drop(turn);
      return done();
    }
    turn.jobs.push_back(Job::Leave(done));
    if turn.runner == Runner::Idle {
      self.shared.next(&mut turn);
    }
  }
}

impl Drop for DqliteSession {
  /// Ends the session's thread, and closes the watch here, on the JavaScript thread.
  fn drop(&mut self) {
    let mut turn = self.shared.turn();
    turn.ended = true;
    let watch = turn.watch.take();
    drop(turn);
    self.shared.wake.notify_all();
    drop(watch);
  }
}

impl Shared {
  fn turn(&self) -> MutexGuard<'_, Turn> {
    self.turn.lock().unwrap_or_else(|e| e.into_inner())
  }

  fn worker(&self) -> MutexGuard<'_, Worker> {
    self.worker.lock().unwrap_or_else(|e| e.into_inner())
  }

  /// The session's thread: runs jobs while it has the turn, and watches the time of a
  /// statement waiting on the event loop.
  fn serve(&self) {
    loop {
      let job = {
        let mut turn = self.turn();
        loop {
          if turn.runner == Runner::Thread {
            match turn.jobs.pop_front() {
              Some(job) => break job,
              None => turn.runner = Runner::Idle,
            }
          }
          if turn.ended && turn.runner != Runner::Thread {
            return;
          }
          if let (Runner::EventLoop { since }, Some((_, watch))) = (turn.runner, &turn.watch) {
            if since.elapsed() >= ANSWER_WITHIN {
              // No answer in time: the connection is closed, which the JavaScript thread
              // then reads as a loss, as a read on this thread would have timed out.
              // SAFETY: the watch's descriptor is open while the watch is in `turn`, whose
              // lock is held; shutting a socket down is allowed from any thread.
              unsafe { libc::shutdown(watch.fd(), libc::SHUT_RDWR) };
            }
          }
          turn = self
            .wake
            .wait_timeout(turn, Duration::from_secs(1))
            .unwrap_or_else(|e| e.into_inner())
            .0;
        }
      };
      let mut worker = self.worker();
      match job {
        Job::Run(id, request) => worker.guarded(id, |worker| worker.handle(id, request)),
        Job::Resume(pending, first) => {
          let id = pending.id;
          worker.guarded(id, |worker| Some(worker.resume(pending, first)))
        }
        Job::Leave(done) => {
          worker.conn = None;
          drop(worker);
          self.turn().ended = true;
          return done();
        }
      }
    }
  }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Txn {
  None,
  Open,
  /// Lost with a leader: statements fail until `ROLLBACK`.
  Aborted,
}

/// Where the session's database is: `dqlite://host:port,host:port/name`.
struct Target {
  seeds: Vec<String>,
  name: String,
}

impl Target {
  fn parse(filename: &str) -> Result<Target, Error> {
    let usage = "write it dqlite://host:port[,host:port...]/name";
    let rest = filename.strip_prefix("dqlite://").ok_or_else(|| {
      Error::sqlite(
        ffi::SQLITE_CANTOPEN,
        format!("{filename:?} is not a dqlite URL: {usage}"),
      )
    })?;
    let (hosts, name) = rest.split_once('/').ok_or_else(|| {
      Error::sqlite(
        ffi::SQLITE_CANTOPEN,
        format!("{filename:?} names no database: {usage}"),
      )
    })?;
    let seeds: Vec<String> = hosts
      .split(',')
      .map(str::trim)
      .filter(|h| !h.is_empty())
      .map(String::from)
      .collect();
    if seeds.is_empty() || seeds.iter().any(|s| !s.contains(':')) || name.is_empty() || name.contains('/') {
      return Err(Error::sqlite(
        ffi::SQLITE_CANTOPEN,
        format!("{filename:?} needs nodes as host:port and one database name: {usage}"),
      ));
    }
    Ok(Target {
      seeds,
      name: name.to_owned(),
    })
  }
}

struct Worker {
  sink: Arc<dyn Sink>,
  target: Option<Target>,
  conn: Option<Connection>,
  /// How many connections the session has had: the number of the current one.
  connections: u64,
  busy_timeout: Duration,
  txn: Txn,
  window: Arc<Window>,
  /// The connection's last insert rowid and change count, as its last execution reported
  /// them: what node-sqlite3's `run()` of a query reports (`sqlite3_last_insert_rowid`,
  /// `sqlite3_changes`, which a query does not change).
  last: (i64, u64),
  /// Its prepared statements, by the id JavaScript gave them.
  statements: HashMap<u32, Prepared>,
  /// The request whose `each()` the statement being run answers: its rows go out part by part.
  streaming: Option<u32>,
  shapes: Shapes,
  /// The address of the leader JavaScript was last told of.
  leader: Option<String>,
  /// The typed columns of the tables this session wrote to, by table (lower case), with when
  /// they were learnt (`typed_columns`).
  typed: HashMap<String, (Instant, Vec<TypedColumn>)>,
  /// The statement sent by the JavaScript thread whose answer it is reading (`direct`).
  pending: Option<Pending>,
}

/// How long a session keeps what it learnt of a table's typed columns.
const TYPED_COLUMNS_KEPT: Duration = Duration::from_secs(1);

/// Whether `sql` may change a table's columns.
fn changes_schema(sql: &str) -> bool {
  let first = first_word(sql);
  ["CREATE", "ALTER", "DROP"]
    .iter()
    .any(|k| first.eq_ignore_ascii_case(k))
}

/// A column that dqlite types by its declared type (`stored`).
#[derive(Clone)]
struct TypedColumn {
  /// Its place in the table's order.
  place: usize,
  name: String,
  declared: String,
  typed: Typed,
}

/// A prepared statement: its SQL, its parameters' numbers, the values bound to them, and where
/// its cursor stands: `None` at the start (prepared, reset, bound), else what its last run left
/// (node-sqlite3's statement steps one row per `get()`, one for a `run()`, all for `all()` and
/// `each()`).
struct Prepared {
  sql: String,
  layout: Parameters,
  bound: Vec<Value>,
  cursor: Option<Cursor>,
}

/// The rows a prepared statement's run has not given yet.
struct Cursor {
  shape: Arc<Shape>,
  values: Vec<Value>,
  /// The first value of the next row.
  next: usize,
  /// The last step found the end (`SQLITE_DONE`), not a row (`SQLITE_ROW`).
  done: bool,
}

impl Cursor {
  /// The next row, or `None` at the end (where it stays).
  fn next_row(&mut self) -> Option<Rows> {
    let width = self.shape.columns.len().max(1);
    if self.next >= self.values.len() {
      self.done = true;
      return None;
    }
    let end = (self.next + width).min(self.values.len());
    let row = self.values[self.next..end].to_vec();
    self.next = end;
    Some(Rows {
      shape: self.shape.clone(),
      values: row,
    })
  }
}

/// What became of one statement on the cluster.
enum Ran {
  /// Its rows went out as the `each()` of `streaming`, which is answered.
  Streamed,
  /// EXEC_SQL's answer.
  Done { last_id: i64, changes: u64 },
  /// QUERY_SQL's rows, all parts (or, for an `each()`, those not delivered yet).
  Rows {
    columns: Vec<String>,
    values: Vec<Value>,
  },
}

impl Worker {
  fn rows(&mut self, columns: Vec<String>, values: Vec<Value>) -> Rows {
    Rows {
      shape: self.shapes.of(columns),
      values,
    }
  }

  /// Answers request `id` with what `handle` gives. A fault of this code must not end the
  /// thread, which would leave this request and every later one unanswered: the request fails,
  /// and the connection, in a state nobody knows, goes (a transaction on it with it).
  fn guarded(&mut self, id: u32, handle: impl FnOnce(&mut Worker) -> Option<Response>) {
    let handled = std::panic::catch_unwind(AssertUnwindSafe(|| handle(self)));
    let response = handled.unwrap_or_else(|_| Some(self.fault()));
    if let Some(response) = response {
      self.sink.send(Outgoing::Reply { id, response });
    }
    self.sink.flush();
  }

  /// After a fault of this code while running a request: the request's error.
  fn fault(&mut self) -> Response {
    let _ = self.leave_connection();
    self.streaming = None;
    self.pending = None;
    Response::Error(Error::sqlite(
      ffi::SQLITE_INTERNAL,
      "the dqlite session failed on this request (a fault of sqlite3-cluster, please report it): \
       its connection was closed; a transaction open on it is lost",
    ))
  }

  /// Runs one request; `None` when it answered itself (an `each()`).
  fn handle(&mut self, id: u32, request: Request) -> Option<Response> {
    Some(match request {
      Request::Open(options) => {
        self.busy_timeout = Duration::from_millis(options.busy_timeout_ms.max(0) as u64);
        match Target::parse(&options.filename).and_then(|target| self.open(target)) {
          Ok(()) => Response::Done,
          Err(e) => Response::Error(e),
        }
      }
      Request::Query { sql, params, mode } => return self.query(id, sql, &params, mode),
      Request::Prepare { stmt, sql } => self.prepare(stmt, sql),
      Request::Bind { stmt, params } => self.bind(stmt, &params),
      Request::Execute { stmt, params, mode } => return self.execute(id, stmt, &params, mode),
      Request::Reset { stmt } => match self.statements.get_mut(&stmt) {
        Some(prepared) => {
          prepared.cursor = None;
          Response::Done
        }
        None => Response::Dropped,
      },
      Request::Finalize { stmt } => match self.statements.remove(&stmt) {
        Some(_) => Response::Done,
        None => Response::Dropped,
      },
      Request::Exec { sql } => match self.exec(&sql) {
        Ok(()) => Response::Done,
        Err(e) => Response::Error(e),
      },
      Request::Configure(Setting::BusyTimeout(ms)) => {
        self.busy_timeout = Duration::from_millis(ms.max(0) as u64);
        Response::Done
      }
      Request::Configure(_) | Request::Wait => Response::Done,
      Request::Close if !self.statements.is_empty() => Response::Error(Error::sqlite(
        ffi::SQLITE_BUSY,
        "unable to close due to unfinalized statements or unfinished backups",
      )),
      Request::Close => {
        self.conn = None;
        self.target = None;
        Response::Done
      }
      Request::Script(script) => Response::Script(self.script(script)),
      _ => Response::Error(Error::sqlite(
        ffi::SQLITE_MISUSE,
        "this call is not available on a dqlite Database yet (docs/dqlite.md)",
      )),
    })
  }

  /// Worker1's `exec` (`protocol::Script`): each statement of the script sent on its own, by its
  /// kind. The values go to the first statement that has parameters, with oo1's errors for those
  /// that fit none. Unlike SQLite's, a statement with rows is read to its end even when only
  /// its column names (or one step) were asked for: dqlite has no step.
  fn script(&mut self, script: Script) -> ScriptResult {
    let mut result = ScriptResult {
      columns: None,
      values: Vec::new(),
      statements: Vec::new(),
      changes: 0,
      last_insert_rowid: self.last.0,
      error: None,
    };
    let mut bound = script.bind.is_none();
    for part in statement::statements(&script.sql) {
      result.statements.push(part.reported.trim().to_owned());
      let sql = part.own;
      let values = if bound {
        Vec::new()
      } else {
        let layout = statement::parameters(sql);
        if layout.count == 0 {
          Vec::new()
        } else {
          bound = true;
          match bind_strict(&script.bind, &layout) {
            Ok(values) => values,
            Err(e) => {
              result.error = Some(e);
              break;
            }
          }
        }
      };
      match self.script_statement(sql, &values) {
        Ok(Ran::Rows { columns, values }) => {
          if result.columns.is_none() && !columns.is_empty() && script.first != FirstResult::Step {
            result.columns = Some(columns);
            if script.first == FirstResult::Read {
              result.values = values;
            }
          }
        }
        Ok(Ran::Done { last_id, changes }) => {
          result.changes += changes as i64;
          result.last_insert_rowid = last_id;
        }
        Ok(Ran::Streamed) => {}
        Err(e) => {
          result.error = Some(e);
          break;
        }
      }
    }
    result
  }

  /// One statement of a Worker1 script, with the session's rules (guards, transactions).
  fn script_statement(&mut self, sql: &str, values: &[Value]) -> Result<Ran, Error> {
    if self.txn == Txn::Aborted {
      return match self.aborted(sql, Mode::Run) {
        Response::Error(e) => Err(e),
        _ => Ok(Ran::Done {
          last_id: self.last.0,
          changes: 0,
        }),
      };
    }
    if let Some(refused) = refused(sql) {
      return Err(refused);
    }
    let sql = immediate(sql);
    let ran = self.run(&sql, values, statement::kind(&sql))?;
    if let Ran::Done { last_id, changes } = ran {
      self.last = (last_id, changes);
    }
    self.follow_transaction(&sql);
    Ok(ran)
  }

  fn open(&mut self, target: Target) -> Result<(), Error> {
    let deadline = Instant::now() + FIND_LEADER_WITHIN;
    let conn = Connection::open(&target.seeds, &target.name, ANSWER_WITHIN, deadline).map_err(|why| {
      Error::sqlite(
        ffi::SQLITE_CANTOPEN,
        format!("unable to open database {}: {why}", target.name),
      )
    })?;
    self.use_connection(conn);
    self.target = Some(target);
    Ok(())
  }

  /// Makes `conn` the session's connection. JavaScript hears of a leader other than the last
  /// one (`db.cluster.leader`, the `leader` event) before the answer that the new connection
  /// gives, so that the answer's callback already sees it.
  fn use_connection(&mut self, conn: Connection) {
    if self.leader.as_deref() != Some(conn.address.as_str()) {
      self.leader = Some(conn.address.clone());
      self.sink.send(Outgoing::Event(Event::Leader {
        address: conn.address.clone(),
      }));
    }
    self.conn = Some(conn);
    self.connections += 1;
    self.typed.clear();
  }

  /// The connection to the leader, found again if the last one was lost.
  fn connection(&mut self) -> Result<&mut Connection, Error> {
    if self.conn.as_ref().is_some_and(Connection::is_closed) {
      // Lost before this request was sent: it is not in doubt, and goes to the new leader.
      self.leave_connection()?;
    }
    if self.conn.is_none() {
      let target = self
        .target
        .as_ref()
        .ok_or_else(|| Error::misuse("Database is not open"))?;
      // The leader just lost is asked last: frozen or cut off, it may still accept connections
      // and answer nothing, and it is the node least likely to lead now.
      let mut seeds = target.seeds.clone();
      if let Some(lost) = seeds.iter().position(|s| Some(s) == self.leader.as_ref()) {
        let lost = seeds.remove(lost);
        seeds.push(lost);
      }
      let deadline = Instant::now() + FIND_LEADER_WITHIN;
      let conn =
        Connection::open(&seeds, &target.name, ANSWER_WITHIN, deadline).map_err(|why| Error::Cluster {
          code: ClusterCode::NoMaster,
          message: format!("no dqlite leader for {}: {why}", target.name),
        })?;
      self.use_connection(conn);
    }
    Ok(self.conn.as_mut().expect("set above"))
  }

  fn query(&mut self, id: u32, sql: String, params: &Params, mode: Mode) -> Option<Response> {
    match ready_query(sql, params) {
      Ok(ready) => self.statement(id, &ready.sql, &ready.values, mode, None),
      Err(response) => Some(*response),
    }
  }

  /// Runs `sql` (checked by `refused` already) with `values` and answers as `mode` asks. A
  /// `get()` of a prepared statement keeps the other rows in `cursor` for the next `get()`s.
  fn statement(
    &mut self,
    id: u32,
    sql: &str,
    values: &[Value],
    mode: Mode,
    cursor: Option<&mut Option<Cursor>>,
  ) -> Option<Response> {
    if self.txn == Txn::Aborted {
      return Some(self.aborted(sql, mode));
    }
    let sql = immediate(sql);
    self.streaming = (mode == Mode::Each).then_some(id);
    let ran = self.run(&sql, values, statement::kind(&sql));
    self.streaming = None;
    self.answer(ran, &sql, mode, cursor)
  }

  /// A statement's answer as `mode` asks, once `sql` (as sent) ran (or failed): the session
  /// follows its transaction, and a prepared statement's `cursor` stands where node-sqlite3's
  /// would (after the first row for `get()` and `run()`, at the end for the rest).
  fn answer(
    &mut self,
    ran: Result<Ran, Error>,
    sql: &str,
    mode: Mode,
    cursor: Option<&mut Option<Cursor>>,
  ) -> Option<Response> {
    let at_end = |worker: &mut Worker| Cursor {
      shape: worker.shapes.of(Vec::new()),
      values: Vec::new(),
      next: 0,
      done: true,
    };
    let response = match ran {
      Err(e) => Response::Error(e),
      Ok(Ran::Streamed) => {
        self.follow_transaction(sql);
        if let Some(cursor) = cursor {
          *cursor = Some(at_end(self));
        }
        return None;
      }
      Ok(Ran::Done { last_id, changes }) => {
        self.last = (last_id, changes);
        self.follow_transaction(sql);
        if let Some(cursor) = cursor {
          *cursor = Some(at_end(self));
        }
        match mode {
          Mode::Run => Response::Run {
            last_id,
            changes: changes as i64,
          },
          Mode::Get => Response::Row(None),
          Mode::All => Response::Rows(self.rows(Vec::new(), Vec::new())),
          Mode::Each => Response::EachEnd { error: None },
        }
      }
      Ok(Ran::Rows { columns, values }) => {
        self.follow_transaction(sql);
        match mode {
          Mode::Run | Mode::Get => {
            let mut rest = Cursor {
              shape: self.shapes.of(columns),
              values,
              next: 0,
              done: false,
            };
            let row = rest.next_row();
            if let Some(cursor) = cursor {
              *cursor = Some(rest);
            }
            match mode {
              Mode::Run => Response::Run {
                last_id: self.last.0,
                changes: self.last.1 as i64,
              },
              _ => Response::Row(row),
            }
          }
          // An `each()`'s rows were streamed (`Ran::Streamed`): none come here.
          Mode::All | Mode::Each => {
            if let Some(cursor) = cursor {
              *cursor = Some(at_end(self));
            }
            Response::Rows(self.rows(columns, values))
          }
        }
      }
    };
    Some(response)
  }

  /// `db.prepare()`: the statement is kept here and checked by the leader (PREPARE, then
  /// FINALIZE), so that SQL that does not compile fails now, as in node-sqlite3. Each run sends
  /// its SQL again (QUERY_SQL, EXEC_SQL): no statement id of a connection outlives a failover.
  fn prepare(&mut self, stmt: u32, sql: String) -> Response {
    let checked = refused(&sql).map_or_else(|| self.compiles(&sql), Err);
    match checked {
      Ok(()) => {
        let layout = statement::parameters(&sql);
        self.statements.insert(
          stmt,
          Prepared {
            sql,
            layout,
            bound: Vec::new(),
            cursor: None,
          },
        );
        Response::Done
      }
      Err(e) => Response::Error(e),
    }
  }

  /// Whether the leader compiles `sql`. A connection lost meanwhile says nothing: the statement
  /// fails when it runs, if it must.
  fn compiles(&mut self, sql: &str) -> Result<(), Error> {
    let conn = self.connection()?;
    let db = conn.db;
    match conn.call(Wire::Prepare { db, sql }) {
      Outcome::Answered(Answer::Stmt { id, .. }) => {
        let _ = conn.call(Wire::Finalize { db, stmt: id });
        Ok(())
      }
      Outcome::Answered(Answer::Failure { code, message }) => {
        Err(Error::sqlite(if code == 0 { 1 } else { code as i32 }, message))
      }
      Outcome::Refused(refused) => Err(Error::sqlite(ffi::SQLITE_MISMATCH, refused.0.to_string())),
      Outcome::Answered(_) | Outcome::Lost(_) => {
        self.conn = None;
        Ok(())
      }
    }
  }

  /// `Statement#bind`: new values for the next runs; a `get()` cursor starts over. Without
  /// values nothing changes, and node-sqlite3 answers the last step's status when the statement
  /// has run (`SQLITE_ROW` or `SQLITE_DONE`, as an error), as the local engine does.
  fn bind(&mut self, stmt: u32, params: &Params) -> Response {
    let Some(prepared) = self.statements.get_mut(&stmt) else {
      return Response::Dropped;
    };
    if params.is_none() {
      return match &prepared.cursor {
        Some(cursor) => Response::Error(Error::sqlite(
          if cursor.done {
            ffi::SQLITE_DONE
          } else {
            ffi::SQLITE_ROW
          },
          "",
        )),
        None => Response::Done,
      };
    }
    match statement::bind(params, &prepared.layout) {
      Ok(values) => {
        prepared.bound = values;
        prepared.cursor = None;
        Response::Done
      }
      Err(e) => Response::Error(Error::sqlite(ffi::SQLITE_RANGE, e.0)),
    }
  }

  /// `Statement#run/get/all/each` (see `ready_execute`).
  fn execute(&mut self, id: u32, stmt: u32, params: &Params, mode: Mode) -> Option<Response> {
    let ready = match self.ready_execute(stmt, params, mode) {
      Ok(ready) => ready,
      Err(response) => return Some(*response),
    };
    let mut cursor = None;
    let response = self.statement(id, &ready.sql, &ready.values, mode, Some(&mut cursor));
    if let Some(prepared) = self.statements.get_mut(&stmt) {
      prepared.cursor = cursor;
    }
    response
  }

  /// `Statement#run/get/all/each` up to running it: with values, they are bound first; without,
  /// `get()` goes on from the last row it gave (and stays at the end), which is answered here.
  fn ready_execute(&mut self, stmt: u32, params: &Params, mode: Mode) -> Result<Ready, Box<Response>> {
    if !params.is_none() {
      if let response @ Response::Error(_) = self.bind(stmt, params) {
        return Err(Box::new(response));
      }
    }
    let Some(prepared) = self.statements.get_mut(&stmt) else {
      return Err(Box::new(Response::Dropped));
    };
    if mode == Mode::Get {
      if let Some(cursor) = prepared.cursor.as_mut() {
        return Err(Box::new(Response::Row(cursor.next_row())));
      }
    }
    Ok(Ready {
      sql: prepared.sql.clone(),
      values: prepared.bound.clone(),
      stmt: Some(stmt),
    })
  }

  /// `exec()`: every statement of a script, without parameters.
  fn exec(&mut self, sql: &str) -> Result<(), Error> {
    if self.txn == Txn::Aborted {
      return match self.aborted(sql, Mode::Run) {
        Response::Error(e) => Err(e),
        _ => Ok(()),
      };
    }
    if statement::writes_with_rows_anywhere(sql) {
      return Err(refused_returning());
    }
    // `run` reads the first statement only: the others of the script are checked here.
    for part in statement::statements(sql).iter().skip(1) {
      if may_store_unreadable(part.own, &[], Kind::NoRows) {
        self.refuse_unreadable(part.own, &[])?;
      }
    }
    let sql = immediate(sql);
    self.run(&sql, &[], Kind::NoRows)?;
    self.follow_transaction(&sql);
    Ok(())
  }

  /// After a successful statement: is the session inside a transaction now?
  fn follow_transaction(&mut self, sql: &str) {
    let words = &statement::read(sql).words;
    let first = words.first().map(|w| w.to_ascii_uppercase());
    match first.as_deref() {
      _ if begins_transaction(sql) && self.txn == Txn::None => self.txn = Txn::Open,
      Some("COMMIT" | "END" | "ROLLBACK") if words.len() <= 2 => self.txn = Txn::None,
      _ => {}
    }
  }

  /// A statement of a session whose transaction was lost: only `ROLLBACK` is answered, here.
  fn aborted(&mut self, sql: &str, mode: Mode) -> Response {
    if !is_rollback(sql) {
      return Response::Error(Error::Cluster {
        code: ClusterCode::TxnAborted,
        message: "the transaction was lost with the dqlite leader: run ROLLBACK, then the transaction again"
          .into(),
      });
    }
    self.txn = Txn::None;
    match mode {
      Mode::Run => Response::Run {
        last_id: 0,
        changes: 0,
      },
      Mode::Get => Response::Row(None),
      Mode::All => Response::Rows(self.rows(Vec::new(), Vec::new())),
      Mode::Each => Response::EachEnd { error: None },
    }
  }

  /// Gives up the connection to a leader that is gone: a transaction open there is gone with
  /// it (`CLUSTER_TXN_ABORTED` until `ROLLBACK`).
  fn leave_connection(&mut self) -> Result<(), Error> {
    self.conn = None;
    if self.txn == Txn::Open {
      self.txn = Txn::Aborted;
      return Err(txn_lost());
    }
    Ok(())
  }

  /// Refuses a value that the write `sql` would store in a column dqlite types by its declared
  /// type and cannot give back (`stored`): the node that read it would stop.
  fn refuse_unreadable(&mut self, sql: &str, values: &[Value]) -> Result<(), Error> {
    self.check_unreadable(sql, values, true).map(|_| ())
  }

  /// `refuse_unreadable`, which asks the leader for the table's typed columns when it does
  /// not know them and `may_ask`; without, `Ok(false)` when it would have had to ask.
  fn check_unreadable(&mut self, sql: &str, values: &[Value], may_ask: bool) -> Result<bool, Error> {
    let Some(stores) = stored::stores(sql) else {
      return Ok(true);
    };
    // What the write stores that may stop a node: bound values, then values written in the SQL.
    let bound = stores.parameters.iter().filter_map(|(n, into)| {
      let value = values.get(n.wrapping_sub(1))?;
      stored::may_stop_a_node(value).then(|| (format!("parameter {n} holds"), value.clone(), into))
    });
    let written = stores.literals.iter().filter_map(|(literal, into)| {
      let value = stored::literal_value(literal);
      stored::may_stop_a_node(&value)
        .then(|| (format!("the value {literal} written in the SQL is"), value, into))
    });
    let stored: Vec<_> = bound.chain(written).collect();
    if stored.is_empty() {
      return Ok(true);
    }
    let columns = match self.known_typed_columns(stores.table) {
      Some(columns) => columns,
      None if may_ask => self.typed_columns(stores.table)?,
      None => return Ok(false),
    };
    for (what, value, into) in &stored {
      let lands = |c: &TypedColumn| match into {
        Lands::Column(name) => c.name.eq_ignore_ascii_case(name),
        Lands::Position(place) => c.place == *place,
        Lands::Anywhere => true,
      };
      if let Some(column) = columns.iter().find(|c| lands(c) && c.typed.stops_a_node(value)) {
        let kind = match value {
          Value::Real(_) => "a REAL",
          Value::Blob(_) => "a BLOB",
          _ => "text",
        };
        let instead = match (column.typed, what.starts_with("parameter")) {
          (Typed::Time, true) => "Bind an integer (a Date binds as its milliseconds) or text",
          (Typed::Time, false) => "Write an integer or text there",
          (Typed::Boolean, true) => "Bind an integer",
          (Typed::Boolean, false) => "Write an integer there",
        };
        let place = match into {
          Lands::Anywhere => "may land in",
          _ => "would land in",
        };
        return Err(Error::sqlite(
          ffi::SQLITE_MISMATCH,
          format!(
            "{what} {kind}, and {place} {}.{}, declared {}: a dqlite 1.11 node that reads it back stops. {instead}",
            stores.table, column.name, column.declared
          ),
        ));
      }
    }
    Ok(true)
  }

  /// The typed columns of `table` as the session learnt them less than `TYPED_COLUMNS_KEPT`
  /// ago, if it did.
  fn known_typed_columns(&self, table: &str) -> Option<Vec<TypedColumn>> {
    let (at, columns) = self.typed.get(&table.to_ascii_lowercase())?;
    (at.elapsed() < TYPED_COLUMNS_KEPT).then(|| columns.clone())
  }

  /// The columns of `table` that dqlite types by their declared type. Kept for
  /// `TYPED_COLUMNS_KEPT`, so that a run of writes asks once; another client's change of the
  /// table's columns is seen that much later (this session's own, at once).
  fn typed_columns(&mut self, table: &str) -> Result<Vec<TypedColumn>, Error> {
    let key = table.to_ascii_lowercase();
    if let Some(columns) = self.known_typed_columns(table) {
      return Ok(columns);
    }
    // Not an each()'s rows, if the write is an each()'s statement.
    let streaming = self.streaming.take();
    let ran = self.run(
      "SELECT cid, name, type FROM pragma_table_info(?)",
      &[Value::Text(table.to_owned())],
      Kind::Rows,
    );
    self.streaming = streaming;
    let Ran::Rows { values, .. } = ran? else {
      return Ok(Vec::new());
    };
    let columns: Vec<TypedColumn> = values
      .chunks(3)
      .filter_map(|row| match row {
        [Value::Integer(place), Value::Text(name), Value::Text(declared)] => {
          Typed::of(declared).map(|typed| TypedColumn {
            place: *place as usize,
            name: name.clone(),
            declared: declared.clone(),
            typed,
          })
        }
        _ => None,
      })
      .collect();
    self.typed.insert(key, (Instant::now(), columns.clone()));
    Ok(columns)
  }

  /// The connection is lost while `sql` was in flight: when `sql` is the `COMMIT` (or `END`) of
  /// the session's transaction, it may have been committed or not, so the session is not left
  /// aborted (whose error says to run the transaction again, which could store it twice). The
  /// error is `CLUSTER_MASTER_LOST`, and no transaction is open any more either way.
  fn leave_committing(&mut self, sql: &str) -> Result<(), Error> {
    let words = &statement::read(sql).words;
    let commits = words
      .first()
      .is_some_and(|w| w.eq_ignore_ascii_case("COMMIT") || w.eq_ignore_ascii_case("END"));
    if self.txn != Txn::Open || !commits || words.len() > 2 {
      return Ok(());
    }
    self.conn = None;
    self.txn = Txn::None;
    Err(lost(
      "a COMMIT: the transaction may have been committed or not; look before running it again",
    ))
  }

  /// Sends one statement until it is answered, following the rules of the module's comment.
  fn run(&mut self, sql: &str, values: &[Value], kind: Kind) -> Result<Ran, Error> {
    self.forget_typed_columns(sql, kind);
    if may_store_unreadable(sql, values, kind) {
      self.refuse_unreadable(sql, values)?;
    }
    self.run_from(sql, values, kind, None)
  }

  /// A write that may change a table's columns makes the session forget what it knew of them.
  fn forget_typed_columns(&mut self, sql: &str, kind: Kind) {
    if kind != Kind::Rows && !self.typed.is_empty() && changes_schema(sql) {
      self.typed.clear();
    }
  }

  /// `run` once its checks passed; with `first`, the statement was sent already and this is
  /// what became of it.
  fn run_from(
    &mut self,
    sql: &str,
    values: &[Value],
    kind: Kind,
    mut first: Option<Outcome<Answer>>,
  ) -> Result<Ran, Error> {
    let mut busy_since: Option<Instant> = None;
    let mut backoff = Duration::from_millis(1);
    let mut resends = 0;
    loop {
      let outcome = match first.take() {
        Some(outcome) => outcome,
        None => {
          let conn = self.connection()?;
          let db = conn.db;
          conn.call(wire_statement(db, sql, values, kind))
        }
      };
      let failure = match outcome {
        Outcome::Answered(Answer::Result {
          last_insert_id,
          changes,
        }) => {
          return Ok(Ran::Done {
            last_id: last_insert_id,
            changes,
          })
        }
        Outcome::Answered(Answer::Rows(part)) => {
          return match self.streaming {
            Some(id) => Ok(self.stream_parts(id, part)),
            None => self.rest_of(part),
          }
        }
        Outcome::Answered(Answer::Failure { code, message }) => (code, message),
        Outcome::Answered(_) => {
          self.conn = None;
          return Err(lost("an unexpected answer"));
        }
        Outcome::Refused(refused) => return Err(Error::sqlite(ffi::SQLITE_MISMATCH, refused.0.to_string())),
        Outcome::Lost(e) => {
          self.leave_committing(sql)?;
          self.leave_connection()?;
          if kind == Kind::Rows && resends < RESENDS {
            resends += 1; // a read may run again
            continue;
          }
          return Err(lost(&e.to_string()));
        }
      };
      let (code, message) = failure;
      let not_leader = code == NOT_LEADER || (code == 12 && message.starts_with("no database opened"));
      if not_leader {
        self.leave_connection()?;
        if resends < RESENDS {
          resends += 1; // it did not run: the new leader runs it
          continue;
        }
      }
      if code == LEADERSHIP_LOST {
        self.leave_committing(sql)?;
        self.leave_connection()?;
        return Err(lost("the leader lost its leadership while committing"));
      }
      if code & 0xff == ffi::SQLITE_BUSY as u64 {
        let since = *busy_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.busy_timeout {
          std::thread::sleep(backoff);
          backoff = (backoff * 2).min(Duration::from_millis(8));
          continue;
        }
      }
      return Err(Error::sqlite(if code == 0 { 1 } else { code as i32 }, message));
    }
  }

  /// Delivers a result's rows as the `each()` of request `id` while its parts arrive, in chunks
  /// of `CHUNK_ROWS` paced by the receiver (`Window`): memory stays flat for any result, and a
  /// receiver that stops reading stops the server too (dqlite sends the next part only once
  /// the last was read). An error after some rows ends the stream with it.
  fn stream_parts(&mut self, id: u32, first: super::wire::RowsPart) -> Ran {
    let width = first.columns.len().max(1);
    let shape = self.shapes.of(first.columns);
    let mut pending: Vec<Value> = first.rows.into_iter().flatten().collect();
    let mut more = first.more;
    let end = loop {
      while pending.len() >= CHUNK_ROWS * width || (!more && !pending.is_empty()) {
        if !self.window.acquire() {
          // The session left: the rest of the result is never read, so the connection goes.
          self.conn = None;
          return Ran::Streamed;
        }
        let rest = pending.split_off((CHUNK_ROWS * width).min(pending.len()));
        let rows = Rows {
          shape: shape.clone(),
          values: std::mem::replace(&mut pending, rest),
        };
        self.sink.send(Outgoing::Reply {
          id,
          response: Response::Chunk(rows),
        });
        self.sink.flush();
      }
      if !more {
        break None;
      }
      match self.next_part(&mut pending) {
        Ok(next) => more = next,
        Err(e) => break Some(e),
      }
    };
    self.sink.send(Outgoing::Reply {
      id,
      response: Response::EachEnd { error: end },
    });
    Ran::Streamed
  }

  /// The parts of a result after its first.
  fn rest_of(&mut self, first: super::wire::RowsPart) -> Result<Ran, Error> {
    let columns = first.columns;
    let mut values: Vec<Value> = first.rows.into_iter().flatten().collect();
    let mut more = first.more;
    while more {
      more = self.next_part(&mut values)?;
    }
    Ok(Ran::Rows { columns, values })
  }

  /// Reads the next part of a result into `values`; whether more follow. A failure after some
  /// parts is the statement's error; a lost connection is gone.
  fn next_part(&mut self, values: &mut Vec<Value>) -> Result<bool, Error> {
    let conn = self.conn.as_mut().expect("the connection that answered");
    match conn.next_part() {
      Ok(Ok(part)) => {
        values.extend(part.rows.into_iter().flatten());
        Ok(part.more)
      }
      Ok(Err((code, message))) => Err(Error::sqlite(code as i32, message)),
      Err(e) => {
        self.conn = None;
        Err(lost(&e.to_string()))
      }
    }
  }
}

/// Whether a statement of `kind` may store what stops a node that reads it back (`stored`): a
/// write that binds such a value or writes one in its SQL. Only those are read further.
fn may_store_unreadable(sql: &str, values: &[Value], kind: Kind) -> bool {
  kind != Kind::Rows
    && (values.iter().any(stored::may_stop_a_node) || stored::may_hold_unreadable_literal(sql))
}

/// A statement ready to run: its SQL and values, and the prepared statement it is, if one. A
/// request answered before it runs gives its answer instead (boxed: a response is large).
struct Ready {
  sql: String,
  values: Vec<Value>,
  stmt: Option<u32>,
}

/// `db.run/get/all/each(sql, params)` up to running it: SQL that is refused and values that do
/// not fit its parameters are answered here.
fn ready_query(sql: String, params: &Params) -> Result<Ready, Box<Response>> {
  let reading = statement::read(&sql);
  if let Some(refused) = refusal(&reading) {
    return Err(Box::new(Response::Error(refused)));
  }
  match statement::bind(params, &reading.layout) {
    Ok(values) => Ok(Ready {
      sql,
      values,
      stmt: None,
    }),
    Err(e) => Err(Box::new(Response::Error(Error::sqlite(ffi::SQLITE_RANGE, e.0)))),
  }
}

/// The request that runs a statement of `kind`: QUERY_SQL for rows, EXEC_SQL for the rest.
fn wire_statement<'a>(db: u32, sql: &'a str, params: &'a [Value], kind: Kind) -> Wire<'a> {
  match kind {
    Kind::Rows => Wire::QuerySql { db, sql, params },
    _ => Wire::ExecSql { db, sql, params },
  }
}

/// A bare `BEGIN` (or `BEGIN DEFERRED`) becomes `BEGIN IMMEDIATE` (see the module's comment).
fn immediate(sql: &str) -> String {
  let reading = statement::read(sql);
  let bare = match reading.words.as_slice() {
    [b] => b.eq_ignore_ascii_case("BEGIN"),
    [b, w] => {
      b.eq_ignore_ascii_case("BEGIN")
        && (w.eq_ignore_ascii_case("TRANSACTION") || w.eq_ignore_ascii_case("DEFERRED"))
    }
    [b, d, t] => {
      b.eq_ignore_ascii_case("BEGIN")
        && d.eq_ignore_ascii_case("DEFERRED")
        && t.eq_ignore_ascii_case("TRANSACTION")
    }
    _ => false,
  };
  if bare && !reading.tail {
    "BEGIN IMMEDIATE".into()
  } else {
    sql.to_owned()
  }
}

/// Why `sql` is not sent at all: a write with `RETURNING`, or a second statement after the
/// first (docs/dqlite.md#statements).
fn refused(sql: &str) -> Option<Error> {
  refusal(&statement::read(sql))
}

/// `refused`, from the statement's reading.
fn refusal(reading: &statement::Reading) -> Option<Error> {
  if reading.kind == Kind::WriteWithRows {
    return Some(refused_returning());
  }
  reading.tail.then(|| {
    Error::sqlite(
      ffi::SQLITE_ERROR,
      "dqlite runs one statement per call here: split the SQL, or use exec() for a script without parameters",
    )
  })
}

fn refused_returning() -> Error {
  Error::sqlite(
    ffi::SQLITE_ERROR,
    "RETURNING on a write is refused on dqlite: dqlite 1.11 leaves such a write pending and its next write stops the leader; run the write, then SELECT what it wrote",
  )
}

fn lost(why: &str) -> Error {
  Error::Cluster {
    code: ClusterCode::MasterLost,
    message: format!(
      "the dqlite leader was lost while this statement was on its way ({why}); it may or may not have run"
    ),
  }
}

fn txn_lost() -> Error {
  Error::Cluster {
    code: ClusterCode::TxnAborted,
    message: "the transaction was lost with the dqlite leader: run ROLLBACK, then the transaction again"
      .into(),
  }
}

/// The values of a Worker1 script's first statement with parameters, or oo1's error for one
/// that fits none of them (`Connection::bind_strict` of the local engine says the same).
fn bind_strict(params: &Params, layout: &Parameters) -> Result<Vec<Value>, Error> {
  let out_of_range = |message: String| Err(Error::sqlite(SCRIPT_ERROR, message));
  match params {
    Params::Positional(values) if values.len() > layout.count => {
      out_of_range(format!("Bind index {} is out of range.", layout.count + 1))
    }
    Params::Named(pairs) => {
      for (key, _) in pairs {
        let fits = match key {
          ParamKey::Index(i) => (1..=layout.count).contains(&usize::try_from(*i).unwrap_or(0)),
          ParamKey::Name(name) => layout.names.iter().any(|(n, _)| n == name),
        };
        if !fits {
          let shown = match key {
            ParamKey::Index(i) => i.to_string(),
            ParamKey::Name(name) => name.clone(),
          };
          return out_of_range(format!("Invalid bind() parameter name: {shown}"));
        }
      }
      statement::bind(params, layout).map_err(|e| Error::sqlite(ffi::SQLITE_RANGE, e.0))
    }
    _ => statement::bind(params, layout).map_err(|e| Error::sqlite(ffi::SQLITE_RANGE, e.0)),
  }
}
