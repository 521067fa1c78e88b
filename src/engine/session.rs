//! One session's state inside the engine: what it asked for (its queue), what it holds on the
//! connection (statements, an `each()` stream, backups), and what the engine knows about it
//! (open, key, settings, hooks, transaction). The scheduler owns the map of sessions; a request
//! borrows its session while it runs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use super::backup::Backup;
use super::connection::Statement;
use super::policy::SessionPolicy;
use super::settings::Settings;
use super::stream::{Stream, Window};
use super::Sink;
use crate::protocol::{ClientReads, Request};

/// The connection hooks a session wants (`db.configure('trace' | 'profile' | 'change')`).
#[derive(Default, Clone, Copy)]
pub(super) struct Hooks {
  pub trace: bool,
  pub profile: bool,
  pub change: bool,
}

impl Hooks {
  /// Every hook that either wants.
  pub fn union(self, other: Hooks) -> Hooks {
    Hooks {
      trace: self.trace || other.trace,
      profile: self.profile || other.profile,
      change: self.change || other.change,
    }
  }

  pub fn any(self) -> bool {
    self.trace || self.profile || self.change
  }
}

pub(super) struct Session {
  pub sink: Arc<dyn Sink>,
  /// The rules in which this session differs from others (a local Database, a cluster client).
  pub policy: SessionPolicy,
  /// Requests waiting, with their arrival numbers (`Scheduler::received`).
  pub queue: VecDeque<(u32, Request, u64)>,
  /// Requests that arrived from this number on are guarded (`Command::Guard`).
  pub guarded_from: u64,
  /// Statements of `db.prepare()`; `None` for a statement of empty SQL (valid, but it fails
  /// with `SQLITE_MISUSE: not an error` when run, as in node-sqlite3).
  pub statements: HashMap<u32, Option<Statement>>,
  /// Statements whose prepare failed: requests for them are dropped.
  pub failed: HashSet<u32>,
  pub opened: bool,
  pub readonly: bool,
  pub awaiting_key: bool,
  /// The connection is keyed but this session has not given the key (or gave a wrong one by
  /// `PRAGMA key`): statements that read the file fail with `SQLITE_NOTADB` and this message.
  pub key_gate: Option<&'static str>,
  /// Its `db.backup()`s in progress, by the id JavaScript gave them.
  pub backups: HashMap<u32, Backup>,
  /// Its per-Database pragmas (`foreign_keys`…), put on the connection for its statements.
  pub settings: Settings,
  pub hooks: Hooks,
  /// Its `each()` in progress, and the chunks its receiver has not acknowledged yet.
  pub stream: Option<Stream>,
  pub window: Window,
  /// What the session was last told about its transaction (`Outgoing::Txn`).
  pub in_txn: bool,
  /// Its transaction was lost: statements fail with `CLUSTER_TXN_ABORTED` until `ROLLBACK`.
  pub aborted: bool,
  /// What it was last told of running its reads itself (`Outgoing::ClientReads`).
  pub told_reads: Option<ClientReads>,
  /// Reads of it run on a read connection now: its next request waits for their answers.
  pub away: bool,
  /// The read connection (pool epoch, index) that holds its `each()` between chunks, and the
  /// request id that `each()` answers.
  pub streaming_on: Option<((u64, usize), u32)>,
}

impl Session {
  pub fn new(sink: Arc<dyn Sink>, policy: SessionPolicy) -> Session {
    Session {
      sink,
      policy,
      queue: VecDeque::new(),
      guarded_from: u64::MAX,
      statements: HashMap::new(),
      failed: HashSet::new(),
      opened: false,
      readonly: false,
      awaiting_key: false,
      key_gate: None,
      backups: HashMap::new(),
      settings: Settings::default(),
      hooks: Hooks::default(),
      stream: None,
      window: Window::default(),
      in_txn: false,
      aborted: false,
      told_reads: None,
      away: false,
      streaming_on: None,
    }
  }

  /// Lets go of everything it holds on the connection (its stream, statements and backups), so
  /// that the connection can close.
  pub fn release(&mut self) {
    self.stream = None;
    self.statements.clear();
    self.backups.clear();
  }

  /// Whether a backup of its is still copying (the file must not be swapped under it).
  pub fn backing_up(&self) -> bool {
    self.backups.values().any(Backup::is_live)
  }
}
