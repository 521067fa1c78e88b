//! `db.backup()`: node-sqlite3's online backup, run by the engine that owns the connection (in a
//! cluster client, the master's), so a backup never opens the database file outside the engine.
//!
//! A backup copies pages between the engine's connection and a second connection to another
//! file, in either direction. An encrypted database is backed up encrypted with the same key:
//! SQLCipher only copies pages between databases keyed alike.

use std::ffi::CString;
use std::ptr;

use rusqlite::ffi;

use super::connection::Connection;
use crate::error::Error;
use crate::protocol::Key;

/// One backup in progress: the `sqlite3_backup` handle and the other file's connection.
pub struct Backup {
  handle: *mut ffi::sqlite3_backup,
  /// What the step that ended the backup returned: later steps return it again, as
  /// node-sqlite3's do.
  ended: Option<Progress>,
  /// Dropped after `handle` is finished (fields drop after `Drop::drop`).
  _other: Connection,
}

/// What one step did: node-sqlite3's `remaining` and `pageCount` after it, whether the copy is
/// complete, and the step's error, if it failed.
#[derive(Clone)]
pub struct Progress {
  pub done: bool,
  pub remaining: i32,
  pub page_count: i32,
  pub error: Option<Error>,
}

/// Where the pages go: `filename_is_dest` copies the engine's database into `filename`,
/// otherwise `filename` is copied into the engine's database.
pub struct Direction<'a> {
  pub filename: &'a str,
  pub source_name: &'a str,
  pub dest_name: &'a str,
  pub filename_is_dest: bool,
}

impl Backup {
  /// Opens `direction.filename` (keyed with `key`, the engine's key) and starts the backup.
  pub fn start(conn: &Connection, direction: &Direction, key: Option<&Key>) -> Result<Backup, Error> {
    let flags = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE;
    // No busy timeout, as node-sqlite3: a locked file answers SQLITE_BUSY at once (a retry
    // error) instead of holding the engine, and every Database of the file, while it waits.
    let other = Connection::open(direction.filename, flags, 0)?;
    let _ = other.execute_batch("PRAGMA cipher_log_level = NONE");
    if let Some(key) = key {
      other.set_key(key)?;
    }
    let name =
      |s: &str| CString::new(s).map_err(|_| Error::sqlite(ffi::SQLITE_ERROR, "a database name contains NUL"));
    let (source_name, dest_name) = (name(direction.source_name)?, name(direction.dest_name)?);
    let (dest, source) = if direction.filename_is_dest {
      (other.handle(), conn.handle())
    } else {
      (conn.handle(), other.handle())
    };
    // SAFETY: both handles are open connections that outlive the backup: `other` is owned by
    // it, and the engine finishes a session's backups before it closes its own connection.
    let handle = unsafe { ffi::sqlite3_backup_init(dest, dest_name.as_ptr(), source, source_name.as_ptr()) };
    if handle.is_null() {
      let dest = if direction.filename_is_dest { &other } else { conn };
      return Err(dest.last_error());
    }
    Ok(Backup {
      handle,
      ended: None,
      _other: other,
    })
  }

  /// Copies up to `pages` pages (all when negative). An error other than one of `retry` ends
  /// the backup (node-sqlite3's `retryErrors`; an empty list ends it on none).
  pub fn step(&mut self, pages: i32, retry: &[i32]) -> Progress {
    if let Some(ended) = &self.ended {
      return ended.clone();
    }
    // SAFETY: `handle` is a live backup (it is nulled when finished).
    let (status, remaining, page_count) = unsafe {
      let status = ffi::sqlite3_backup_step(self.handle, pages);
      (
        status,
        ffi::sqlite3_backup_remaining(self.handle),
        ffi::sqlite3_backup_pagecount(self.handle),
      )
    };
    let done = status == ffi::SQLITE_DONE;
    let error = (status != ffi::SQLITE_OK && !done).then(|| {
      // SAFETY: sqlite3_errstr returns a static string for every code.
      let message = unsafe { std::ffi::CStr::from_ptr(ffi::sqlite3_errstr(status)) };
      Error::sqlite(status, message.to_string_lossy())
    });
    let progress = Progress {
      done,
      remaining,
      page_count,
      error,
    };
    if status != ffi::SQLITE_OK && (done || (!retry.is_empty() && !retry.contains(&(status & 0xff)))) {
      self.finish();
      self.ended = Some(progress.clone());
    }
    progress
  }

  /// The copy still holds the database (it keeps `close()` from succeeding).
  pub fn is_live(&self) -> bool {
    !self.handle.is_null()
  }

  fn finish(&mut self) {
    if !self.handle.is_null() {
      // SAFETY: `handle` is live and finished exactly once.
      unsafe { ffi::sqlite3_backup_finish(self.handle) };
      self.handle = ptr::null_mut();
    }
  }
}

impl Drop for Backup {
  fn drop(&mut self) {
    self.finish();
  }
}
