//! The encrypted files of sqlite3-cluster 1.x, and their one-time move to SQLCipher 4.
//!
//! 1.x keyed a file with `PRAGMA KEY = "x'<key>'"` then `PRAGMA CIPHER = 'aes-<bits>-cbc'`
//! (bits 128 unless the app said otherwise) on SQLCipher 3. SQLCipher 4, which this package
//! links, dropped every cipher but AES-256 and changed its defaults, so it cannot read most of
//! those files in place. This module reads them itself: the SQLCipher 3 page format is small and
//! fixed (below). A file that verifies with the 1.x key is decrypted page by page in memory,
//! loaded into an in-memory database and exported with `sqlcipher_export` into a new SQLCipher 4
//! file keyed the 2.x way, which is fsynced and renamed over the old path. The original stays
//! beside it as `<file>.sqlcipher3-backup`. Plain text never reaches the disk.
//!
//! Only one process migrates: whoever holds `<file>.sqlcipher3-migration.lock` (`flock`), and
//! it checks again, once it holds the lock, that the file still needs it. Masters and standalone
//! processes take the same lock, so neither needs to know about the other. The database file
//! itself is never locked or written outside SQLite; it is only read, and replaced by `rename`.
//!
//! SQLCipher 3's format, as 3.4 wrote it with the defaults 1.x never changed:
//! - pages of 1024 bytes; the first 16 bytes of the file are the KDF salt (page 1's header);
//! - each page ends in 48 reserved bytes: a 16-byte IV, a 20-byte HMAC-SHA1, then padding;
//! - the cipher key is the raw key of `x'<hex>'` when the hex is exactly the key size, else
//!   PBKDF2-HMAC-SHA1 of the whole text over the salt, 64,000 iterations;
//! - the HMAC key is PBKDF2-HMAC-SHA1 of the cipher key over the salt with every byte XOR 0x3a,
//!   2 iterations; the HMAC covers the encrypted bytes, the IV and the page number (u32 LE);
//! - page 1 is encrypted from byte 16 on; the others whole, up to the reserved bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use rusqlite::ffi;
use sha1::Sha1;

use super::connection::key_material;
use crate::error::Error;
use crate::protocol::{Key, LegacyKey};

const PAGE_SIZE: usize = 1024;
const SALT_SIZE: usize = 16;
const IV_SIZE: usize = 16;
const HMAC_SIZE: usize = 20;
/// IV and HMAC, rounded up to the AES block.
const RESERVE: usize = 48;
const KDF_ITERATIONS: u32 = 64_000;
const HMAC_KDF_ITERATIONS: u32 = 2;
const HMAC_SALT_MASK: u8 = 0x3a;
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The suffix of the copy of the 1.x file kept after a migration.
pub const BACKUP_SUFFIX: &str = ".sqlcipher3-backup";

/// Keys of one 1.x file.
struct Keys {
  cipher: Vec<u8>,
  hmac: Vec<u8>,
}

impl Keys {
  /// SQLCipher 3's key derivation for `pass` (the text given to `PRAGMA KEY`) and `salt`.
  fn derive(legacy: &LegacyKey, salt: &[u8]) -> Option<Keys> {
    let size = match legacy.bits {
      128 | 192 | 256 => usize::from(legacy.bits / 8),
      _ => return None,
    };
    let pass = legacy.pass.as_bytes();
    let mut salt = salt.to_vec();
    let cipher = match raw_key(pass, size, SALT_SIZE) {
      Some((key, given_salt)) => {
        // `x'<key><salt>'` names the salt too; SQLCipher 3 then derives the HMAC key from it.
        if let Some(given) = given_salt {
          salt = given;
        }
        key
      }
      None => {
        let mut key = vec![0; size];
        pbkdf2::pbkdf2_hmac::<Sha1>(pass, &salt, KDF_ITERATIONS, &mut key);
        key
      }
    };
    let masked: Vec<u8> = salt.iter().map(|b| b ^ HMAC_SALT_MASK).collect();
    let mut hmac = vec![0; size];
    pbkdf2::pbkdf2_hmac::<Sha1>(&cipher, &masked, HMAC_KDF_ITERATIONS, &mut hmac);
    Some(Keys { cipher, hmac })
  }

