//! The journal mode a file is opened in: WAL unless the application chose another.
//!
//! In SQLite's default mode (`delete`, a rollback journal) a writer locks out every reader while
//! it commits, and a reader holding the file keeps the writer from committing. In WAL mode the
//! readers read a snapshot while the writer appends to the `-wal` file, so neither waits for the
//! other: what the master's other processes need when one of them holds a transaction open. So a
//! file opened for writing is put in WAL mode when it is in the default mode
//! (docs/sessions.md#wal-by-default). Other programs still open it (every SQLite since 3.7.0
//! reads WAL files, in the same folder on the same machine), and `-wal` and `-shm` files appear
//! beside it while it is open.
//!
//! WAL is the one mode SQLite keeps in the file, so a file found in any other mode is in the
//! default one as far as anyone can tell: an application that wants another mode says so with
//! `journalMode`, and gets exactly that mode at every open.

use std::path::{Path, PathBuf};

use rusqlite::ffi;

use super::connection::Connection;
use crate::error::Error;
use crate::protocol::OpenOptions;

/// SQLite's journal modes, as `PRAGMA journal_mode` names them.
pub const MODES: [&str; 6] = ["delete", "truncate", "persist", "memory", "wal", "off"];

/// Whether the journal mode of `options.filename` is this package's to set: a file opened for
/// writing, not an in-memory or temporary database (they have no file for a `-wal` beside them).
fn applies(options: &OpenOptions) -> bool {
  let name = options.filename.as_str();
  let memory = name.is_empty()
    || name == ":memory:"
    || (name.starts_with("file:") && (name.contains("mode=memory") || name.starts_with("file::memory:")));
  options.flags & ffi::SQLITE_OPEN_READONLY == 0 && !memory
}

/// Puts the file in the mode the application chose (`options.journal_mode`) or, when it chose
/// none and the file is in the default `delete` mode, in WAL mode. Call it once the connection
/// can read the file (after its key). A chosen mode that cannot be set is an error; WAL by
/// default is best effort: a file that cannot change now (another process holds it) stays as it
/// is, and the open does not wait for it.
pub fn settle(conn: &Connection, options: &OpenOptions) -> Result<(), Error> {
  if !applies(options) {
    return Ok(());
  }
  if let Some(chosen) = &options.journal_mode {
    // The name goes into the pragma's text: only SQLite's own names may.
    if !MODES.iter().any(|m| m.eq_ignore_ascii_case(chosen)) {
      return Err(Error::sqlite(
        ffi::SQLITE_MISUSE,
        format!(
          "journalMode {chosen:?} is not a journal mode; use one of {}",
          MODES.join(", ")
        ),
      ));
    }
    let got = conn.pragma_text(&format!("PRAGMA journal_mode = {chosen}"))?;
    return match got {
      Some(mode) if mode.eq_ignore_ascii_case(chosen) => Ok(()),
      other => Err(Error::sqlite(
        ffi::SQLITE_ERROR,
        format!(
          "journalMode {chosen:?} could not be set: the file stays in {:?} mode (another process may hold it in WAL mode, or its folder may not allow the -wal and -shm files)",
          other.unwrap_or_default()
        ),
      )),
    };
  }
  // Best effort from here on: a file another process holds (a migration racing this open, a
  // busy lock) stays in its mode, and the open goes on.
  if !matches!(conn.pragma_text("PRAGMA journal_mode"), Ok(Some(mode)) if mode == "delete") {
    return Ok(());
  }
  // Changing to WAL needs the file alone for a moment; the open must not wait the busy timeout
  // for that when another program is using the file.
  conn.set_busy_timeout(0);
  let _ = conn.pragma_text("PRAGMA journal_mode = WAL");
  conn.set_busy_timeout(options.busy_timeout_ms);
  Ok(())
}

/// The byte of the `-shm` file that every connection with the WAL open holds a shared lock on
/// (SQLite's unix VFS: `UNIX_SHM_DMS`, after the 120 bytes of the header and the 8 lock slots).
const SHM_DMS_BYTE: u64 = 128;

/// Removes the `-wal` and `-shm` files beside `db` that only this process has open: the log of
/// a file that was replaced at that path. A log that another process holds open is left alone:
/// it belongs to the file now at the path, which that process uses in WAL mode.
pub fn remove_stale_log(db: &Path) {
  let shm = suffixed(db, "-shm");
  if held_by_another_process(&shm) != Some(false) {
    return;
  }
  for file in [suffixed(db, "-wal"), shm] {
    let _ = std::fs::remove_file(file);
  }
}

fn suffixed(db: &Path, suffix: &str) -> PathBuf {
  let mut name = db.as_os_str().to_owned();
  name.push(suffix);
  PathBuf::from(name)
}

/// Whether a process other than this one holds a lock on `shm`'s DMS byte: `Some(false)` when
/// none does or there is no such file, `None` when it cannot be known. It is read from
/// `/proc/locks` rather than asked with `fcntl(F_GETLK)`, because closing a descriptor of the
/// file would drop every lock this process's own connections hold on it.
fn held_by_another_process(shm: &Path) -> Option<bool> {
  use std::os::unix::fs::MetadataExt;
  let inode = match std::fs::metadata(shm) {
    Ok(meta) => meta.ino(),
    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(false),
    Err(_) => return None,
  };
  let locks = std::fs::read_to_string("/proc/locks").ok()?;
  Some(locks_held_by_others(&locks, inode, std::process::id()))
}

