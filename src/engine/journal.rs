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
  if conn.pragma_text("PRAGMA journal_mode")?.as_deref() != Some("delete") {
    return Ok(());
  }
  // Changing to WAL needs the file alone for a moment; the open must not wait the busy timeout
  // for that when another program is using the file.
  conn.set_busy_timeout(0);
  let _ = conn.pragma_text("PRAGMA journal_mode = WAL");
  conn.set_busy_timeout(options.busy_timeout_ms);
  Ok(())
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
}
