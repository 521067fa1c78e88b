//! A process's place in the cluster of one socket: master, client, or between the two.
//!
//! Every Database of this process that uses the same socket is a *member* of one `Node`. The
//! node holds the link to the database: the engine itself (master, which also serves the
//! socket), one multiplexed connection to the master (client), or nothing while it looks for
//! a master (at start and after failover). Members keep what they need to be re-created on the
//! next master (their open options, prepared statements, settings), so a Database stays
//! usable across failover (docs/failover.md):
//! - requests not yet written to the socket go to the next master;
//! - requests written and unanswered fail with `CLUSTER_MASTER_LOST` (never re-sent blindly);
//! - a member whose transaction was lost is marked aborted on the next master;
//! - after a graceful `Closing`, unanswered requests were never run and are re-sent.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use once_cell::sync::Lazy;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::auth;
use super::election::{Lock, Paths};
use super::identity::{self, Claim, FileLock};
use super::server::{Server, ServerConfig};
use super::wire::{self, Challenge, Down, FrameReader, Hello, Proof, Up, Verdict};
use crate::engine::{begins_transaction, Engine, SessionHandle, Sink};
use crate::error::{ClusterCode, Error};
use crate::protocol::{Key, LegacyKey, OpenOptions, Outgoing, PragmaKey, Request, Response, Role, Setting};
use crate::value::Params;

/// Request id of the requests a node sends on a member's behalf (replays); their answers are
/// not delivered.
pub const REPLAY: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
  /// Become master now, or fail with `CLUSTER_MASTER_EXISTS`.
  Serve,
  /// Only ever a client.
  Connect,
  /// Client if a master answers, master otherwise.
  Auto,
}

#[derive(Debug, Clone)]
pub struct NodeOptions {
  pub filename: String,
  pub sock: PathBuf,
  pub intent: Intent,
  pub secret: Option<Arc<[u8]>>,
  pub connect_timeout: Duration,
}

static NODES: Lazy<Mutex<HashMap<PathBuf, Weak<Node>>>> = Lazy::new(|| Mutex::new(HashMap::new()));

fn cluster_error(code: ClusterCode, message: impl Into<String>) -> Error {
  Error::Cluster {
    code,
    message: message.into(),
  }
}

pub struct Node {
  paths: Paths,
  options: NodeOptions,
  state: Mutex<State>,
}

struct State {
  link: Link,
  members: BTreeMap<u32, Member>,
  next_session: u32,
  generation: u64,
  electing: bool,
  /// What the last master said: the database is encrypted (a member without a key must not
  /// take over). `None` before any master answered.
  master_keyed: Option<bool>,
}

enum Link {
  /// Looking for a master; requests wait here in order.
  Down {
    pending: VecDeque<(u32, u32, Request)>,
  },
  Master {
    engine: Arc<Engine>,
    server: Option<Server>,
    /// The note that leads other paths of the file to this master (see `identity`).
    note: Option<PathBuf>,
    /// Dropped last: the file's lock, then the election's.
    file: Option<FileLock>,
    lock: Lock,
  },
  Client {
    conn: Arc<Conn>,
  },
}

struct Member {
  sink: Arc<MemberSink>,
  /// The engine session, while this process is master.
  local: Option<SessionHandle>,
  replay: Replay,
}

/// What re-creates a member's session on another master.
#[derive(Default)]
struct Replay {
  open: Option<OpenOptions>,
  key: Option<(Key, Option<LegacyKey>)>,
  /// Its `PRAGMA key`, applied again on the next master (proved again when that is another
  /// process: the key itself stays here).
  pragma_key: Option<Key>,
  /// Prepared statements: their SQL and last bound parameters.
  statements: BTreeMap<u32, (String, Params)>,
  settings: Vec<Setting>,
  /// The last statement that set each per-Database pragma (`foreign_keys`…), by name.
  pragmas: BTreeMap<&'static str, String>,
  /// Its transaction was lost: the next master marks the session aborted.
  lost_txn: bool,
}

impl Replay {
  fn record(&mut self, request: &Request) {
    match request {
      Request::Open(options) => self.open = Some(options.clone()),
      Request::Key(key, legacy) => self.key = Some((key.clone(), legacy.clone())),
      Request::PragmaKey(PragmaKey::Given(key)) => self.pragma_key = Some(key.clone()),
      Request::Query { sql, .. } | Request::Exec { sql } => {
        if let Some(name) = crate::engine::per_database_pragma(sql) {
          self.pragmas.insert(name, sql.clone());
        }
      }
      Request::Prepare { stmt, sql } => {
        self.statements.insert(*stmt, (sql.clone(), Params::None));
      }
      Request::Bind { stmt, params } | Request::Execute { stmt, params, .. } if !params.is_none() => {
        if let Some(entry) = self.statements.get_mut(stmt) {
          entry.1 = params.clone();
        }
      }
      Request::Finalize { stmt } => {
        self.statements.remove(stmt);
      }
      Request::Configure(setting) => {
        let same = |s: &Setting| match (s, setting) {
          (Setting::Limit { id: a, .. }, Setting::Limit { id: b, .. }) => a == b,
          _ => std::mem::discriminant(s) == std::mem::discriminant(setting),
        };
        self.settings.retain(|s| !same(s));
        self.settings.push(*setting);
      }
      _ => {}
    }
  }

  fn has_key(&self) -> bool {
    self.key.is_some() || self.pragma_key.is_some() || self.open.as_ref().is_some_and(|o| o.key.is_some())
  }

