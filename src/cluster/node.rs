//! A process's place in the cluster of one socket: master, client, or between the two.
//!
//! Every Database of this process that uses the same socket is a *member* of one `Node`. The
//! node holds the link to the database: the engine itself (master, which also serves the
//! socket), one multiplexed connection to the master (client), or nothing while it looks for
//! a master (at start and after failover). Members keep what they need to be re-created on the
//! next master (their open options, prepared statements, settings), so a Database stays
//! usable across failover (docs/failover.md). What becomes of its requests when a link ends is
//! the failover policy's (`failover`); the client connection is `client`; this file holds the
//! role: membership, the election, and becoming master or client.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use once_cell::sync::Lazy;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use super::client::{self, Conn, Owner};
use super::election::{Lock, Paths};
use super::failover::{self, for_the_wire, resent_by, Fate, Loss, Pending, Replay};
use super::handshake::Attempt;
use super::identity::{self, Claim, FileLock};
use super::key_check::KeyCheck;
use super::own_reads::{Asker, MemberReads, OwnReads};
use super::server::{Server, ServerConfig};
use super::wire::{Challenge, Down, FrameReader, FrameWriter, Up, REPLAY};
use crate::engine::{Engine, GivenBack, SessionHandle, Sink};
use crate::error::{ClusterCode, Error};
use crate::protocol::{Outgoing, Request, Response, Role};

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
  /// The read connections of this process, for its reads while it is a client.
  own: OwnReads,
}

enum Link {
  /// Looking for a master; requests wait here in order.
  Down {
    pending: VecDeque<Pending>,
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
  /// Its reads on this process's own read connections, and what waits behind them.
  reads: MemberReads,
}

impl Member {
  /// What the member is, for a read of its that may run on this process's own readers.
  fn asker(session: u32, member: &mut Member, master_keyed: Option<bool>) -> Asker<'_> {
    let key = match master_keyed {
      Some(true) => member.replay.reader_key().map(Some).ok_or(()),
      _ => Ok(None),
    };
    Asker {
      session,
      reads: &mut member.reads,
      open: member.replay.open.as_ref(),
      key,
      in_txn: member.sink.in_txn.load(Ordering::Acquire),
      sink: member.sink.clone(),
    }
  }
}

/// A member's deliveries: tracks its transaction state, hides answers to replays, and holds
/// back the answer to an open sent to another process's master until the member's own key has
/// been proved against the file (`KeyCheck`).
pub struct MemberSink {
  out: Arc<dyn Sink>,
  /// The member's transaction is open on the master: lost with it if the link ends.
  in_txn: AtomicBool,
  check: KeyCheck,
}

impl MemberSink {
  fn new(out: Arc<dyn Sink>) -> Self {
    MemberSink {
      out,
      in_txn: AtomicBool::new(false),
      check: KeyCheck::default(),
    }
  }
}

impl Sink for MemberSink {
  fn send(&self, message: Outgoing) {
    match message {
      Outgoing::Txn(on) => self.in_txn.store(on, Ordering::Release),
      Outgoing::Reply { id: REPLAY, .. } | Outgoing::ClientReads(_) => {}
      message => self.check.pass(message, &self.out),
    }
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
          let node = Arc::new_cyclic(|node: &Weak<Node>| {
            let node = node.clone();
            let done = move |reader, session, given_back| {
              if let Some(node) = node.upgrade() {
                node.own_reads_done(reader, session, given_back);
              }
            };
            Node {
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
                own: OwnReads::new(Arc::new(done)),
              }),
            }
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
      reads: MemberReads::default(),
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
    self.send_in(&mut state, session, id, request);
  }

  /// `send`, under the node's lock.
  fn send_in(self: &Arc<Self>, state: &mut State, session: u32, id: u32, request: Request) {
    // Behind reads running on this process's readers, whatever the link is by now.
    if let Some(member) = state.members.get_mut(&session) {
      if member.reads.is_away() {
        return member.reads.hold(id, request);
      }
    }
    if let Link::Down { pending } = &mut state.link {
      let mut pending = std::mem::take(pending);
      pending.push_back((session, id, request));
      Self::close_in_place(state, &mut pending);
      let waiting = !pending.is_empty();
      state.link = Link::Down { pending };
      if waiting {
        self.start_election(state, self.options.connect_timeout);
      }
      return;
    }
    Self::dispatch(state, session, id, request);
  }

  /// A reader of this process answered the reads of `session`: what the session sent since
  /// goes on, in order (after any read the reader gave back).
  fn own_reads_done(self: &Arc<Self>, reader: usize, session: u32, given_back: Option<GivenBack>) {
    let mut state = self.lock();
    let State {
      own,
      members,
      link,
      master_keyed,
      ..
    } = &mut *state;
    let Some(member) = members.get_mut(&session) else {
      own.finished(reader, &mut MemberReads::default(), given_back);
      return;
    };
    let mut next = VecDeque::from(own.finished(reader, &mut member.reads, given_back));
    // Reads it sent meanwhile (often many, sent in one turn of its event loop) go on together.
    if let Link::Client { .. } = link {
      own.take(Member::asker(session, member, *master_keyed), &mut next);
    }
    for (id, request) in next {
      self.send_in(&mut state, session, id, request);
    }
    if let Link::Client { conn } = &state.link {
      conn.flush();
    }
  }

