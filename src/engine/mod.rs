//! The engine: one thread per open database file, owning its only connection.
//!
//! Every Database handle in this process, and (in a master) every client connection, is a
//! *session* of the engine of its file. A session's requests run in the order it sent them;
//! while a session is inside a transaction only its requests run (docs/sessions.md). The engine thread
//! is a plain OS thread: it never runs on a tokio worker and never blocks the JavaScript thread.
//!
//! This file is the handle other threads hold (`Engine`, `SessionHandle`, `Sink`). On the
//! engine thread:
//! - `scheduler`: which session runs next (turn order, transaction pinning, `transactionTimeout`,
//!   flow control, the graceful-close guard);
//! - `requests/`: what each request does and answers, with node-sqlite3's semantics, one file per
//!   family (statements, `each()`, exec, open and keys, configure, backup);
//! - `session`: one session's state; `policy`: the rules in which sessions differ (a local
//!   Database, a cluster client);
//! - `database`: the connection and what lives on it; `read_group`, `stream` (`each()` chunks and
//!   windows), `cache`, `settings`, `backup`, `identity` (the file's path watched), `sqlcipher3`,
//!   `journal` (WAL by default);
//! - `read_pool` and `reader`: the read connections, each on a thread of its own, that run the
//!   reads of sessions outside a transaction; `local_state`: what keeps reads on the writer;
//! - `connection`: the SQLite C API; `sql` and `lexer`: what the engine reads from SQL text;
//!   `keys`: proving a key against a file.

mod backup;
mod cache;
mod client_reads;
mod connection;
mod database;
mod identity;
mod journal;
mod keys;
mod lexer;
mod local_state;
mod log_limit;
mod policy;
mod read_group;
mod read_pool;
mod reader;
mod requests;
mod routing;
mod scheduler;
mod session;
mod settings;
mod sql;
mod sqlcipher3;
mod stream;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, Weak};

use once_cell::sync::Lazy;

use crate::protocol::{Outgoing, Request};

pub use connection::{new_shape, Connection, Statement};
pub use identity::{of as file_identity, Identity};
pub use keys::{check_key, prove_key};
pub use lexer::first_word;
pub use policy::SessionPolicy;
pub use read_pool::default_capacity as default_read_connections;
pub use reader::{GivenBack, OwnReader};
pub use settings::{per_database_pragma, Settings};
pub use sql::{begins_transaction, is_query, is_rollback};

/// Where an engine delivers a session's replies and events. `send` is called on the engine
/// thread and must not block for long: a local sink queues for the JavaScript thread, a
/// socket sink queues for the connection's writer.
pub trait Sink: Send + Sync {
  fn send(&self, message: Outgoing);

  /// The session moved to another engine (failover): shape ids it has seen mean nothing now.
  fn reset(&self) {}

  /// The engine delivered a burst and may now be idle: a sink that buffers passes its messages
  /// on. Every message sent is followed by a `flush` before the engine waits.
  fn flush(&self) {}

  /// The caller runs on the JavaScript thread, in an event of its loop (no JavaScript on the
  /// stack), and calls `deliver_held` before it returns: a sink that delivers to JavaScript
  /// holds what is sent until then and delivers it there, at once, instead of waking the
  /// thread for a later turn of its loop.
  fn hold(&self) {}

  /// Ends `hold`: delivers what was held.
  ///
  /// # Safety
  ///
  /// As `hold` says: on the JavaScript thread, in an event of its loop, with no lock held that
  /// a call from JavaScript takes (JavaScript runs here).
  unsafe fn deliver_held(&self) {}

  /// Whether the session's answers are being taken: while false, the engine runs nothing more
  /// of the session (a client that stopped reading costs the master bounded memory). A sink
  /// that turns ready again calls `Engine::wake`.
  fn ready(&self) -> bool {
    true
  }
}

