//! sqlite3-cluster: many Node.js processes, one SQLite / SQLCipher database.
//!
//! - [`engine`]: one thread per database file owns its connection and runs every session's
//!   requests in order (transactions pin the connection to one session).
//! - [`protocol`]: the requests, responses and events between a Database and its engine.
//! - [`value`], [`error`]: SQL values and errors, as JavaScript sees them.
//! - [`js`]: the N-API class the JavaScript layer (`lib/`) builds the node-sqlite3 API on.

pub mod cluster;
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
    unsafe { std::ffi::CStr::from_ptr(p) }
      .to_string_lossy()
      .into_owned()
  };
  Versions {
    sqlite: text(unsafe { ffi::sqlite3_libversion() }),
    sqlite_number: unsafe { ffi::sqlite3_libversion_number() },
    source_id: text(unsafe { ffi::sqlite3_sourceid() }),
  }
}