  /// The requests that re-create the session, in order. `resent` are the member's requests
  /// that go to the next master anyway (a graceful handover left them unanswered): they were
  /// recorded when first sent, and must not run twice.
  fn requests(&mut self, resent: &[&Request]) -> Vec<Request> {
    let mut out = Vec::new();
    let Some(open) = &self.open else { return out };
    if resent.iter().any(|r| matches!(r, Request::Open(_))) {
      return out; // nothing of the session ran yet: the open itself goes again
    }
    out.push(Request::Open(open.clone()));
    if let Some((key, legacy)) = &self.key {
      if !resent.iter().any(|r| matches!(r, Request::Key(..))) {
        out.push(Request::Key(key.clone(), legacy.clone()));
      }
    }
    if let Some(key) = &self.pragma_key {
      if !resent.iter().any(|r| matches!(r, Request::PragmaKey(_))) {
        out.push(Request::PragmaKey(PragmaKey::Given(key.clone())));
      }
    }
    let prepared_again = |stmt: u32| {
      resent
        .iter()
        .any(|r| matches!(r, Request::Prepare { stmt: s, .. } if *s == stmt))
    };
    for (stmt, (sql, params)) in self.statements.iter().filter(|(stmt, _)| !prepared_again(**stmt)) {
      out.push(Request::Prepare {
        stmt: *stmt,
        sql: sql.clone(),
      });
      if !params.is_none() {
        out.push(Request::Bind {
          stmt: *stmt,
          params: params.clone(),
        });
      }
    }
    out.extend(self.settings.iter().map(|s| Request::Configure(*s)));
    out.extend(
      self
        .pragmas
        .values()
        .map(|sql| Request::Exec { sql: sql.clone() }),
    );
    if std::mem::take(&mut self.lost_txn) {
      out.push(Request::Abort);
    }
    out
  }

  fn sql_of(&self, request: &Request) -> Option<String> {
    match request {
      Request::Query { sql, .. } | Request::Exec { sql } => Some(sql.clone()),
      Request::Execute { stmt, .. } => self.statements.get(stmt).map(|(sql, _)| sql.clone()),
      _ => None,
    }
  }
}

/// A key never crosses the socket with `open` (docs/security.md); `init({ key })` does, on an
/// authenticated connection, because the user sent it to the master on purpose. A `PRAGMA key`
/// is tried against the file here, and only the verdict travels.
fn for_the_wire(request: Request, open: Option<&OpenOptions>) -> Request {
  match request {
    Request::Open(mut options) => {
      options.key = None;
      Request::Open(options)
    }
    Request::PragmaKey(PragmaKey::Given(key)) => {
      let right = open.is_some_and(|o| crate::engine::prove_key(&o.filename, &key, o.verbose));
      Request::PragmaKey(PragmaKey::Checked(right))
    }
    other => other,
  }
}

/// A member's deliveries: tracks its transaction state, hides answers to replays, and holds
/// back the answer to an open sent to another process's master until the member's own key has
/// been proved against the file (`KeyCheck`).
pub struct MemberSink {
  out: Arc<dyn Sink>,
  in_txn: AtomicBool,
  check: Arc<Mutex<KeyCheck>>,
}

/// The key of a member's open is never sent to the master, so the master cannot tell a client
/// with the wrong key; such a client would only fail when it took over, leaving every other
/// process without a usable master. So a client proves its key itself, on a second read-only
/// connection, before its open succeeds.
enum KeyCheck {
  None,
  /// The open `id` went to a master with this key.
  Armed {
    id: u32,
    options: OpenOptions,
  },
  /// The master answered the open; the check runs. Everything for the member waits here.
  Running {
    held: Vec<Outgoing>,
  },
}

impl MemberSink {
  fn new(out: Arc<dyn Sink>) -> Self {
    MemberSink {
      out,
      in_txn: AtomicBool::new(false),
      check: Arc::new(Mutex::new(KeyCheck::None)),
    }
  }

  fn lock_check(check: &Mutex<KeyCheck>) -> MutexGuard<'_, KeyCheck> {
    check.lock().unwrap_or_else(|e| e.into_inner())
  }

  /// No check of this member's key is running. (An open still waiting for its answer does not
  /// count: after a graceful handover it is sent again, so it may never be answered by the
  /// master it was armed for, and this member may be the only one able to lead.)
  fn key_checked(&self) -> bool {
    !matches!(*Self::lock_check(&self.check), KeyCheck::Running { .. })
  }

  /// The open `id` with a key goes to another process's master: check the key when it answers.
  fn arm(&self, id: u32, options: &OpenOptions) {
    if options.key.is_some() {
      *Self::lock_check(&self.check) = KeyCheck::Armed {
        id,
        options: options.clone(),
      };
    }
  }

  fn deliver(&self, message: Outgoing) {
    let mut check = Self::lock_check(&self.check);
    match &mut *check {
      KeyCheck::None => {
        drop(check);
        self.out.send(message);
      }
      KeyCheck::Running { held } => held.push(message),
      KeyCheck::Armed { id, .. } => {
        let answered = matches!(&message, Outgoing::Reply { id: got, .. } if got == id);
        if !answered {
          drop(check);
          return self.out.send(message);
        }
        let KeyCheck::Armed { options, .. } = std::mem::replace(&mut *check, KeyCheck::None) else {
          unreachable!("matched above")
        };
        if !matches!(
          message,
          Outgoing::Reply {
            response: Response::Done,
            ..
          }
        ) {
          drop(check);
          return self.out.send(message); // the master refused the open itself
        }
        *check = KeyCheck::Running { held: vec![message] };
        drop(check);
        let (state, out) = (self.check.clone(), self.out.clone());
        let spawned = std::thread::Builder::new()
          .name("sqlite3-cluster-key".into())
          .spawn(move || Self::finish(&state, &*out, crate::engine::check_key(&options)));
        if spawned.is_err() {
          Self::finish(&self.check, &*self.out, Ok(()));
        }
      }
    }
  }

  /// Delivers what waited for the check; the open fails instead when the key is wrong.
  fn finish(check: &Mutex<KeyCheck>, out: &dyn Sink, result: Result<(), Error>) {
    let mut check = Self::lock_check(check);
    let KeyCheck::Running { held } = std::mem::replace(&mut *check, KeyCheck::None) else {
      return;
    };
    for (i, message) in held.into_iter().enumerate() {
      match (i, &result, message) {
        (0, Err(e), Outgoing::Reply { id, .. }) => out.send(Outgoing::Reply {
          id,
          response: Response::Error(Error::sqlite(
            rusqlite::ffi::SQLITE_NOTADB,
            format!(
              "{} (this process checked its own `key` against the file before joining the master)",
              e.message()
            ),
          )),
        }),
        (_, _, message) => out.send(message),
      }
    }
  }
}

