//! Errors as they reach JavaScript: SQLite's own (by result code) and this package's.
//!
//! node-sqlite3 reports only primary result codes (`SQLITE_CONSTRAINT`, never 2067); the
//! engine keeps the extended code for logs and the wire, and [`Error::errno`] gives the primary.

use rusqlite::ffi;
use serde::{Deserialize, Serialize};

/// Codes of this package, beyond SQLite's result codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterCode {
  MasterExists,
  NoMaster,
  MasterLost,
  MasterUnresponsive,
  TxnAborted,
  Auth,
  Protocol,
}

impl ClusterCode {
  pub fn as_str(self) -> &'static str {
    match self {
      ClusterCode::MasterExists => "CLUSTER_MASTER_EXISTS",
      ClusterCode::NoMaster => "CLUSTER_NO_MASTER",
      ClusterCode::MasterLost => "CLUSTER_MASTER_LOST",
      ClusterCode::MasterUnresponsive => "CLUSTER_MASTER_UNRESPONSIVE",
      ClusterCode::TxnAborted => "CLUSTER_TXN_ABORTED",
      ClusterCode::Auth => "CLUSTER_AUTH",
      ClusterCode::Protocol => "CLUSTER_PROTOCOL",
    }
  }
}

/// An error of one request. The message never contains key material.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Error {
  /// A SQLite result code (possibly extended) and its message.
  Sqlite { code: i32, message: String },
  /// A failure of the cluster layer.
  Cluster { code: ClusterCode, message: String },
  /// `CLUSTER_MASTER_EXISTS`: `serve` was asked, but another process is master of the socket.
  /// JavaScript gets the master's pid as `err.masterPid` (`null` when unknown).
  MasterExists {
    master_pid: Option<u32>,
    message: String,
  },
}

impl Error {
  pub fn sqlite(code: i32, message: impl Into<String>) -> Self {
    Error::Sqlite {
      code,
      message: message.into(),
    }
  }

  pub fn misuse(message: impl Into<String>) -> Self {
    Error::sqlite(ffi::SQLITE_MISUSE, message)
  }

  /// The number node-sqlite3 puts in `err.errno`: SQLite's primary code.
  pub fn errno(&self) -> i32 {
    match self {
      Error::Sqlite { code, .. } => code & 0xff,
      Error::Cluster { .. } | Error::MasterExists { .. } => 0,
    }
  }

  /// The string in `err.code`: `SQLITE_CONSTRAINT`, `CLUSTER_NO_MASTER`, …
  pub fn code(&self) -> &'static str {
    match self {
      Error::Sqlite { code, .. } => code_name(*code & 0xff),
      Error::Cluster { code, .. } => code.as_str(),
      Error::MasterExists { .. } => ClusterCode::MasterExists.as_str(),
    }
  }

  pub fn message(&self) -> &str {
    match self {
      Error::Sqlite { message, .. }
      | Error::Cluster { message, .. }
      | Error::MasterExists { message, .. } => message,
    }
  }

  /// `"SQLITE_ERROR: no such table: foo"`, the text of `err.message`.
  pub fn display(&self) -> String {
    format!("{}: {}", self.code(), self.message())
  }
}

impl std::fmt::Display for Error {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.write_str(&self.display())
  }
}

impl std::error::Error for Error {}

/// node-sqlite3's names for primary result codes (`sqlite_code_string`).
pub fn code_name(code: i32) -> &'static str {
  match code {
    ffi::SQLITE_OK => "SQLITE_OK",
    ffi::SQLITE_ERROR => "SQLITE_ERROR",
    ffi::SQLITE_INTERNAL => "SQLITE_INTERNAL",
    ffi::SQLITE_PERM => "SQLITE_PERM",
    ffi::SQLITE_ABORT => "SQLITE_ABORT",
    ffi::SQLITE_BUSY => "SQLITE_BUSY",
    ffi::SQLITE_LOCKED => "SQLITE_LOCKED",
    ffi::SQLITE_NOMEM => "SQLITE_NOMEM",
    ffi::SQLITE_READONLY => "SQLITE_READONLY",
    ffi::SQLITE_INTERRUPT => "SQLITE_INTERRUPT",
    ffi::SQLITE_IOERR => "SQLITE_IOERR",
    ffi::SQLITE_CORRUPT => "SQLITE_CORRUPT",
    ffi::SQLITE_NOTFOUND => "SQLITE_NOTFOUND",
    ffi::SQLITE_FULL => "SQLITE_FULL",
    ffi::SQLITE_CANTOPEN => "SQLITE_CANTOPEN",
    ffi::SQLITE_PROTOCOL => "SQLITE_PROTOCOL",
    ffi::SQLITE_EMPTY => "SQLITE_EMPTY",
    ffi::SQLITE_SCHEMA => "SQLITE_SCHEMA",
    ffi::SQLITE_TOOBIG => "SQLITE_TOOBIG",
    ffi::SQLITE_CONSTRAINT => "SQLITE_CONSTRAINT",
    ffi::SQLITE_MISMATCH => "SQLITE_MISMATCH",
    ffi::SQLITE_MISUSE => "SQLITE_MISUSE",
    ffi::SQLITE_NOLFS => "SQLITE_NOLFS",
    ffi::SQLITE_AUTH => "SQLITE_AUTH",
    ffi::SQLITE_FORMAT => "SQLITE_FORMAT",
    ffi::SQLITE_RANGE => "SQLITE_RANGE",
    ffi::SQLITE_NOTADB => "SQLITE_NOTADB",
    ffi::SQLITE_ROW => "SQLITE_ROW",
    ffi::SQLITE_DONE => "SQLITE_DONE",
    _ => "UNKNOWN",
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn extended_codes_report_their_primary_code() {
    let e = Error::sqlite(ffi::SQLITE_CONSTRAINT_UNIQUE, "UNIQUE constraint failed: t.x");
    assert_eq!(e.errno(), 19);
    assert_eq!(e.code(), "SQLITE_CONSTRAINT");
    assert_eq!(e.display(), "SQLITE_CONSTRAINT: UNIQUE constraint failed: t.x");
  }

  #[test]
  fn unknown_codes_are_named_unknown() {
    assert_eq!(code_name(1234), "UNKNOWN");
  }
}