  /// Records a request for replay and hands it to the link (which must be up).
  fn dispatch(state: &mut State, session: u32, id: u32, request: Request) {
    let State {
      members,
      own,
      link,
      master_keyed,
      ..
    } = state;
    let Some(member) = members.get_mut(&session) else {
      return;
    };
    member.replay.record(&request);
    match link {
      Link::Master { .. } => {
        if let Some(local) = &member.local {
          local.send(id, request);
        }
      }
      Link::Client { conn } => {
        let asker = Member::asker(session, member, *master_keyed);
        let Some(request) = own.try_run(asker, id, request) else {
          return; // it runs on a reader of this process
        };
        if let Request::Open(options) = &request {
          member.sink.check.arm(id, options);
        }
        let stmt_sql = match &request {
          Request::Execute { stmt, .. } => member.replay.statement_sql(*stmt),
          _ => None,
        };
        member.reads.sent(&request, stmt_sql);
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
      conn.flush();
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
      Link::Client { conn } => {
        if let Up::Interrupt { .. } = up {
          state.own.interrupt(session);
        }
        conn.push(up)
      }
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
        conn.close();
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
        .any(|m| m.replay.has_key() && m.sink.check.checked())
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
    write: FrameWriter<OwnedWriteHalf>,
    challenge: Challenge,
  ) {
    let mut state = self.lock();
    if state.members.is_empty() {
      state.electing = false;
      return;
    }
    state.generation += 1;
    state.master_keyed = Some(challenge.keyed);
    let conn = Conn::new(state.generation, challenge.pid);
    let pending = match std::mem::replace(&mut state.link, Link::Client { conn: conn.clone() }) {
      Link::Down { pending } => pending,
      _ => VecDeque::new(),
    };
    for (session, member) in state.members.iter_mut() {
      member.local = None;
      member.reads.link_ended();
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
    conn.flush();
    state.electing = false;
    drop(state);
    let silence = client::heartbeat_timeout(self.options.connect_timeout);
    client::run(&conn, reader, write, Arc::downgrade(self), silence);
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
    state.own.stop();
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
    let (unsent, written) = conn.give_up();
    let mut pending = VecDeque::new();
    for (session, id, request) in written {
      let Some(member) = state.members.get_mut(&session) else {
        continue;
      };
      match loss.fate(conn.master_pid, id, request, &mut member.replay) {
        Fate::Remade => {}
        Fate::Resent(request) => pending.push_back((session, id, request)),
        Fate::Answered(response) => member.sink.send(Outgoing::Reply { id, response }),
      }
    }
    for up in unsent {
      if let Up::Request { session, id, request } = up {
        if let Some(request) = failover::unsent(id, request) {
          pending.push_back((session, id, request));
        }
      }
    }
    for member in state.members.values_mut() {
      member.reads.link_ended();
      member
        .replay
        .link_ended(member.sink.in_txn.swap(false, Ordering::AcqRel));
      member.sink.out.reset();
    }
    Self::close_in_place(&mut state, &mut pending);
    state.link = Link::Down { pending };
    if !state.members.is_empty() {
      self.start_election(&mut state, loss.election_within(self.options.connect_timeout));
    }
  }

  /// Answers the waiting `close()`s that need no master (`failover::close_in_place`).
  fn close_in_place(state: &mut State, pending: &mut VecDeque<Pending>) {
    let closed = failover::close_in_place(pending, |s| state.members.get(&s).map(|m| &m.replay));
    for (session, id) in closed {
      if let Some(member) = state.members.get(&session) {
        member.sink.send(Outgoing::Reply {
          id,
          response: Response::Done,
        });
      }
    }
  }
}

impl Owner for Node {
  /// Delivers what the master sent to its members.
  fn deliver(&self, frames: &mut Vec<Down>) {
    let mut state = self.lock();
    let State { members, own, .. } = &mut *state;
    for down in frames.drain(..) {
      let finishes = down.finishes_request().is_some_and(|(_, id)| id != REPLAY);
      let Down::Message { session, message } = down else {
        continue;
      };
      let Some(member) = members.get_mut(&session) else {
        continue;
      };
      if finishes {
        member.reads.answered();
      }
      match message {
        Outgoing::ClientReads(reads) => own.told(&reads, &mut member.reads),
        message => member.sink.send(message),
      }
    }
  }

  fn lost(self: Arc<Self>, generation: u64, loss: Loss) {
    self.link_lost(generation, loss);
  }
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
        match client::connect(sock, options.secret.as_deref(), deadline).await {
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