impl Sink for MemberSink {
  fn send(&self, message: Outgoing) {
    match message {
      Outgoing::Txn(on) => self.in_txn.store(on, Ordering::Release),
      Outgoing::Reply { id: REPLAY, .. } => {}
      message => self.deliver(message),
    }
  }
}

/// One multiplexed connection to the master.
struct Conn {
  generation: u64,
  master_pid: u32,
  queue: Mutex<ConnQueue>,
  wake: Notify,
  /// Stops the reader when the link is given up while the master still holds the socket open
  /// (a frozen master).
  stop: Notify,
}

#[derive(Default)]
struct ConnQueue {
  /// Frames not yet taken by the writer.
  frames: Vec<Up>,
  /// Requests written and not yet finished: `(session, id)` → (write order, request).
  written: HashMap<(u32, u32), (u64, Request)>,
  sequence: u64,
  /// The link is gone: the writer stops.
  dead: bool,
  /// The process is leaving: the writer flushes and stops.
  closing: bool,
  /// When the master was last heard from, and since when a request has waited for it (`None`
  /// while nothing is written and unanswered): the heartbeat's clock.
  heard: Option<Instant>,
  waiting_since: Option<Instant>,
}

impl Conn {
  fn lock(&self) -> MutexGuard<'_, ConnQueue> {
    self.queue.lock().unwrap_or_else(|e| e.into_inner())
  }

  fn push(&self, up: Up) {
    self.lock().frames.push(up);
    self.wake.notify_one();
  }

  /// Queues without waking the writer: the caller flushes after a burst (see `Node::flush`).
  fn stage(&self, up: Up) {
    self.lock().frames.push(up);
  }
}

/// A Database's membership; dropping it leaves the node.
pub struct Membership {
  node: Arc<Node>,
  session: u32,
  left: bool,
}

impl Membership {
  /// Joins the node of `options.sock` (started if this process has none). `out` receives the
  /// member's replies and events, starting with a `Role` once a link is up.
  pub fn join(options: NodeOptions, out: Arc<dyn Sink>) -> Result<Membership, Error> {
    let paths = Paths::new(&options.sock)?;
    let node = {
      let mut nodes = NODES.lock().unwrap_or_else(|e| e.into_inner());
      match nodes.get(&options.sock).and_then(Weak::upgrade) {
        Some(node) => node,
        None => {
          nodes.retain(|_, node| node.strong_count() > 0);
          let node = Arc::new(Node {
            paths,
            options: options.clone(),
            state: Mutex::new(State {
              link: Link::Down {
                pending: VecDeque::new(),
              },
              members: BTreeMap::new(),
              next_session: 1,
              generation: 0,
              electing: false,
              master_keyed: None,
            }),
          });
          nodes.insert(options.sock.clone(), Arc::downgrade(&node));
          node
        }
      }
    };
    let session = node.add_member(options.intent, out)?;
    Ok(Membership {
      node,
      session,
      left: false,
    })
  }

  pub fn send(&self, id: u32, request: Request) {
    self.node.send(self.session, id, request);
  }

  pub fn resume(&self) {
    self.node.signal(
      self.session,
      Up::Resume {
        session: self.session,
      },
    );
  }

  /// Sends the requests queued since the last flush (client link).
  pub fn flush(&self) {
    self.node.flush();
  }

  pub fn interrupt(&self) {
    self.node.signal(
      self.session,
      Up::Interrupt {
        session: self.session,
      },
    );
  }

  /// Leaves the node; `done` runs when that is complete (after a graceful handover when this
  /// was the master's last Database).
  pub fn leave(&mut self, done: Box<dyn FnOnce() + Send>) {
    if !std::mem::replace(&mut self.left, true) {
      self.node.clone().remove_member(self.session, done);
    } else {
      done();
    }
  }
}

impl Drop for Membership {
  fn drop(&mut self) {
    if !self.left {
      self.leave(Box::new(|| {}));
    }
  }
}

/// How a client's link to its master ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loss {
  /// The master said `Closing`: what it left unanswered never ran.
  Graceful,
  /// The connection broke.
  Dropped,
  /// The heartbeat heard nothing for this long.
  Unresponsive(Duration),
}

enum Attempt {
  /// No master now: try the lock, or again later.
  Retry,
  /// A master answered and refused us, or cannot be used: give up with this error.
  Fatal(Error),
  /// A master answered but takes no more clients now: look again, and say why if it lasts.
  Full(String),
}