  /// The page's HMAC matches: the key is right and the page is intact.
  fn verify(&self, number: u32, page: &[u8]) -> bool {
    let offset = if number == 1 { SALT_SIZE } else { 0 };
    let end = PAGE_SIZE - RESERVE;
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(&self.hmac) else {
      return false;
    };
    mac.update(&page[offset..end + IV_SIZE]);
    mac.update(&number.to_le_bytes());
    mac
      .verify_slice(&page[end + IV_SIZE..end + IV_SIZE + HMAC_SIZE])
      .is_ok()
  }

  /// Decrypts a verified page in place into the page SQLite wrote.
  fn decrypt(&self, number: u32, page: &mut [u8]) -> Result<(), Error> {
    let offset = if number == 1 { SALT_SIZE } else { 0 };
    let end = PAGE_SIZE - RESERVE;
    let iv: [u8; IV_SIZE] = page[end..end + IV_SIZE].try_into().expect("IV_SIZE bytes");
    let data = &mut page[offset..end];
    let done = match self.cipher.len() {
      16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&self.cipher, &iv)
        .map_err(|_| ())
        .and_then(|d| d.decrypt_padded::<NoPadding>(data).map(|_| ()).map_err(|_| ())),
      24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(&self.cipher, &iv)
        .map_err(|_| ())
        .and_then(|d| d.decrypt_padded::<NoPadding>(data).map(|_| ()).map_err(|_| ())),
      _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(&self.cipher, &iv)
        .map_err(|_| ())
        .and_then(|d| d.decrypt_padded::<NoPadding>(data).map(|_| ()).map_err(|_| ())),
    };
    done.map_err(|_| {
      Error::sqlite(
        ffi::SQLITE_CORRUPT,
        "a page of the 1.x file could not be decrypted",
      )
    })?;
    if number == 1 {
      page[..SALT_SIZE].copy_from_slice(SQLITE_HEADER);
    }
    Ok(())
  }
}

/// The raw key of `x'<hex>'` when the hex is exactly `size` bytes (or `size` plus `salt` bytes,
/// the second part then being the salt), as SQLCipher 3 decides.
fn raw_key(pass: &[u8], size: usize, salt: usize) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
  let hex = pass
    .strip_prefix(b"x'")
    .or_else(|| pass.strip_prefix(b"X'"))?
    .strip_suffix(b"'")?;
  if hex.len() != size * 2 && hex.len() != (size + salt) * 2 {
    return None;
  }
  let bytes = hex
    .chunks(2)
    .map(|pair| {
      std::str::from_utf8(pair)
        .ok()
        .and_then(|s| u8::from_str_radix(s, 16).ok())
    })
    .collect::<Option<Vec<u8>>>()?;
  let (key, rest) = bytes.split_at(size);
  Some((key.to_vec(), (!rest.is_empty()).then(|| rest.to_vec())))
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
  Error::sqlite(
    ffi::SQLITE_CANTOPEN,
    format!(
      "moving the 1.x file to SQLCipher 4: cannot {what} {}: {e}",
      path.display()
    ),
  )
}

/// Page 1 of `path`, if the file is long enough to be a 1.x file.
fn first_page(path: &Path) -> Option<Vec<u8>> {
  let mut page = vec![0; PAGE_SIZE];
  let mut file = File::open(path).ok()?;
  file.read_exact(&mut page).ok()?;
  Some(page)
}

/// `path` is a 1.x file and `legacy` is its key (page 1 verifies). Never writes anything.
pub fn is_legacy_file(path: &Path, legacy: &LegacyKey) -> bool {
  let Some(page) = first_page(path) else {
    return false;
  };
  if page.starts_with(SQLITE_HEADER) {
    return false;
  }
  Keys::derive(legacy, &page[..SALT_SIZE]).is_some_and(|keys| keys.verify(1, &page))
}

/// An exclusive `flock` on a lock file, removed (while still held) when dropped.
struct MigrationLock {
  file: File,
  path: PathBuf,
}

impl MigrationLock {
  fn acquire(path: PathBuf) -> Result<MigrationLock, Error> {
    let file = OpenOptions::new()
      .create(true)
      .truncate(false)
      .write(true)
      .mode(0o600)
      .custom_flags(libc::O_CLOEXEC)
      .open(&path)
      .map_err(|e| io_error("create the lock file", &path, e))?;
    // SAFETY: `file` is an open descriptor for the duration of the call.
    while unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
      let e = std::io::Error::last_os_error();
      if e.kind() != ErrorKind::Interrupted {
        return Err(io_error("lock", &path, e));
      }
    }
    Ok(MigrationLock { file, path })
  }
}