/// Whether `/proc/locks` text `locks` shows a lock on byte `SHM_DMS_BYTE` of inode `inode` held
/// by a process other than `me` (an open file description lock shows pid -1: not ours either).
fn locks_held_by_others(locks: &str, inode: u64, me: u32) -> bool {
  locks.lines().any(|line| {
    // "1: POSIX  ADVISORY  READ 1234 08:01:5678 128 128"; waiting locks have "->" and hold nothing.
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [_, kind, _, _, pid, file, start, end] = fields.as_slice() else {
      return false;
    };
    let on_inode = file.rsplit(':').next().and_then(|i| i.parse::<u64>().ok()) == Some(inode);
    let start = start.parse::<u64>().unwrap_or(u64::MAX);
    let covers = match *end {
      "EOF" => start <= SHM_DMS_BYTE,
      end => end
        .parse::<u64>()
        .is_ok_and(|end| start <= SHM_DMS_BYTE && SHM_DMS_BYTE <= end),
    };
    *kind != "->" && on_inode && covers && pid.parse::<i64>().ok() != Some(i64::from(me))
  })
}

#[cfg(test)]
mod tests {
  use super::*;

  fn options(dir: &std::path::Path, journal_mode: Option<&str>) -> OpenOptions {
    OpenOptions {
      journal_mode: journal_mode.map(String::from),
      ..OpenOptions::for_tests(dir.join("test.db").to_str().unwrap())
    }
  }

  fn mode(conn: &Connection) -> String {
    conn.pragma_text("PRAGMA journal_mode").unwrap().unwrap()
  }

  fn open(options: &OpenOptions) -> Connection {
    Connection::open(&options.filename, options.flags, 1000).unwrap()
  }

  #[test]
  fn a_file_in_the_default_mode_goes_to_wal_and_a_chosen_mode_is_kept() {
    let dir = crate::backend::conformance::temp_dir("journal");
    let default = options(&dir, None);
    let conn = open(&default);
    assert_eq!(mode(&conn), "delete");
    settle(&conn, &default).unwrap();
    assert_eq!(mode(&conn), "wal");
    drop(conn);

    let chosen = options(&dir, Some("delete"));
    let conn = open(&chosen);
    assert_eq!(mode(&conn), "wal", "WAL is kept in the file");
    settle(&conn, &chosen).unwrap();
    assert_eq!(mode(&conn), "delete");
    drop(conn);

    let memory = OpenOptions::for_tests(":memory:");
    let conn = open(&memory);
    settle(&conn, &memory).unwrap();
    assert_eq!(mode(&conn), "memory", "an in-memory database is left alone");
  }

  #[test]
  fn a_read_only_open_changes_nothing() {
    let dir = crate::backend::conformance::temp_dir("journal-readonly");
    let writer = options(&dir, Some("delete"));
    let conn = open(&writer);
    conn.execute_batch("CREATE TABLE t(x)").unwrap();
    settle(&conn, &writer).unwrap();
    let reader = OpenOptions {
      flags: ffi::SQLITE_OPEN_READONLY,
      ..options(&dir, None)
    };
    let read = open(&reader);
    settle(&read, &reader).unwrap();
    assert_eq!(mode(&read), "delete");
  }

  #[test]
  fn reads_who_holds_the_log_from_proc_locks() {
    let locks = "1: POSIX  ADVISORY  READ 4242 08:01:777 128 128\n\
                 2: -> POSIX  ADVISORY  WRITE 5000 08:01:777 128 128\n\
                 3: OFDLCK ADVISORY  READ -1 08:01:888 120 EOF\n";
    assert!(
      locks_held_by_others(locks, 777, 1),
      "another pid holds the DMS byte"
    );
    assert!(
      !locks_held_by_others(locks, 777, 4242),
      "only this process holds it"
    );
    assert!(
      locks_held_by_others(locks, 888, 4242),
      "an OFD lock up to EOF covers it"
    );
    assert!(!locks_held_by_others(locks, 999, 1), "another file");
    let elsewhere = "1: POSIX  ADVISORY  READ 4242 08:01:777 0 127\n";
    assert!(
      !locks_held_by_others(elsewhere, 777, 1),
      "a lock before the DMS byte"
    );
  }

  #[test]
  fn a_log_only_this_process_holds_is_removed() {
    let dir = crate::backend::conformance::temp_dir("journal-stale");
    let db = dir.join("test.db");
    let conn = Connection::open(
      db.to_str().unwrap(),
      ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE,
      1000,
    )
    .unwrap();
    conn
      .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t(x)")
      .unwrap();
    // This process's own connection holds the log: it counts as nobody else's.
    remove_stale_log(&db);
    assert!(
      !suffixed(&db, "-wal").exists(),
      "a log only this process holds is removed"
    );
  }
}