impl Node {
  fn lock(&self) -> MutexGuard<'_, State> {
    self.state.lock().unwrap_or_else(|e| e.into_inner())
  }

  fn add_member(self: &Arc<Self>, intent: Intent, out: Arc<dyn Sink>) -> Result<u32, Error> {
    let mut state = self.lock();
    if let (Intent::Serve, Link::Client { conn }) = (intent, &state.link) {
      return Err(master_exists(&self.paths, Some(conn.master_pid)));
    }
    let session = state.next_session;
    state.next_session += 1;
    let sink = Arc::new(MemberSink::new(out));
    let mut member = Member {
      sink: sink.clone(),
      local: None,
      replay: Replay::default(),
    };
    match &state.link {
      Link::Master { engine, .. } => {
        member.local = Some(engine.attach(sink.clone()));
        sink.send(Outgoing::Role {
          role: Role::Master,
          master_pid: std::process::id(),
        });
      }
      Link::Client { conn } => {
        conn.push(Up::Attach { session });
        sink.send(Outgoing::Role {
          role: Role::Client,
          master_pid: conn.master_pid,
        });
      }
      Link::Down { .. } => {}
    }
    // The election starts with the member's first request (its open, see `send`): a master
    // must have the file open before it serves anyone.
    state.members.insert(session, member);
    Ok(session)
  }

  fn send(self: &Arc<Self>, session: u32, id: u32, request: Request) {
    let mut state = self.lock();
    if let Link::Down { pending } = &mut state.link {
      let mut pending = std::mem::take(pending);
      pending.push_back((session, id, request));
      Self::close_in_place(&mut state, &mut pending);
      let waiting = !pending.is_empty();
      state.link = Link::Down { pending };
      if waiting {
        self.start_election(&mut state, self.options.connect_timeout);
      }
      return;
    }
    Self::dispatch(&mut state, session, id, request);
  }

  /// Records a request for replay and hands it to the link (which must be up).
  fn dispatch(state: &mut State, session: u32, id: u32, request: Request) {
    let Some(member) = state.members.get_mut(&session) else {
      return;
    };
    member.replay.record(&request);
    match &state.link {
      Link::Master { .. } => {
        if let Some(local) = &member.local {
          local.send(id, request);
        }
      }
      Link::Client { conn } => {
        if let Request::Open(options) = &request {
          member.sink.arm(id, options);
        }
        let request = for_the_wire(request, member.replay.open.as_ref());
        conn.stage(Up::Request { session, id, request })
      }
      Link::Down { .. } => unreachable!("dispatch needs a link"),
    }
  }

  /// Writes what `dispatch` staged. JavaScript calls it once per burst of calls (a microtask),
  /// so requests issued together leave in one write.
  fn flush(&self) {
    if let Link::Client { conn } = &self.lock().link {
      conn.wake.notify_one();
    }
  }

  /// `Resume` and `Interrupt`: meaningful only for the current link.
  fn signal(&self, session: u32, up: Up) {
    let state = self.lock();
    match &state.link {
      Link::Master { .. } => {
        if let Some(local) = state.members.get(&session).and_then(|m| m.local.as_ref()) {
          match up {
            Up::Resume { .. } => local.resume(),
            _ => local.interrupt(),
          }
        }
      }
      Link::Client { conn } => conn.push(up),
      Link::Down { .. } => {}
    }
  }

  fn remove_member(self: Arc<Self>, session: u32, done: Box<dyn FnOnce() + Send>) {
    let mut state = self.lock();
    let Some(member) = state.members.remove(&session) else {
      drop(state);
      return done();
    };
    match &mut state.link {
      Link::Client { conn } => conn.push(Up::Detach { session }),
      Link::Down { pending } => pending.retain(|(s, _, _)| *s != session),
      Link::Master { .. } => {}
    }
    if !state.members.is_empty() {
      drop(state);
      drop(member); // a local session detaches from the engine here
      return done();
    }
    {
      let mut nodes = NODES.lock().unwrap_or_else(|e| e.into_inner());
      if nodes
        .get(&self.options.sock)
        .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self)))
      {
        nodes.remove(&self.options.sock);
      }
    }
    let link = std::mem::replace(
      &mut state.link,
      Link::Down {
        pending: VecDeque::new(),
      },
    );
    drop(state);
    match link {
      Link::Master {
        engine,
        server,
        note,
        file,
        lock,
      } => {
        // Graceful handover: stop accepting, answer what clients sent and let their open
        // transactions finish, tell them, close SQLite, then release the lock. This member's
        // session stays until the clients are done: it keeps the connection open for them.
        let paths = self.paths.clone();
        super::runtime().spawn(async move {
          if let Some(server) = server {
            server.shutdown().await;
          }
          paths.unpublish();
          if let Some(note) = note {
            identity::unpublish(&note, &paths.sock);
          }
          drop(member);
          let _ = tokio::task::spawn_blocking(move || engine.barrier()).await;
          drop(file);
          drop(lock);
          done();
        });
      }
      Link::Client { conn } => {
        let mut queue = conn.lock();
        queue.closing = true;
        drop(queue);
        conn.wake.notify_one();
        done();
      }
      Link::Down { .. } => done(),
    }
  }

  /// Looks for a master (client or master) for at most `within`.
  fn start_election(self: &Arc<Self>, state: &mut State, within: Duration) {
    if !state.electing {
      state.electing = true;
      super::runtime().spawn(elect(self.clone(), Instant::now() + within));
    }
  }

  fn can_lead(&self) -> bool {
    if self.options.intent == Intent::Connect {
      return false;
    }
    let state = self.lock();
    // A key still being checked against the file does not count yet.
    state.master_keyed != Some(true)
      || state
        .members
        .values()
        .any(|m| m.replay.has_key() && m.sink.key_checked())
  }

  fn has_members(&self) -> bool {
    !self.lock().members.is_empty()
  }

  /// The election failed: every waiting request gets `error`.
  fn fail(&self, error: Error) {
    let mut state = self.lock();
    state.electing = false;
    if let Link::Down { pending } = &mut state.link {
      let pending = std::mem::take(pending);
      for (session, id, _) in pending {
        if let Some(member) = state.members.get(&session) {
          member.sink.send(Outgoing::Reply {
            id,
            response: Response::Error(error.clone()),
          });
        }
      }
    }
  }

  fn become_client(
    self: &Arc<Self>,
    reader: FrameReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
    challenge: Challenge,
  ) {
    let mut state = self.lock();
    if state.members.is_empty() {
      state.electing = false;
      return;
    }
    state.generation += 1;
    state.master_keyed = Some(challenge.keyed);
    let conn = Arc::new(Conn {
      generation: state.generation,
      master_pid: challenge.pid,
      queue: Mutex::new(ConnQueue::default()),
      wake: Notify::new(),
      stop: Notify::new(),
    });
    let pending = match std::mem::replace(&mut state.link, Link::Client { conn: conn.clone() }) {
      Link::Down { pending } => pending,
      _ => VecDeque::new(),
    };
    for (session, member) in state.members.iter_mut() {
      member.local = None;
      conn.push(Up::Attach { session: *session });
      for request in member.replay.requests(&resent_by(&pending, *session)) {
        let request = for_the_wire(request, member.replay.open.as_ref());
        conn.push(Up::Request {
          session: *session,
          id: REPLAY,
          request,
        });
      }
      member.sink.send(Outgoing::Role {
        role: Role::Client,
        master_pid: challenge.pid,
      });
    }
    for (session, id, request) in pending {
      Self::dispatch(&mut state, session, id, request);
    }
    conn.wake.notify_one();
    state.electing = false;
    drop(state);
    let runtime = super::runtime();
    runtime.spawn(client_writer(conn.clone(), write, Arc::downgrade(self)));
    runtime.spawn(heartbeat(
      conn.clone(),
      Arc::downgrade(self),
      heartbeat_timeout(self.options.connect_timeout),
    ));
    runtime.spawn(client_reader(conn, reader, Arc::downgrade(self)));
  }

  fn become_master(self: &Arc<Self>, lock: Lock, file: Option<FileLock>) {
    let listener = match self.paths.bind() {
      Ok(listener) => listener,
      Err(e) => return self.fail(e),
    };
    let engine = Engine::for_file(&self.options.filename);
    let mut state = self.lock();
    if state.members.is_empty() {
      state.electing = false;
      return;
    }
    let pending = match std::mem::replace(
      &mut state.link,
      Link::Master {
        engine: engine.clone(),
        server: None,
        note: None,
        file,
        lock,
      },
    ) {
      Link::Down { pending } => pending,
      _ => VecDeque::new(),
    };
    // Members holding the key open the connection first.
    let mut order: Vec<u32> = state.members.keys().copied().collect();
    order.sort_by_key(|s| !state.members[s].replay.has_key());
    for session in order {
      let member = state.members.get_mut(&session).expect("listed above");
      let local = engine.attach(member.sink.clone());
      for request in member.replay.requests(&resent_by(&pending, session)) {
        local.send(REPLAY, request);
      }
      member.local = Some(local);
      member.sink.send(Outgoing::Role {
        role: Role::Master,
        master_pid: std::process::id(),
      });
    }
    for (session, id, request) in pending {
      Self::dispatch(&mut state, session, id, request);
    }
    let keyed = state
      .members
      .values()
      .any(|m| m.replay.has_key() || m.replay.open.as_ref().is_some_and(|o| o.deferred_key));
    let config = ServerConfig {
      engine,
      secret: self.options.secret.clone(),
      keyed,
      sock: self.paths.sock.clone(),
    };
    match Server::start(listener, config) {
      Ok(server) => {
        if let Link::Master {
          server: slot, note, ..
        } = &mut state.link
        {
          *slot = Some(server);
          *note = identity::publish(&self.options.filename, &self.paths.sock);
        }
      }
      Err(_) => self.paths.unpublish(), // this process still works; clients time out clearly
    }
    state.electing = false;
  }

  /// The connection of `generation` ended, or was given up.
  fn link_lost(self: &Arc<Self>, generation: u64, loss: Loss) {
    let mut state = self.lock();
    let conn = match &state.link {
      Link::Client { conn } if conn.generation == generation => conn.clone(),
      _ => return,
    };
    let graceful = loss == Loss::Graceful;
    let (unsent, written) = {
      let mut queue = conn.lock();
      queue.dead = true;
      (
        std::mem::take(&mut queue.frames),
        std::mem::take(&mut queue.written),
      )
    };
    conn.wake.notify_one();
    conn.stop.notify_one();
    let mut written: Vec<_> = written.into_iter().collect();
    written.sort_by_key(|(_, (sequence, _))| *sequence);
    let mut pending = VecDeque::new();
    for ((session, id), (_, request)) in written {
      let Some(member) = state.members.get_mut(&session) else {
        continue;
      };
      if id == REPLAY {
        continue; // replays are made again from the member's state
      }
      if graceful {
        // The master read it but promised it never ran: the next master runs it.
        pending.push_back((session, id, request));
        continue;
      }
      if let Request::Close = request {
        // Its session went with that master.
        member.sink.send(Outgoing::Reply {
          id,
          response: Response::Done,
        });
        continue;
      }
      if member
        .replay
        .sql_of(&request)
        .is_some_and(|sql| begins_transaction(&sql))
      {
        member.replay.lost_txn = true;
      }
      let error = match loss {
        Loss::Unresponsive(silent) => cluster_error(
          ClusterCode::MasterUnresponsive,
          format!(
            "the master (pid {}) has not answered for {} ms (stopped or frozen?); the statement may or may not have run, and may still run if the master resumes: check before repeating it",
            conn.master_pid,
            silent.as_millis()
          ),
        ),
        _ => cluster_error(
          ClusterCode::MasterLost,
          format!(
            "the master (pid {}) was lost before it answered; the statement may or may not have run, check before repeating it",
            conn.master_pid
          ),
        ),
      };
      member.sink.send(Outgoing::Reply {
        id,
        response: Response::Error(error),
      });
    }
    for up in unsent {
      if let Up::Request { session, id, request } = up {
        if id != REPLAY {
          pending.push_back((session, id, request));
        }
      }
    }
    for member in state.members.values_mut() {
      if member.sink.in_txn.swap(false, Ordering::AcqRel) {
        member.replay.lost_txn = true;
      }
      member.sink.out.reset();
    }
    Self::close_in_place(&mut state, &mut pending);
    state.link = Link::Down { pending };
    if !state.members.is_empty() {
      // After a frozen master, what waits gets the rest of `connectTimeout` in all.
      let within = match loss {
        Loss::Unresponsive(silent) => self.options.connect_timeout.saturating_sub(silent),
        _ => self.options.connect_timeout,
      };
      self.start_election(&mut state, within);
    }
  }

  /// A `close()` with nothing of its member before it, waiting for a master: the session it
  /// would close went with the last master (or never reached one), so it is done here; a
  /// process that is leaving does not have to elect a master first. A member with prepared
  /// statements still goes to the master, which refuses the close as node-sqlite3 does.
  fn close_in_place(state: &mut State, pending: &mut VecDeque<(u32, u32, Request)>) {
    let mut seen = std::collections::HashSet::new();
    pending.retain(|(session, id, request)| {
      let first = seen.insert(*session);
      let Some(member) = state.members.get(session) else {
        return false;
      };
      if first && matches!(request, Request::Close) && member.replay.statements.is_empty() {
        member.sink.send(Outgoing::Reply {
          id: *id,
          response: Response::Done,
        });
        return false;
      }
      true
    });
  }

  /// Delivers what the master sent.
  fn deliver(&self, frames: &mut Vec<Down>) {
    let state = self.lock();
    for down in frames.drain(..) {
      if let Down::Message { session, message } = down {
        if let Some(member) = state.members.get(&session) {
          member.sink.send(message);
        }
      }
    }
  }
}

