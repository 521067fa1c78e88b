//! The database file as the engine has it open: its one connection, the options and key it was
//! opened with, the statement cache and read group that live on it, and the watch on its path.
//! Every change of connection (open, reopen with a key, swap for a replaced file, close) goes
//! through here, so what lives on a connection is dropped with it, and `interrupt()` always
//! aims at the connection in use.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::ffi;

use super::cache::StatementCache;
use super::connection::Connection;
use super::identity::{Change, Identity, Watch};
use super::journal;
use super::local_state::LocalState;
use super::log_limit::LogLimit;
use super::read_group::ReadGroup;
use super::read_pool::ReadPool;
use super::session::{Hooks, Session};
use super::settings::Settings;
use super::sqlcipher3;
use super::{Command, SessionId, Shared};
use crate::error::Error;
use crate::protocol::{Key, LegacyKey, OpenOptions};

/// Prepared statements kept for one-shot queries (`db.run/get/all/each`).
const CACHE_CAPACITY: usize = 128;

pub(super) struct Database {
  shared: Arc<Shared>,
  pub conn: Option<Connection>,
  /// How the connection was opened, to reopen it after a failed deferred key.
  pub opened_with: Option<OpenOptions>,
  pub key: Option<Key>,
  /// The per-Database pragmas the connection has now (see `settings`).
  pub applied: Settings,
  /// `transactionTimeout` of the session that opened the connection.
  pub transaction_timeout: Option<Duration>,
  pub cache: StatementCache,
  pub group: ReadGroup,
  /// The file the connection has open, looked at again about once a second (see `identity`).
  pub watch: Option<Watch>,
  /// The file was deleted (or replaced by one that does not open): statements fail with this.
  pub gone: Option<Error>,
  /// The read connections beside this one (`read_pool`), and what of this connection's state
  /// they would not see (`local_state`).
  pub readers: ReadPool,
  pub local: LocalState,
  pub log: LogLimit,
  /// The journal mode is still to be settled (`journal.rs`): the connection could not read the
  /// file when it opened (an encrypted file without its key yet).
  pub journal_pending: bool,
  /// The file clients may read themselves, as last looked at (`client_reads`), and how many
  /// times that changed.
  pub client_reads: Option<Identity>,
  pub client_reads_version: u64,
}

/// The error of every statement that needs the file while nothing is at its path.
fn deleted(path: &Path) -> Error {
  Error::sqlite(
    ffi::SQLITE_CANTOPEN,
    format!(
      "unable to open database file: {} was deleted while open; put a database back at that path (it is opened within a second) or close the Database",
      path.display()
    ),
  )
}

impl Database {
  pub fn new(shared: Arc<Shared>, readers_done: std::sync::mpsc::Sender<Command>) -> Database {
    Database {
      readers: ReadPool::new(shared.clone(), readers_done),
      local: LocalState::default(),
      log: LogLimit::new(),
      shared,
      conn: None,
      opened_with: None,
      key: None,
      applied: Settings::default(),
      transaction_timeout: None,
      cache: StatementCache::new(CACHE_CAPACITY),
      group: ReadGroup::new(),
      watch: None,
      gone: None,
      journal_pending: false,
      client_reads: None,
      client_reads_version: 0,
    }
  }

  /// Puts the file in its journal mode (`journal.rs`) once the connection can read it. Before
  /// then (no key yet), it waits: the next key that opens the file settles it.
  pub fn settle_journal(&mut self, readable: bool) -> Result<(), Error> {
    self.journal_pending = !readable;
    match (&self.conn, &self.opened_with) {
      (Some(conn), Some(options)) if readable => journal::settle(conn, options),
      _ => Ok(()),
    }
  }

  /// The open connection; requests reach it only once `handle` checked there is one.
  pub fn conn(&self) -> &Connection {
    self.conn.as_ref().expect("checked by handle()")
  }

  /// A new connection to the file, set up as the engine needs it (interrupts, quiet SQLCipher).
  pub fn open_connection(&self, options: &OpenOptions) -> Result<Connection, Error> {
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
  pub fn open_keyed(
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
    // Not a 1.x file either (`Ok(false)`) may mean another process moved it between the open
    // above and the look `migrate` takes: the file at the path is then new, and opening it
    // again is what works. Where it is not, the second open fails as the first did.
    sqlcipher3::migrate(Path::new(&options.filename), key, legacy)?;
    let conn = self.open_connection(options)?;
    conn.apply_key(key)?;
    Ok(conn)
  }

  /// Makes `conn` the connection in use. What lived on the old one (cached statements, the read
  /// group) is finalized before the old one closes.
  pub fn put_connection(&mut self, conn: Connection) {
    self.readers.close();
    self.local = LocalState::default();
    self.cache.clear();
    self.group.reset();
    self.conn = Some(conn);
    self.publish_handle();
  }

  /// Closes the connection in use, after what lived on it.
  pub fn drop_connection(&mut self) {
    self.readers.close();
    self.local = LocalState::default();
    self.cache.clear();
    self.group.reset();
    self.conn = None;
    self.publish_handle();
  }

  /// Closes the connection and forgets the file: the next `Open` starts afresh.
  pub fn close(&mut self) {
    self.drop_connection();
    self.key = None;
    self.opened_with = None;
    self.watch = None;
    self.gone = None;
  }

  /// A new connection (or none): tells `interrupt()` which handle to stop, and forgets the
  /// per-Database settings the old connection had.
  fn publish_handle(&mut self) {
    self.applied = Settings::default();
    let mut target = self.shared.interrupt.lock().unwrap_or_else(|e| e.into_inner());
    target.open = self.conn.is_some();
  }

  /// Ends the read group, if one is open.
  pub fn end_read_group(&mut self) {
    self.group.end(self.conn.as_ref());
  }

  /// Keeps the WAL bounded while readers read (`log_limit`). `pinned`: a transaction holds the
  /// write connection, and the log cannot be emptied before it ends.
  pub fn limit_log(&mut self, pinned: bool) {
    if self.readers.holds_streams() {
      // An `each()` a reader holds keeps its snapshot until its receiver has read it: waiting
      // for it could keep every read on the write connection for as long.
      self.log.give_up();
      return;
    }
    if let Some(watch) = &self.watch {
      self.log.look(watch.path());
    }
    if self.log.may_try() && !pinned && self.readers.is_idle() {
      self.end_read_group();
      if let (Some(conn), Some(options)) = (&self.conn, &self.opened_with) {
        self.log.empty(conn, options.busy_timeout_ms);
      }
    }
  }

  /// Rolls back the transaction the connection is in, if any.
  pub fn roll_back(&self) {
    if let Some(conn) = &self.conn {
      if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
      }
    }
  }

