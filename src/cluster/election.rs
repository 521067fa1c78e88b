//! Who is master (docs/election.md#the-lock): whoever holds an exclusive `flock` on the lock file beside the
//! socket. The lock file is opened close-on-exec and never unlinked or replaced, so the kernel
//! releases the lock exactly when the master process dies. Only the lock holder creates the
//! socket, atomically: bind a temporary name, `chmod`, `rename` over the real one.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use super::auth;
use crate::error::Error;

/// Longest socket path Linux accepts (`sun_path` is 108 bytes with the final NUL).
pub const MAX_SOCK_PATH: usize = 107;

/// Problems with the socket's files are reported like a database file that cannot be opened.
fn setup_error(message: String) -> Error {
  Error::sqlite(rusqlite::ffi::SQLITE_CANTOPEN, message)
}

#[derive(Debug, Clone)]
pub struct Paths {
  pub sock: PathBuf,
  pub lock: PathBuf,
}

impl Paths {
  pub fn new(sock: &Path) -> Result<Paths, Error> {
    let length = sock.as_os_str().len();
    if length > MAX_SOCK_PATH {
      return Err(setup_error(format!(
        "the socket path {} is {length} bytes long; Unix sockets allow at most {MAX_SOCK_PATH}: pass a shorter `sock`",
        sock.display()
      )));
    }
    let mut lock = sock.as_os_str().to_owned();
    lock.push(".lock");
    Ok(Paths {
      sock: sock.to_path_buf(),
      lock: PathBuf::from(lock),
    })
  }

  fn dir(&self) -> &Path {
    self.sock.parent().unwrap_or(Path::new("."))
  }

  /// Creates the socket directory (0700) if needed, and refuses one that another user owns or
  /// that other users may write to (they could replace the socket or the lock file).
  pub fn prepare_dir(&self) -> Result<(), Error> {
    let dir = self.dir();
    if !dir.exists() {
      if let Err(e) = DirBuilder::new().mode(0o700).create(dir) {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
          return Err(setup_error(format!(
            "cannot create the socket directory {}: {e}",
            dir.display()
          )));
        }
      }
    }
    let meta = fs::metadata(dir).map_err(|e| {
      setup_error(format!(
        "cannot inspect the socket directory {}: {e}",
        dir.display()
      ))
    })?;
    if meta.uid() != auth::euid() {
      return Err(setup_error(format!(
        "the socket directory {} belongs to another user (uid {}); choose a directory of your own with `sock`",
        dir.display(),
        meta.uid()
      )));
    }
    if meta.mode() & 0o022 != 0 {
      return Err(setup_error(format!(
        "the socket directory {} is writable by other users (mode {:o}); make it private (chmod 700) or choose another `sock`",
        dir.display(),
        meta.mode() & 0o777
      )));
    }
    Ok(())
  }

  fn open_lock(&self) -> Result<File, Error> {
    OpenOptions::new()
      .read(true)
      .write(true)
      .create(true)
      .truncate(false)
      .mode(0o600)
      .custom_flags(libc::O_CLOEXEC)
      .open(&self.lock)
      .map_err(|e| setup_error(format!("cannot open the lock file {}: {e}", self.lock.display())))
  }

  /// Takes the master lock if nobody holds it. The holder's pid is written into the file.
  pub fn try_lock(&self) -> Result<Option<Lock>, Error> {
    self.prepare_dir()?;
    let mut file = self.open_lock()?;
    match file.try_lock() {
      Ok(()) => {}
      Err(fs::TryLockError::WouldBlock) => return Ok(None),
      Err(fs::TryLockError::Error(e)) => {
        return Err(setup_error(format!("cannot lock {}: {e}", self.lock.display())))
      }
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(Some(Lock { _file: file }))
  }

  /// The pid written by the current (or last) lock holder.
  pub fn holder_pid(&self) -> Option<u32> {
    let mut text = String::new();
    File::open(&self.lock).ok()?.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
  }

  /// Binds the socket: a temporary name first, then `chmod 600`, then `rename` over `sock`,
  /// so a client never sees a half-made socket. Call only while holding the lock.
  pub fn bind(&self) -> Result<UnixListener, Error> {
    let temp = self.temporary_name();
    let _ = fs::remove_file(&temp);
    let fail = |what: &str, e: std::io::Error| {
      setup_error(format!("cannot {what} the socket {}: {e}", self.sock.display()))
    };
    let listener = UnixListener::bind(&temp).map_err(|e| fail("create", e))?;
    let result = fs::set_permissions(&temp, fs::Permissions::from_mode(0o600))
      .map_err(|e| fail("chmod", e))
      .and_then(|()| fs::rename(&temp, &self.sock).map_err(|e| fail("publish", e)));
    if let Err(e) = result {
      let _ = fs::remove_file(&temp);
      return Err(e);
    }
    listener.set_nonblocking(true).map_err(|e| fail("configure", e))?;
    Ok(listener)
  }

  /// Where `bind` makes the socket before renaming it: `<sock>.<pid>.tmp`, or, when that would
  /// pass the length limit (a `sock` of 98 bytes or more), a name exactly as long as `sock`:
  /// its last character replaced by `~`. Only the lock holder binds, so neither can collide with
  /// another master's.
  fn temporary_name(&self) -> PathBuf {
    let mut temp = self.sock.as_os_str().to_owned();
    temp.push(format!(".{}.tmp", std::process::id()));
    if temp.len() <= MAX_SOCK_PATH {
      return PathBuf::from(temp);
    }
    let mut bytes = self.sock.as_os_str().as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
      *last = if *last == b'~' { b'#' } else { b'~' };
    }
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
  }

  /// Removes the socket when the master closes (it still holds the lock, so it is its own).
  pub fn unpublish(&self) {
    let _ = fs::remove_file(&self.sock);
  }
}