/// How long a master may stay silent while requests wait for it: half of `connectTimeout`, so
/// that with the new election that follows, what waits has failed within about `connectTimeout`.
fn heartbeat_timeout(connect_timeout: Duration) -> Duration {
  (connect_timeout / 2).max(Duration::from_millis(100))
}

/// The requests of `session` waiting for the next master.
fn resent_by(pending: &VecDeque<(u32, u32, Request)>, session: u32) -> Vec<&Request> {
  pending
    .iter()
    .filter(|(s, _, _)| *s == session)
    .map(|(_, _, request)| request)
    .collect()
}

fn elsewhere_why() -> String {
  "another process is master of this database file through another path to it (a hard link in another folder, or another `sock`), and its socket cannot be found from here: give every process the same `sock`".into()
}

fn master_elsewhere(filename: &str) -> Error {
  Error::MasterExists {
    master_pid: None,
    message: format!("{filename}: {}", elsewhere_why()),
  }
}

fn master_exists(paths: &Paths, pid: Option<u32>) -> Error {
  let pid = pid.or_else(|| paths.holder_pid());
  let who = pid.map_or("another process".to_string(), |p| format!("process {p}"));
  Error::MasterExists {
    master_pid: pid,
    message: format!(
      "{who} is already the master of {}; connect to it (leave `serve` unset) instead",
      paths.sock.display()
    ),
  }
}

