//! File descriptors: a master keeps some for SQLite.
//!
//! Every client costs the master one descriptor (its socket), and SQLite opens more as it works:
//! the journal or WAL and its index, temporary files for sorts, a second connection to check a
//! key. If clients took them all, SQLite would fail writes with `SQLITE_CANTOPEN` for everyone
//! already connected. So the master stops taking clients while fewer than `RESERVE` descriptors
//! are left under its limit (`ulimit -n`), and says so.

use std::sync::atomic::{AtomicBool, Ordering};

/// Descriptors kept free for SQLite and for the process itself.
pub const RESERVE: usize = 32;

/// Whether the process has fewer than `RESERVE` descriptors left: the reason, naming the limit.
pub fn short() -> Option<String> {
  let limit = soft_limit()?;
  let open = std::fs::read_dir("/proc/self/fd").ok()?.count();
  if open + RESERVE < limit {
    return None;
  }
  Some(format!(
    "it has {open} of its {limit} file descriptors open (ulimit -n) and keeps {RESERVE} for SQLite; raise the master's limit (ulimit -n, or LimitNOFILE for a service)"
  ))
}

/// Says once per process that clients are being refused: the master's owner must raise a limit.
pub fn log_once(sock: &std::path::Path, why: &str) {
  static LOGGED: AtomicBool = AtomicBool::new(false);
  if !LOGGED.swap(true, Ordering::Relaxed) {
    eprintln!(
      "sqlite3-cluster: the master of {} refuses new clients (too many open files): {why}",
      sock.display()
    );
  }
}

fn soft_limit() -> Option<usize> {
  let mut limit = libc::rlimit {
    rlim_cur: 0,
    rlim_max: 0,
  };
  // SAFETY: getrlimit only writes the struct we pass, which lives for the call.
  if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
    return None;
  }
  usize::try_from(limit.rlim_cur).ok()
}