/// The master lock; dropping it (or the process dying) releases it.
pub struct Lock {
  _file: File,
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn one_lock_holder_and_a_private_directory() {
    let dir = std::env::temp_dir().join(format!("sqlite3-cluster-election-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let paths = Paths::new(&dir.join("sock")).unwrap();
    let lock = paths.try_lock().unwrap().expect("first taker gets the lock");
    assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    assert!(
      paths.try_lock().unwrap().is_none(),
      "a second open file description is refused"
    );
    assert_eq!(paths.holder_pid(), Some(std::process::id()));
    let listener = paths.bind().unwrap();
    assert_eq!(fs::metadata(&paths.sock).unwrap().mode() & 0o777, 0o600);
    drop(listener);
    drop(lock);
    assert!(paths.try_lock().unwrap().is_some(), "released on drop");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    assert!(
      paths.try_lock().is_err(),
      "a directory others may write is refused"
    );
    let _ = fs::remove_dir_all(&dir);
  }

  #[test]
  fn a_socket_path_of_the_longest_allowed_length_binds() {
    let base = std::env::temp_dir().join(format!("sqlite3-cluster-long-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    // `<dir>/sock` exactly MAX_SOCK_PATH bytes long.
    let pad = MAX_SOCK_PATH - base.as_os_str().len() - "/x/sock".len();
    let sock = base.join(format!("x{}", "y".repeat(pad))).join("sock");
    assert_eq!(sock.as_os_str().len(), MAX_SOCK_PATH);
    fs::create_dir_all(&base).unwrap();
    let paths = Paths::new(&sock).unwrap();
    let _lock = paths.try_lock().unwrap().expect("the lock");
    let listener = paths.bind().expect("binds at 107 bytes");
    assert!(std::os::unix::net::UnixStream::connect(&sock).is_ok());
    drop(listener);
    let _ = fs::remove_dir_all(&base);
  }

  #[test]
  fn long_socket_paths_are_an_error() {
    let long = PathBuf::from(format!("/tmp/{}", "x".repeat(120)));
    assert!(Paths::new(&long).is_err());
  }
}