async fn elect(node: Arc<Node>, deadline: Instant) {
  let options = node.options.clone();
  let mut delay = Duration::from_millis(1);
  let mut stalled_pid = None;
  let mut full = None;
  let mut taken_elsewhere = false;
  loop {
    if !node.has_members() {
      node.lock().electing = false;
      return;
    }
    if options.intent != Intent::Serve {
      // Our socket, then (when the file has a master through another path) that master's.
      let elsewhere = identity::master_sock(&options.filename).filter(|s| *s != node.paths.sock);
      for sock in std::iter::once(&node.paths.sock).chain(elsewhere.as_ref()) {
        match connect(&node, sock, deadline).await {
          Ok((reader, write, challenge)) => return node.become_client(reader, write, challenge),
          Err(Attempt::Fatal(e)) => return node.fail(e),
          Err(Attempt::Full(why)) => full = Some(why),
          Err(Attempt::Retry) => {}
        }
      }
    }
    if node.can_lead() {
      match node.paths.try_lock() {
        Ok(Some(lock)) => match identity::claim(&options.filename) {
          Ok(Claim::Taken(file)) => return node.become_master(lock, file),
          Ok(Claim::Held) if options.intent == Intent::Serve => {
            return node.fail(master_elsewhere(&options.filename))
          }
          Ok(Claim::Held) => {
            drop(lock);
            taken_elsewhere = true;
          }
          Err(e) => return node.fail(e),
        },
        Ok(None) if options.intent == Intent::Serve => return node.fail(master_exists(&node.paths, None)),
        Ok(None) => stalled_pid = node.paths.holder_pid(),
        Err(e) => return node.fail(e),
      }
    }
    let now = Instant::now();
    if now >= deadline {
      let why = match stalled_pid {
        _ if full.is_some() => full.take().expect("checked"),
        _ if taken_elsewhere => elsewhere_why(),
        Some(pid) => format!("the master (pid {pid}) holds the lock but does not answer (stopped?)"),
        None if options.intent == Intent::Connect => {
          "no process serves it (a `connect` client never becomes master)".into()
        }
        None => "no process serves it".into(),
      };
      return node.fail(cluster_error(
        ClusterCode::NoMaster,
        format!(
          "no master at {} within {} ms: {why}",
          options.sock.display(),
          options.connect_timeout.as_millis()
        ),
      ));
    }
    // Spreads the retries of processes that started together (not a secret: the clock will do).
    let clock = std::time::SystemTime::now()
      .duration_since(std::time::UNIX_EPOCH)
      .map_or(0, |d| d.subsec_nanos());
    let spread = u64::from(clock ^ std::process::id()) % 256;
    let jitter = Duration::from_micros(spread * delay.as_micros() as u64 / 256);
    tokio::time::sleep((delay + jitter).min(deadline - now)).await;
    delay = (delay * 2).min(Duration::from_millis(50));
  }
}