  /// Turns on the connection's hooks that some session wants, and off the others.
  pub fn set_hooks(&mut self, wanted: Hooks) {
    if let Some(conn) = self.conn.as_mut() {
      conn.set_hooks(wanted.trace, wanted.profile, wanted.change);
    }
  }

  /// Whether the path may be looked at now: between transactions (`pinned`: one holds the
  /// connection) and read groups, with no cursor or backup that a reopen would cut.
  fn file_may_change(&self, sessions: &HashMap<SessionId, Session>, pinned: bool) -> bool {
    !pinned
      && !self.group.is_open()
      && self.readers.is_idle()
      && sessions.values().all(|s| s.stream.is_none() && !s.backing_up())
  }

  /// When the engine, idle, should wake up to look at the path.
  pub fn watch_deadline(&self, sessions: &HashMap<SessionId, Session>, pinned: bool) -> Option<Instant> {
    let watch = self.watch.as_ref()?;
    self.file_may_change(sessions, pinned).then(|| watch.due())
  }

  /// Looks at the path when it is time: a replaced file is opened in place of the old one, a
  /// deleted one fails what needs it (docs/file-changes.md).
  pub fn look_at_file(&mut self, sessions: &mut HashMap<SessionId, Session>, pinned: bool) {
    match &self.watch {
      Some(watch) if Instant::now() >= watch.due() => {}
      _ => return,
    }
    self.end_read_group();
    if !self.file_may_change(sessions, pinned) {
      return;
    }
    let Some(watch) = self.watch.as_mut() else { return };
    match watch.check(Instant::now()) {
      Change::Same if self.gone.is_none() => {}
      // Same identity after a deletion: the inode number was reused by a new file.
      Change::Same | Change::Replaced => {
        if let Err(e) = self.reopen(sessions) {
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
      Change::Deleted => self.gone = Some(deleted(watch.path())),
    }
  }

  /// A reader could not read the file: if nothing is at the path any more, statements fail with
  /// the error that says so from now on, without waiting for the next look at the path (which
  /// waits for the readers). A file put back at the path is opened at that look.
  pub fn notice_file_gone(&mut self) {
    if let Some(watch) = self.watch.as_mut() {
      watch.due_now();
      if super::identity::of(watch.path()).is_none() {
        self.gone = Some(deleted(watch.path()));
      }
    }
  }

  /// Opens the file now at the path in place of the connection's (with its key and hooks), and
  /// prepares every session's statements again on it. Bindings are not carried over.
  fn reopen(&mut self, sessions: &mut HashMap<SessionId, Session>) -> Result<(), Error> {
    let Some(options) = self.opened_with.clone() else {
      return Ok(());
    };
    // In WAL mode the `-wal` and `-shm` files beside the path are the old file's: a connection
    // opened on the new file would read the old file's pages from them, and the old connection
    // cannot move them back into a file that was moved (`SQLITE_READONLY_DBMOVED`). They go
    // before the new file is opened, unless another process has the log open (then it is the
    // new file's, see `journal::stale_log`); the old connection keeps what it has open of them.
    if let Some(old) = &self.conn {
      if old.pragma_text("PRAGMA journal_mode").ok().flatten().as_deref() == Some("wal") {
        journal::remove_stale_log(Path::new(&options.filename));
      }
    }
    let fresh = match &self.key {
      Some(key) => self.open_keyed(&options, key, None)?,
      None => self.open_connection(&options)?,
    };
    // Every statement of the old connection is finalized before it closes.
    let mut again: Vec<(SessionId, u32, String)> = Vec::new();
    let mut hooks = Hooks::default();
    for (sid, session) in sessions.iter_mut() {
      hooks = hooks.union(session.hooks);
      for (id, statement) in session.statements.iter_mut() {
        if let Some(statement) = statement.take() {
          again.push((*sid, *id, statement.sql()));
        }
      }
    }
    self.put_connection(fresh);
    self.gone = None;
    // A file put in place of the old one is settled like any file opened.
    let _ = self.settle_journal(true);
    if let Some(watch) = self.watch.as_mut() {
      watch.reopened();
    }
    self.set_hooks(hooks);
    let conn = self.conn.as_ref().expect("just opened");
    for (sid, id, sql) in again {
      let prepared = conn.prepare(&sql);
      let Some(session) = sessions.get_mut(&sid) else {
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
