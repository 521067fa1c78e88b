//! One master per database file, whatever path names it.
//!
//! The election lock sits beside the socket, and the socket's default place comes from the
//! file's path. Two paths to one file (hard links, or a file reached through a symlink by some
//! processes and by its own name by others) would elect two masters, and `SQLITE_BUSY` would be
//! back between them. So a master also takes an exclusive `flock` on the database file itself:
//! on Linux it does not interact with SQLite's own (`fcntl`) locks, and it follows the file
//! however it is named. A process that wins its socket's election but finds the file taken looks
//! for the master's socket in a note the master leaves beside the file, named by the file's
//! device and inode, and joins it.
//!
//! Closing a descriptor of the database file would drop every `fcntl` lock SQLite holds on it in
//! this process, so the descriptors taken here are never closed: the lock is released with
//! `LOCK_UN` and the descriptor kept for the next time.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use once_cell::sync::Lazy;

use crate::engine::{file_identity, Identity};
use crate::error::Error;

/// Descriptors of the database files this process has been master of, and whether a master of
/// this process holds the file now.
static FILES: Lazy<Mutex<HashMap<Identity, (File, bool)>>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// A master's hold on its database file; dropping it lets another master take the file.
pub struct FileLock {
  identity: Identity,
}

pub enum Claim {
  /// This process may be the file's master (`None`: there is no file yet to lock).
  Taken(Option<FileLock>),
  /// Another master holds the file, through another path.
  Held,
}

/// Takes the file for this process's master, unless another master has it.
pub fn claim(filename: &str) -> Result<Claim, Error> {
  let Some(identity) = file_identity(Path::new(filename)) else {
    return Ok(Claim::Taken(None));
  };
  let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
  if let std::collections::hash_map::Entry::Vacant(slot) = files.entry(identity) {
    let file = match fs::OpenOptions::new()
      .read(true)
      .custom_flags(libc::O_CLOEXEC)
      .open(filename)
    {
      Ok(file) => file,
      // Not readable by us: SQLite will say so at open; nothing to lock.
      Err(_) => return Ok(Claim::Taken(None)),
    };
    if identity_of_file(&file) != Some(identity) {
      return Ok(Claim::Taken(None)); // replaced between the two looks: the next election sees it
    }
    slot.insert((file, false));
  }
  let (file, held) = files.get_mut(&identity).expect("inserted above");
  if *held {
    return Ok(Claim::Held); // a master of this process, through another path
  }
  // SAFETY: flock on a descriptor we own and keep open; no memory is involved.
  let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
  if !locked {
    return Ok(Claim::Held);
  }
  *held = true;
  Ok(Claim::Taken(Some(FileLock { identity })))
}

fn identity_of_file(file: &File) -> Option<Identity> {
  file.metadata().ok().map(|m| (m.dev(), m.ino()))
}

impl Drop for FileLock {
  fn drop(&mut self) {
    let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((file, held)) = files.get_mut(&self.identity) {
      // SAFETY: as in `claim`.
      unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
      *held = false;
    }
  }
}

/// The note beside the file that names its master's socket: `.sqlite3-cluster-<dev>-<ino>` in
/// the folder of the file's real path.
fn note(filename: &str) -> Option<PathBuf> {
  let real = fs::canonicalize(filename).ok()?;
  let (dev, ino) = file_identity(&real)?;
  Some(real.parent()?.join(format!(".sqlite3-cluster-{dev}-{ino}")))
}

/// Leaves the note naming `sock` (best effort: a folder we cannot write gets none), and
/// returns where, for `unpublish`.
pub fn publish(filename: &str, sock: &Path) -> Option<PathBuf> {
  let note = note(filename)?;
  let mut temp = note.as_os_str().to_owned();
  temp.push(format!(".{}.tmp", std::process::id()));
  let written = fs::OpenOptions::new()
    .write(true)
    .create(true)
    .truncate(true)
    .mode(0o600)
    .open(&temp)
    .and_then(|mut file| std::io::Write::write_all(&mut file, sock.as_os_str().as_encoded_bytes()));
  if written.is_err() || fs::rename(&temp, &note).is_err() {
    let _ = fs::remove_file(&temp);
    return None;
  }
  Some(note)
}

/// Removes the note `publish` left, if it still names `sock`.
pub fn unpublish(note: &Path, sock: &Path) {
  if master_sock_at(note).as_deref() == Some(sock) {
    let _ = fs::remove_file(note);
  }
}

/// The socket of the file's master, as its note says.
pub fn master_sock(filename: &str) -> Option<PathBuf> {
  master_sock_at(&note(filename)?)
}

fn master_sock_at(note: &Path) -> Option<PathBuf> {
  let bytes = fs::read(note).ok()?;
  let text = String::from_utf8(bytes).ok()?;
  Some(PathBuf::from(text))
}