/// Connects and authenticates (both ways) to the master, if one answers.
async fn connect(
  node: &Node,
  sock: &std::path::Path,
  deadline: Instant,
) -> Result<(FrameReader<OwnedReadHalf>, OwnedWriteHalf, Challenge), Attempt> {
  use std::io::ErrorKind;
  let stream = match UnixStream::connect(sock).await {
    Ok(stream) => stream,
    // Anything but a refusal to let us in is passing (no socket, nobody listening while a
    // master starts or closes, a full backlog, a reset while it closes): look again.
    Err(e) if e.kind() != ErrorKind::PermissionDenied => return Err(Attempt::Retry),
    Err(e) => {
      return Err(Attempt::Fatal(Error::sqlite(
        rusqlite::ffi::SQLITE_CANTOPEN,
        format!("cannot connect to the cluster socket {}: {e}", sock.display()),
      )))
    }
  };
  match stream.peer_cred() {
    Ok(cred) if cred.uid() == auth::euid() => {}
    Ok(cred) => {
      return Err(Attempt::Fatal(cluster_error(
        ClusterCode::Auth,
        format!(
          "the process serving {} runs as uid {}, not as this process's uid {}: refusing to talk to it",
          sock.display(),
          cred.uid(),
          auth::euid()
        ),
      )))
    }
    Err(_) => return Err(Attempt::Retry),
  }
  let (read, mut write) = stream.into_split();
  let mut reader = FrameReader::new(read, wire::HANDSHAKE_LIMIT);
  let secret = node.options.secret.clone();
  let handshake = async {
    let nonce = auth::nonce().map_err(|e| {
      Attempt::Fatal(cluster_error(
        ClusterCode::Auth,
        format!("no random numbers for the handshake with the master ({e}): the kernel's getrandom failed"),
      ))
    })?;
    let hello = Hello {
      magic: wire::MAGIC,
      version: wire::VERSION,
      pid: std::process::id(),
      nonce,
    };
    let mut out = Vec::new();
    wire::encode(&hello, &mut out).map_err(|_| Attempt::Retry)?;
    write.write_all(&out).await.map_err(|_| Attempt::Retry)?;
    let challenge: Challenge = match reader.next().await {
      Ok(Some(c)) => c,
      Ok(None) | Err(wire::WireError::Io(_)) => return Err(Attempt::Retry),
      Err(e) => {
        return Err(Attempt::Fatal(cluster_error(
          ClusterCode::Protocol,
          format!(
            "the process at {} is not a sqlite3-cluster master this version understands ({e})",
            sock.display()
          ),
        )))
      }
    };
    if challenge.magic != wire::MAGIC || challenge.version != wire::VERSION {
      return Err(Attempt::Fatal(cluster_error(
        ClusterCode::Protocol,
        format!(
          "the master (pid {}) speaks cluster protocol {}, this process speaks {}: run one sqlite3-cluster version in every process",
          challenge.pid,
          challenge.version,
          wire::VERSION
        ),
      )));
    }
    let ours = secret.as_deref();
    if !auth::verify(
      ours,
      auth::MASTER,
      &nonce,
      &challenge.nonce,
      challenge.proof.as_ref(),
    ) {
      let why = match (ours, challenge.proof) {
        (None, _) => "the master requires a `secret` and this process has none",
        (Some(_), None) => "this process has a `secret` but the master has none",
        (Some(_), Some(_)) => "the master does not know this process's `secret`",
      };
      return Err(Attempt::Fatal(cluster_error(
        ClusterCode::Auth,
        format!(
          "{why} (master pid {}); give every process the same `secret`",
          challenge.pid
        ),
      )));
    }
    let proof = Proof {
      proof: ours.map(|s| auth::prove(s, auth::CLIENT, &challenge.nonce, &nonce)),
    };
    out.clear();
    wire::encode(&proof, &mut out).map_err(|_| Attempt::Retry)?;
    write.write_all(&out).await.map_err(|_| Attempt::Retry)?;
    match reader.next::<Verdict>().await {
      Ok(Some(Verdict::Welcome)) => Ok(challenge),
      Ok(Some(Verdict::Refused(why))) => Err(Attempt::Fatal(cluster_error(
        ClusterCode::Auth,
        format!("the master (pid {}) refused this process: {why}", challenge.pid),
      ))),
      Ok(Some(Verdict::Full(why))) => Err(Attempt::Full(format!(
        "the master (pid {}) takes no more clients: {why}",
        challenge.pid
      ))),
      _ => Err(Attempt::Retry),
    }
  };
  let limit = deadline
    .saturating_duration_since(Instant::now())
    .clamp(Duration::from_millis(50), Duration::from_secs(5));
  match tokio::time::timeout(limit, handshake).await {
    Ok(Ok(challenge)) => {
      reader.set_limit(wire::FRAME_LIMIT);
      Ok((reader, write, challenge))
    }
    Ok(Err(attempt)) => Err(attempt),
    Err(_) => Err(Attempt::Retry),
  }
}