impl Drop for MigrationLock {
  fn drop(&mut self) {
    // Removing it while held is safe: a process still waiting on the old lock file, or one
    // that creates a new one, checks again under its lock and finds the file migrated.
    let _ = fs::remove_file(&self.path);
    // SAFETY: the descriptor is still open; closing it (below) would release the lock anyway.
    unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
  }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
  let mut name = path.as_os_str().to_owned();
  name.push(suffix);
  PathBuf::from(name)
}

/// Moves the 1.x file at `path` to the SQLCipher 4 format keyed with `key`, when `legacy` (how
/// 1.x keyed it) opens it. `Ok(false)`: not a 1.x file for this key, nothing was changed.
/// `Ok(true)`: the file at `path` is now one this package opens with `key` (migrated here, or
/// by another process while this one waited for the lock).
pub fn migrate(path: &Path, key: &Key, legacy: &LegacyKey) -> Result<bool, Error> {
  if !is_legacy_file(path, legacy) {
    return Ok(false);
  }
  let _lock = MigrationLock::acquire(with_suffix(path, ".sqlcipher3-migration.lock"))?;
  if !is_legacy_file(path, legacy) {
    return Ok(true);
  }
  for journal in ["-journal", "-wal"] {
    let journal = with_suffix(path, journal);
    if fs::metadata(&journal).is_ok_and(|m| m.len() > 0) {
      return Err(Error::sqlite(
        ffi::SQLITE_BUSY,
        format!(
          "the 1.x file {} has an unfinished transaction ({} exists): stop every 1.x process, \
           let 1.x open it once to roll it back, then open it here",
          path.display(),
          journal.display()
        ),
      ));
    }
  }
  let plain = decrypt_file(path, legacy)?;
  let staged = with_suffix(path, ".sqlcipher4-migrating");
  let _ = fs::remove_file(&staged); // left by a migration that was interrupted
  if let Err(e) = export(plain, &staged, key) {
    let _ = fs::remove_file(&staged);
    return Err(e);
  }
  File::open(&staged)
    .and_then(|f| f.sync_all())
    .map_err(|e| io_error("sync", &staged, e))?;
  keep_backup(path)?;
  fs::rename(&staged, path).map_err(|e| io_error("rename the new file over", path, e))?;
  if let Some(dir) = path.parent() {
    let dir = if dir.as_os_str().is_empty() {
      Path::new(".")
    } else {
      dir
    };
    let _ = File::open(dir).and_then(|d| d.sync_all());
  }
  Ok(true)
}

/// Every page of the 1.x file, verified and decrypted: the database as SQLite wrote it.
fn decrypt_file(path: &Path, legacy: &LegacyKey) -> Result<Vec<u8>, Error> {
  let mut bytes = fs::read(path).map_err(|e| io_error("read", path, e))?;
  if bytes.len() % PAGE_SIZE != 0 {
    return Err(Error::sqlite(
      ffi::SQLITE_CORRUPT,
      format!("the 1.x file {} is not a whole number of pages", path.display()),
    ));
  }
  let keys = Keys::derive(legacy, &bytes[..SALT_SIZE]).expect("checked by is_legacy_file");
  for (index, page) in bytes.chunks_mut(PAGE_SIZE).enumerate() {
    let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
    if !keys.verify(number, page) {
      return Err(Error::sqlite(
        ffi::SQLITE_CORRUPT,
        format!(
          "page {number} of the 1.x file {} fails its HMAC check",
          path.display()
        ),
      ));
    }
    keys.decrypt(number, page)?;
  }
  Ok(bytes)
}

