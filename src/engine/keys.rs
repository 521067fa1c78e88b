//! Proving a SQLCipher key against a file without disturbing the connection in use: each proof
//! opens a read-only connection of its own. A cluster client proves its key this way before it
//! uses the master's connection (its key never travels), and a Database that gives a key to a
//! connection opened without one proves it before the shared connection is keyed.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use once_cell::sync::Lazy;
use rusqlite::ffi;

use super::connection::{self, Connection};
use super::sqlcipher3;
use crate::error::Error;
use crate::protocol::{Key, OpenOptions};

/// Proves `options.key` against the file without changing it (a second, read-only connection):
/// `SQLITE_NOTADB` when the key cannot read it. A cluster client runs this before it uses the
/// master's connection, since its own key never travels to the master. Other failures (the file
/// busy, say) prove nothing either way and pass.
pub fn check_key(options: &OpenOptions) -> Result<(), Error> {
  let Some(key) = &options.key else { return Ok(()) };
  let Ok(conn) = Connection::open(
    &options.filename,
    ffi::SQLITE_OPEN_READONLY,
    options.busy_timeout_ms,
  ) else {
    return Ok(());
  };
  if !options.verbose {
    let _ = conn.execute_batch("PRAGMA cipher_log_level = NONE");
  }
  // A writer holding the file longer than the busy timeout gets a few more chances: a key
  // that was never read against the file must not pass as right.
  let mut result = conn.apply_key(key);
  for _ in 0..5 {
    match &result {
      Err(e) if matches!(e.errno(), ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED) => {
        result = conn.verify_readable(true)
      }
      _ => break,
    }
  }
  match result {
    // A 1.x file that this key opens the 1.x way: the master moves it to SQLCipher 4 (it
    // cannot have yet if it has no key of its own), and it will open with this key then.
    Err(_)
      if options
        .legacy
        .as_ref()
        .is_some_and(|l| sqlcipher3::is_legacy_file(Path::new(&options.filename), l)) =>
    {
      Ok(())
    }
    Err(e) if e.errno() == ffi::SQLITE_NOTADB => Err(e),
    _ => Ok(()),
  }
}

/// Keys proved against files by `prove_key`, as digests of file name and key: a process whose
/// ORM opens a Database per transaction pays for SQLCipher's key derivation once.
static PROVEN: Lazy<Mutex<HashSet<[u8; 32]>>> = Lazy::new(|| Mutex::new(HashSet::new()));

/// `key` opens `filename`: tried on a read-only connection of its own, so no connection in use
/// is disturbed. A file that does not exist yet, or is empty, takes any key.
pub fn prove_key(filename: &str, key: &Key, verbose: bool) -> bool {
  use sha2::{Digest, Sha256};
  let mut digest = Sha256::new();
  digest.update(filename.as_bytes());
  digest.update([0]);
  digest.update(connection::key_material(key));
  let digest: [u8; 32] = digest.finalize().into();
  if PROVEN.lock().unwrap_or_else(|e| e.into_inner()).contains(&digest) {
    return true;
  }
  let Ok(conn) = Connection::open(filename, ffi::SQLITE_OPEN_READONLY, 5000) else {
    // Nothing to read yet: the first write creates the file with this key.
    return !Path::new(filename).exists();
  };
  if !verbose {
    let _ = conn.execute_batch("PRAGMA cipher_log_level = NONE");
  }
  let proven = conn.apply_key(key).is_ok();
  // An empty file takes any key, so only a key proved against pages is remembered.
  if proven && std::fs::metadata(filename).is_ok_and(|m| m.len() > 0) {
    PROVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(digest);
  }
  proven
}
