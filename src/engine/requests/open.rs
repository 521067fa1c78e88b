//! Opening a session and keying the connection: `Open` (the first session opens the connection,
//! the later ones join it), `db.init({ key })` for a Database opened with `bits` and no key,
//! `PRAGMA key`, and the gate that keeps a session without the key from reading the file.

use std::time::Duration;

use rusqlite::ffi;

use crate::engine::database::Database;
use crate::engine::identity::Watch;
use crate::engine::keys::prove_key;
use crate::engine::session::Session;
use crate::engine::sql::is_keyless_pragma;
use crate::error::{ClusterCode, Error};
use crate::protocol::{Key, LegacyKey, OpenOptions, PragmaKey, Request};

const NEEDS_KEY: &str =
  "file is not a database: it is encrypted; give its `key` (or send `PRAGMA key = '…'` first)";
const NEEDS_KEY_AT_OPEN: &str =
  "file is not a database: it is encrypted, pass its `key` (or `bits` and call db.init({ key }))";
const WRONG_KEY: &str = "file is not a database: the key given by `PRAGMA key` is wrong";

/// What a session without the key may still run: closing, waiting, settings, and the
/// pragmas that do not read the file (ORMs send `PRAGMA foreign_keys = ON` right after the
/// key, without a callback). Everything else would read the file.
pub(super) fn passes_key_gate(session: &Session, request: &Request) -> bool {
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

impl Database {
  pub(super) fn open(&mut self, session: &mut Session, options: OpenOptions) -> Result<(), Error> {
    if session.policy.joins_existing_connection {
      // It joins the connection this process opened; its own key (if any) stays in its process.
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
      let (conn, readable) = match &options.key {
        Some(key) => (self.open_keyed(&options, key, options.legacy.as_ref())?, true),
        None => {
          let conn = self.open_connection(&options)?;
          // An encrypted file opens without its key, as with node-sqlite3: reads fail with
          // SQLITE_NOTADB until a `PRAGMA key` (the ORMs' route) keys the connection.
          let readable = !options.deferred_key
            && match conn.verify_readable(false) {
              Err(e) if options.strict_key || e.errno() != ffi::SQLITE_NOTADB => return Err(e),
              result => result.is_ok(),
            }
            // A new file opened without a key may still get one (the ORMs send `PRAGMA key`
            // right after the open): its first page is written by the first statement that
            // reads it, not by the journal mode.
            && std::fs::metadata(&options.filename).is_ok_and(|m| m.len() > 0);
          (conn, readable)
        }
      };
      self.key = options.key.clone();
      self.transaction_timeout = (options.transaction_timeout_ms > 0)
        .then(|| Duration::from_millis(options.transaction_timeout_ms.into()));
      self.put_connection(conn);
      self.watch = Watch::new(&options.filename);
      self.gone = None;
      self.opened_with = Some(options.clone());
      if let Err(e) = self.settle_journal(readable) {
        self.close();
        return Err(e);
      }
    } else if let (Some(key), None) = (&options.key, &self.key) {
      // The connection was opened without a key (a Database waiting for its `PRAGMA key`):
      // this key keys it if it opens the file.
      let filename = &self
        .opened_with
        .as_ref()
        .expect("the connection is open")
        .filename;
      if !(prove_key(filename, key, options.verbose) && self.conn().apply_key(key).is_ok()) {
        return Err(Error::sqlite(
          ffi::SQLITE_NOTADB,
          "file is not a database: the key is wrong, or the file is not a SQLCipher database",
        ));
      }
      self.key = Some(key.clone());
      self.settle_pending_journal()?;
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

  /// A session's `PRAGMA key`: it keys a connection that has no key yet, if it opens the file
  /// (tried on a connection of its own first, so that a wrong key disturbs nobody); otherwise
  /// it must be the connection's key. A wrong key closes the session's gate, never the pragma.
  pub(super) fn pragma_key(&mut self, session: &mut Session, pragma: PragmaKey) {
    let right = match pragma {
      PragmaKey::Checked(right) => right,
      PragmaKey::Given(key) => match &self.key {
        Some(existing) => *existing == key,
        None => {
          let options = self.opened_with.as_ref().expect("a session is open");
          let right =
            prove_key(&options.filename, &key, options.verbose) && self.conn().apply_key(&key).is_ok();
          if right {
            self.key = Some(key);
            // A chosen journal mode that cannot be set is reported by the next statement's
            // error, not by the key (which is right).
            let _ = self.settle_pending_journal();
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

  /// `db.init({ key })` for a session opened with `bits` and no key.
  pub(super) fn deferred_key(
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
      self.drop_connection();
      if let Some(options) = self.opened_with.clone() {
        if legacy.is_some() && e.errno() == ffi::SQLITE_NOTADB {
          // Perhaps a 1.x file: keyed the 1.x way, it is moved to SQLCipher 4 and opens.
          if let Ok(conn) = self.open_keyed(&options, &key, legacy.as_ref()) {
            self.put_connection(conn);
            self.key = Some(key);
            session.awaiting_key = false;
            return self.settle_pending_journal();
          }
        }
        let conn = self.open_connection(&options)?;
        self.put_connection(conn);
      }
      return Err(e);
    } else {
      self.key = Some(key);
    }
    session.awaiting_key = false;
    self.settle_pending_journal()
  }

  /// Settles the journal mode that waited for the key (see `Database::settle_journal`).
  fn settle_pending_journal(&mut self) -> Result<(), Error> {
    if self.journal_pending {
      self.settle_journal(true)
    } else {
      Ok(())
    }
  }

  /// Before the first request that reads a file opened without a key: settles its journal mode
  /// now, unless the file turns out to need a key (then a key settles it later).
  pub(super) fn settle_journal_before_reading(&mut self) {
    if let Err(e) = self.settle_journal(true) {
      self.journal_pending = e.errno() == ffi::SQLITE_NOTADB;
    }
  }
}