pub type SessionId = u64;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Engines by database file, so that every `create()` of one file in this process shares one
/// connection. Entries are weak: an engine ends when its last session is gone.
static REGISTRY: Lazy<Mutex<HashMap<PathBuf, Weak<Engine>>>> = Lazy::new(|| Mutex::new(HashMap::new()));

enum Command {
  Attach {
    session: SessionId,
    sink: Arc<dyn Sink>,
    policy: SessionPolicy,
  },
  Request {
    session: SessionId,
    id: u32,
    request: Request,
  },
  /// From now on the session's requests run only while its transaction holds the connection;
  /// the others are answered `Outgoing::NotRun` (see `SessionHandle::guard`).
  Guard {
    session: SessionId,
  },
  /// The session consumed one chunk of an `each()` stream.
  Resume {
    session: SessionId,
  },
  Detach {
    session: SessionId,
  },
  /// Nothing to do but look again at which sessions may run (a sink turned ready).
  Wake,
  /// Answered once every command sent before it has been taken in: after the last session
  /// detaches, the connection is closed by then.
  Barrier(std::sync::mpsc::Sender<()>),
  /// A read connection finished a job of `session` (`reader.rs`): the pool's epoch and the
  /// reader's index, and what came of it.
  ReadDone {
    reader: (u64, usize),
    session: SessionId,
    outcome: reader::Outcome,
  },
  /// The last handle to the engine is gone: the engine thread ends.
  Stop,
}

/// What other threads may see of the engine: the handle `interrupt()` needs.
struct Shared {
  interrupt: Mutex<InterruptTarget>,
  /// Raised by `interrupt()` for the running session; the connection's progress handler stops
  /// the statement, and the engine lowers it when that session's turn ends.
  interrupted: Arc<AtomicBool>,
  /// The sessions running on a read connection now, with that reader's interrupt flag.
  on_readers: Mutex<HashMap<SessionId, Arc<AtomicBool>>>,
}

struct InterruptTarget {
  /// A connection is open (there is something to interrupt).
  open: bool,
  running: SessionId,
}

/// The handle to one engine thread.
pub struct Engine {
  commands: Sender<Command>,
  shared: Arc<Shared>,
}

impl Engine {
  /// The engine of `filename`, started if this process has none. `':memory:'`, `''` and URI
  /// names always get an engine of their own: there is nothing to share.
  pub fn for_file(filename: &str) -> Arc<Engine> {
    let key = match registry_key(filename) {
      Some(key) => key,
      None => return Engine::start(),
    };
    let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(engine) = registry.get(&key).and_then(Weak::upgrade) {
      return engine;
    }
    registry.retain(|_, weak| weak.strong_count() > 0);
    let engine = Engine::start();
    registry.insert(key, Arc::downgrade(&engine));
    engine
  }

  pub(crate) fn start() -> Arc<Engine> {
    let (tx, rx) = mpsc::channel();
    let shared = Arc::new(Shared {
      interrupt: Mutex::new(InterruptTarget {
        open: false,
        running: 0,
      }),
      interrupted: Arc::new(AtomicBool::new(false)),
      on_readers: Mutex::new(HashMap::new()),
    });
    let thread_shared = shared.clone();
    // The readers report on the engine's own channel; the engine thread ends on `Stop`, since
    // this sender keeps the channel open.
    let readers_done = tx.clone();
    std::thread::Builder::new()
      .name("sqlite3-cluster engine".into())
      .spawn(move || scheduler::run(rx, readers_done, thread_shared))
      .expect("the engine thread could not be started");
    Arc::new(Engine { commands: tx, shared })
  }

  /// Starts a session that delivers to `sink`. Its first request must be `Request::Open`.
  pub fn attach(self: &Arc<Engine>, sink: Arc<dyn Sink>) -> SessionHandle {
    self.attach_with(sink, SessionPolicy::LOCAL)
  }

