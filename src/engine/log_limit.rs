//! Keeping the WAL file bounded while read connections read (docs/sessions.md#the-log-under-steady-reads).
//!
//! SQLite folds the log back into the database (a checkpoint) after commits, but it can only
//! start the log over from its beginning at a moment when no connection reads a snapshot in it.
//! Read connections that overlap each other (two processes scanning a table in turn) leave no
//! such moment, and the `-wal` file grows with every commit, without end. The engine owns its
//! readers, so it makes the moment: once the log passes `LIMIT`, it stops handing reads to
//! readers, waits for the running ones to end and for a moment outside any transaction, and runs
//! `wal_checkpoint(TRUNCATE)`, which folds the log in and empties it. Meanwhile reads run on the
//! write connection, or wait for the transaction that holds it to end: once per `LIMIT` of log,
//! reads wait as they did before read connections, for one transaction at most.
//!
//! Clients that read the file themselves (`client_reads`) are told to stop while the log drains;
//! a read of theirs that was already running can still hold the log. So a checkpoint that finds
//! the log held (it never waits for it: no busy wait on the engine thread) is tried again every
//! `RETRY` while the drain lasts, for `PATIENCE` at most. After that (another program holds the
//! log), reads go back to the readers and the log is looked at again a little later.

use std::path::Path;
use std::time::{Duration, Instant};

use super::connection::Connection;

/// The size of the `-wal` file past which the engine empties it: the size at which SQLite
/// checkpoints by itself (1000 pages of 4 KiB), so that a log that could not restart is emptied
/// about as often as one that could.
const LIMIT: u64 = 4 << 20;

/// How often the size is looked at, at most.
const EVERY: Duration = Duration::from_millis(50);

/// How soon a checkpoint that found the log held is tried again, and for how long it is.
const RETRY: Duration = Duration::from_millis(5);
const PATIENCE: Duration = Duration::from_secs(1);

/// The watch on one file's log.
pub(super) struct LogLimit {
  next_look: Instant,
  /// Reads are kept off the readers until the log is emptied.
  draining: bool,
  /// When the drain began, and when its checkpoint may be tried (again).
  since: Instant,
  next_try: Instant,
}

impl LogLimit {
  pub fn new() -> LogLimit {
    LogLimit {
      next_look: Instant::now(),
      draining: false,
      since: Instant::now(),
      next_try: Instant::now(),
    }
  }

  /// Whether new reads must stay off the readers for now.
  pub fn draining(&self) -> bool {
    self.draining
  }

  /// Looks at the log of the database at `db` when it is time: past `LIMIT`, reads stop going
  /// to readers.
  pub fn look(&mut self, db: &Path) {
    let now = Instant::now();
    if self.draining || now < self.next_look {
      return;
    }
    self.next_look = now + EVERY;
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    self.draining = std::fs::metadata(wal).is_ok_and(|m| m.len() > LIMIT);
    (self.since, self.next_try) = (now, now);
  }

  /// Whether the checkpoint may be tried now.
  pub fn may_try(&self) -> bool {
    self.draining && Instant::now() >= self.next_try
  }

  /// The readers are idle and no transaction is open: empties the log on `conn` (whose busy
  /// timeout is `busy_timeout_ms`), and lets reads go to readers again.
  pub fn empty(&mut self, conn: &Connection, busy_timeout_ms: i32) {
    conn.set_busy_timeout(0);
    // Its first column says whether the log was held (1), and the log is left as it was.
    let emptied = conn
      .pragma_integer("PRAGMA wal_checkpoint(TRUNCATE)")
      .is_ok_and(|busy| busy == Some(0));
    conn.set_busy_timeout(busy_timeout_ms);
    let now = Instant::now();
    if !emptied && now < self.since + PATIENCE {
      self.next_try = now + RETRY;
      return;
    }
    self.draining = false;
    // What the checkpoint could not do (another program reads) is tried again a little later.
    self.next_look = now + EVERY * 4;
  }

  /// The log cannot be emptied for long (a reader holds an `each()`): readers serve reads again.
  pub fn give_up(&mut self) {
    self.draining = false;
  }
}