async fn client_writer(conn: Arc<Conn>, mut write: OwnedWriteHalf, node: Weak<Node>) {
  let mut buffer = Vec::with_capacity(64 << 10);
  loop {
    conn.wake.notified().await;
    let (frames, closing) = {
      let mut queue = conn.lock();
      if queue.dead {
        return;
      }
      let frames = std::mem::take(&mut queue.frames);
      for up in &frames {
        if let Up::Request { session, id, request } = up {
          if queue.waiting_since.is_none() {
            queue.waiting_since = Some(Instant::now());
          }
          queue.sequence += 1;
          let sequence = queue.sequence;
          queue.written.insert((*session, *id), (sequence, request.clone()));
        }
      }
      (frames, queue.closing)
    };
    buffer.clear();
    for up in &frames {
      if let Err(e) = wire::encode(up, &mut buffer) {
        // Too large to send: answer it here instead.
        if let Up::Request { session, id, .. } = up {
          conn.lock().written.remove(&(*session, *id));
          if let Some(node) = node.upgrade() {
            let error = Error::sqlite(
              rusqlite::ffi::SQLITE_TOOBIG,
              format!("the request cannot be sent to the master: {e}"),
            );
            let mut reply = vec![Down::Message {
              session: *session,
              message: Outgoing::Reply {
                id: *id,
                response: Response::Error(error),
              },
            }];
            node.deliver(&mut reply);
          }
        }
      }
    }
    if !buffer.is_empty() && write.write_all(&buffer).await.is_err() {
      // The master closed its end. The reader tells how: its `Closing` may be waiting to be
      // read, and then what this write carried never ran and goes to the next master.
      return;
    }
    if closing {
      let _ = write.shutdown().await;
      return;
    }
    if buffer.capacity() > 4 << 20 {
      buffer = Vec::with_capacity(64 << 10);
    }
  }
}

async fn client_reader(conn: Arc<Conn>, mut reader: FrameReader<OwnedReadHalf>, node: Weak<Node>) {
  let mut frames = Vec::new();
  loop {
    frames.clear();
    let result = tokio::select! {
      result = reader.batch::<Down>(&mut frames) => result,
      _ = conn.stop.notified() => return,
    };
    let ended = result.is_err() || frames.is_empty();
    let mut graceful = false;
    {
      let mut queue = conn.lock();
      queue.heard = Some(Instant::now());
      for down in &frames {
        if let Some(key) = down.finishes_request() {
          queue.written.remove(&key);
        }
        graceful |= matches!(down, Down::Closing);
      }
      if queue.written.is_empty() {
        queue.waiting_since = None;
      }
      if queue.closing && ended {
        return; // we left; the master closed its end
      }
    }
    let Some(node) = node.upgrade() else { return };
    node.deliver(&mut frames);
    if graceful || ended {
      node.link_lost(
        conn.generation,
        if graceful { Loss::Graceful } else { Loss::Dropped },
      );
      return;
    }
  }
}

/// The client's heartbeat: while requests wait for answers and the master has been silent for
/// a quarter of `timeout`, ask it `Ping`; its socket tasks answer at once, whatever its engine
/// is doing (a long query does not count as silence). Silent for `timeout`: the master is
/// stopped or frozen, and the link is given up (`Loss::Unresponsive`).
async fn heartbeat(conn: Arc<Conn>, node: Weak<Node>, timeout: Duration) {
  let interval = (timeout / 4).max(Duration::from_millis(10));
  let mut tick = Instant::now();
  // When this process was itself stopped (SIGSTOP, a debugger), the master's silence is ours:
  // it is counted again from the moment we run again.
  let mut awake_since = tick;
  loop {
    tokio::time::sleep(interval).await;
    let now = Instant::now();
    if now - tick > interval * 2 {
      awake_since = now;
    }
    tick = now;
    let silent = {
      let queue = conn.lock();
      if queue.dead || queue.closing {
        return;
      }
      match (queue.waiting_since, queue.heard) {
        (None, _) => continue,
        (Some(waiting), heard) => now - waiting.max(heard.unwrap_or(waiting)).max(awake_since),
      }
    };
    if silent >= timeout {
      if let Some(node) = node.upgrade() {
        node.link_lost(conn.generation, Loss::Unresponsive(silent));
      }
      return;
    }
    if silent >= interval {
      conn.push(Up::Ping);
    }
  }
}
