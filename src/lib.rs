//! sqlite3-cluster: many Node.js processes, one SQLite / SQLCipher database.
//!
//! - [`engine`]: one thread per database file owns its connection and runs every session's
//!   requests in order (transactions pin the connection to one session).
//! - [`protocol`]: the requests, responses and events between a Database and its engine.
//! - [`value`], [`error`]: SQL values and errors, as JavaScript sees them.
//! - [`js`]: the N-API class the JavaScript layer (`lib/`) builds the node-sqlite3 API on.

pub mod backend;
pub mod cluster;
pub mod dqlite;
pub mod engine;
pub mod error;
pub mod js;
pub mod protocol;
pub mod value;

use napi_derive::napi;

/// Versions of the linked SQLite and SQLCipher.
#[napi(object)]
pub struct Versions {
  pub sqlite: String,
  pub sqlite_number: i32,
  pub source_id: String,
}

#[napi]
pub fn versions() -> Versions {
  use rusqlite::ffi;
  let text = |p: *const std::ffi::c_char| {
    // SAFETY: `text` is given only the pointers below, from sqlite3_libversion and
    // sqlite3_sourceid: static NUL-terminated strings.
    unsafe { std::ffi::CStr::from_ptr(p) }
      .to_string_lossy()
      .into_owned()
  };
  Versions {
    // SAFETY: returns a static string; it needs no connection, nor SQLite initialized.
    sqlite: text(unsafe { ffi::sqlite3_libversion() }),
    // SAFETY: returns a constant.
    sqlite_number: unsafe { ffi::sqlite3_libversion_number() },
    // SAFETY: as for `sqlite`.
    source_id: text(unsafe { ffi::sqlite3_sourceid() }),
  }
}

/// Names of the registered SQLite VFSes, the default first (Worker1's `config-get`).
#[napi]
pub fn vfs_list() -> Vec<String> {
  use rusqlite::ffi;
  let mut names = Vec::new();
  // SAFETY: sqlite3_vfs_find(NULL) initializes SQLite if needed and returns the default VFS, or
  // null.
  let mut vfs = unsafe { ffi::sqlite3_vfs_find(std::ptr::null()) };
  while !vfs.is_null() {
    // SAFETY: `vfs` is non-null and registered, and SQLite requires a registered VFS to stay valid
    // until it is unregistered. The walk does not take SQLite's VFS mutex (there is no API for it):
    // it assumes no VFS is registered or unregistered meanwhile, which only an extension loaded on
    // an engine thread could do.
    let name = unsafe { (*vfs).zName };
    if !name.is_null() {
      names.push(
        // SAFETY: `name` is non-null and NUL-terminated, owned by the VFS; it is copied at once.
        unsafe { std::ffi::CStr::from_ptr(name) }
          .to_string_lossy()
          .into_owned(),
      );
    }
    // SAFETY: as above: `vfs` is registered; `pNext` is the next registered VFS, or null.
    vfs = unsafe { (*vfs).pNext };
  }
  names
}

/// The SQLCipher version (`PRAGMA cipher_version`).
#[napi]
pub fn cipher_version() -> String {
  rusqlite::Connection::open_in_memory()
    .and_then(|c| c.query_row("PRAGMA cipher_version", [], |row| row.get::<_, String>(0)))
    .unwrap_or_default()
}