/// Writes the plain database `plain` to `target` as a SQLCipher 4 file keyed with `key`.
fn export(plain: Vec<u8>, target: &Path, key: &Key) -> Result<(), Error> {
  let sqlite = |e: rusqlite::Error| match e {
    rusqlite::Error::SqliteFailure(f, m) => Error::sqlite(f.extended_code, m.unwrap_or_default()),
    other => Error::sqlite(ffi::SQLITE_ERROR, other.to_string()),
  };
  let conn = rusqlite::Connection::open_in_memory().map_err(sqlite)?;
  load(&conn, plain)?;
  let target_name = target
    .to_str()
    .ok_or_else(|| Error::sqlite(ffi::SQLITE_CANTOPEN, "moving the 1.x file: its path is not UTF-8"))?;
  let material = String::from_utf8(key_material(key)).map_err(|_| {
    Error::sqlite(
      ffi::SQLITE_MISUSE,
      "moving the 1.x file: the key is not valid UTF-8 text",
    )
  })?;
  conn
    .execute("ATTACH DATABASE ?1 AS migrated KEY ?2", (target_name, material))
    .map_err(sqlite)?;
  conn
    .query_row("SELECT sqlcipher_export('migrated')", [], |_| Ok(()))
    .map_err(sqlite)?;
  // sqlcipher_export copies schema and rows but not the header's numbers that apps keep there
  // (their schema version, above all). A pragma takes no parameters; these are integers.
  for pragma in ["user_version", "application_id"] {
    let value: i64 = conn
      .query_row(&format!("PRAGMA main.{pragma}"), [], |row| row.get(0))
      .map_err(sqlite)?;
    conn
      .execute_batch(&format!("PRAGMA migrated.{pragma} = {value}"))
      .map_err(sqlite)?;
  }
  let check: String = conn
    .query_row("PRAGMA migrated.quick_check", [], |row| row.get(0))
    .map_err(sqlite)?;
  if check != "ok" {
    return Err(Error::sqlite(
      ffi::SQLITE_CORRUPT,
      format!("moving the 1.x file: the new file fails its check ({check})"),
    ));
  }
  conn.execute("DETACH DATABASE migrated", []).map_err(sqlite)?;
  Ok(())
}

/// Loads a plain database image into `conn`'s main database.
fn load(conn: &rusqlite::Connection, plain: Vec<u8>) -> Result<(), Error> {
  let size = plain.len();
  // SQLite frees the copy itself (FREEONCLOSE), so it must come from sqlite3_malloc64.
  // SAFETY: the buffer is allocated with `size` bytes and filled before SQLite sees it;
  // `conn.handle()` is valid for the life of `conn`; on failure SQLite frees the buffer.
  unsafe {
    let buffer = ffi::sqlite3_malloc64(size as u64).cast::<u8>();
    if buffer.is_null() {
      return Err(Error::sqlite(
        ffi::SQLITE_NOMEM,
        "moving the 1.x file: out of memory",
      ));
    }
    std::ptr::copy_nonoverlapping(plain.as_ptr(), buffer, size);
    let rc = ffi::sqlite3_deserialize(
      conn.handle(),
      c"main".as_ptr(),
      buffer,
      size as i64,
      size as i64,
      ffi::SQLITE_DESERIALIZE_FREEONCLOSE | ffi::SQLITE_DESERIALIZE_READONLY,
    );
    if rc != ffi::SQLITE_OK {
      return Err(Error::sqlite(
        rc,
        "moving the 1.x file: its pages do not load as a database",
      ));
    }
  }
  Ok(())
}

/// Keeps the 1.x file as `<file>.sqlcipher3-backup` (or `…-backup.1`, `.2`… when taken): a
/// hard link, so the original bytes stay exactly as they were, or a copy where links fail.
fn keep_backup(path: &Path) -> Result<PathBuf, Error> {
  for n in 0..1000 {
    let suffix = if n == 0 {
      BACKUP_SUFFIX.to_string()
    } else {
      format!("{BACKUP_SUFFIX}.{n}")
    };
    let backup = with_suffix(path, &suffix);
    match fs::hard_link(path, &backup) {
      Ok(()) => return Ok(backup),
      Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
      Err(_) => {
        if backup.exists() {
          continue;
        }
        fs::copy(path, &backup).map_err(|e| io_error("copy the 1.x file to", &backup, e))?;
        File::open(&backup)
          .and_then(|f| f.sync_all())
          .map_err(|e| io_error("sync", &backup, e))?;
        return Ok(backup);
      }
    }
  }
  Err(Error::sqlite(
    ffi::SQLITE_CANTOPEN,
    format!("moving the 1.x file: too many backups beside {}", path.display()),
  ))
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn raw_keys_are_recognised_as_sqlcipher_3_did() {
    let hex16 = "x'0123456789abcdef0123456789abcdef'";
    assert_eq!(raw_key(hex16.as_bytes(), 16, 16).map(|k| k.0.len()), Some(16));
    // A 16-byte hex key is a passphrase for AES-256.
    assert!(raw_key(hex16.as_bytes(), 32, 16).is_none());
    assert!(raw_key(b"x'zz23456789abcdef0123456789abcdef'", 16, 16).is_none());
    assert!(raw_key(b"secret", 16, 16).is_none());
  }
}