  /// Starts the session of a cluster client (`SessionPolicy::CLUSTER_CLIENT`).
  pub fn attach_remote(self: &Arc<Engine>, sink: Arc<dyn Sink>) -> SessionHandle {
    self.attach_with(sink, SessionPolicy::CLUSTER_CLIENT)
  }

  /// Starts a session that delivers to `sink` and is treated as `policy` says.
  pub fn attach_with(self: &Arc<Engine>, sink: Arc<dyn Sink>, policy: SessionPolicy) -> SessionHandle {
    let session = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    let _ = self.commands.send(Command::Attach {
      session,
      sink,
      policy,
    });
    SessionHandle {
      engine: self.clone(),
      session,
    }
  }
}

/// One session of an engine. Dropping it detaches the session: its statements are finalized
/// and a transaction it left open is rolled back.
pub struct SessionHandle {
  engine: Arc<Engine>,
  session: SessionId,
}

impl SessionHandle {
  pub fn send(&self, id: u32, request: Request) {
    let _ = self.engine.commands.send(Command::Request {
      session: self.session,
      id,
      request,
    });
  }

  /// A master closing gracefully: requests sent after this call run only if the session is
  /// inside a transaction when their turn comes (so the transaction can finish, and commit,
  /// on this master); the others are answered `Outgoing::NotRun` and go to the next master.
  /// Once a session is outside its transaction it cannot enter one again here.
  pub fn guard(&self) {
    let _ = self.engine.commands.send(Command::Guard {
      session: self.session,
    });
  }

  /// Acknowledges one `Chunk` of an `each()` stream.
  pub fn resume(&self) {
    let _ = self.engine.commands.send(Command::Resume {
      session: self.session,
    });
  }

  /// Interrupts this session's statement if one is running now (`SQLITE_INTERRUPT`, as
  /// `sqlite3_interrupt`); another session's statement is never interrupted.
  pub fn interrupt(&self) {
    let target = self
      .engine
      .shared
      .interrupt
      .lock()
      .unwrap_or_else(|e| e.into_inner());
    if target.running == self.session && target.open {
      self.engine.shared.interrupted.store(true, Ordering::Relaxed);
    }
    drop(target);
    let readers = self
      .engine
      .shared
      .on_readers
      .lock()
      .unwrap_or_else(|e| e.into_inner());
    if let Some(flag) = readers.get(&self.session) {
      flag.store(true, Ordering::Relaxed);
    }
  }
}

impl Engine {
  /// Makes the engine look again at sessions whose sink was not ready (see `Sink::ready`).
  pub fn wake(&self) {
    let _ = self.commands.send(Command::Wake);
  }

  /// Waits (blocking) until the engine has taken in everything sent before: the sessions
  /// detached before this call are gone, and the connection is closed if they were the last.
  pub fn barrier(&self) {
    let (tx, rx) = mpsc::channel();
    if self.commands.send(Command::Barrier(tx)).is_ok() {
      let _ = rx.recv_timeout(std::time::Duration::from_secs(10));
    }
  }
}

impl Drop for Engine {
  fn drop(&mut self) {
    let _ = self.commands.send(Command::Stop);
  }
}

impl Drop for SessionHandle {
  fn drop(&mut self) {
    let _ = self.engine.commands.send(Command::Detach {
      session: self.session,
    });
  }
}

/// The path that identifies a database file: the real path of its directory plus its name, so
/// that `./a.db`, `a.db` and a symlinked directory meet in one engine.
pub fn registry_key(filename: &str) -> Option<PathBuf> {
  if filename.is_empty() || filename == ":memory:" || filename.starts_with("file:") {
    return None;
  }
  let path = Path::new(filename);
  if let Ok(real) = std::fs::canonicalize(path) {
    return Some(real);
  }
  let absolute = std::path::absolute(path).ok()?;
  let dir = absolute.parent().and_then(|d| std::fs::canonicalize(d).ok());
  match (dir, absolute.file_name()) {
    (Some(dir), Some(name)) => Some(dir.join(name)),
    _ => Some(absolute),
  }
}
