//! Which file the connection has open, and whether the path still names it.
//!
//! A file replaced under a running program (a backup restored with `mv`, a deploy that swaps the
//! database) or deleted leaves an open connection on the old inode: reads return what was there,
//! writes fail with `SQLITE_READONLY`, and only a restart of every process would see the new
//! file. So the engine looks at the path about once a second: a new file is opened in place of
//! the old one, and a deleted one fails every statement with an error that says so, rather than
//! answering from a file nobody can see any more.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often the path is looked at.
const EVERY: Duration = Duration::from_secs(1);

/// A file's identity: device and inode.
pub type Identity = (u64, u64);

pub enum Change {
  /// The path names the file the connection has open.
  Same,
  /// The path names another file now.
  Replaced,
  /// Nothing is at the path.
  Deleted,
}

pub struct Watch {
  path: PathBuf,
  open: Option<Identity>,
  next: Instant,
}

/// The identity of the file at `path` (symbolic links followed), if there is one.
pub fn of(path: &std::path::Path) -> Option<Identity> {
  std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Watch {
  /// Watches the file a connection just opened; `None` for names that are not files
  /// (`:memory:`, `''`, URIs).
  pub fn new(filename: &str) -> Option<Watch> {
    if filename.is_empty() || filename == ":memory:" || filename.starts_with("file:") {
      return None;
    }
    let path = PathBuf::from(filename);
    Some(Watch {
      open: of(&path),
      path,
      next: Instant::now() + EVERY,
    })
  }

  pub fn path(&self) -> &std::path::Path {
    &self.path
  }

  /// Looks at the path at the next chance rather than within a second (a reader found the file
  /// moved).
  pub fn due_now(&mut self) {
    self.next = Instant::now();
  }

  /// The identity of the file the connection has open, when known.
  pub fn opened(&self) -> Option<Identity> {
    self.open
  }

  /// When the path should be looked at next.
  pub fn due(&self) -> Instant {
    self.next
  }

  /// Looks at the path (if it is time to).
  pub fn check(&mut self, now: Instant) -> Change {
    if now < self.next {
      return Change::Same;
    }
    self.next = now + EVERY;
    match (of(&self.path), self.open) {
      (None, _) => Change::Deleted,
      (Some(now), Some(open)) if now == open => Change::Same,
      // A file that did not exist when the connection opened it has been created since by
      // SQLite itself: that is the one open.
      (Some(now), None) => {
        self.open = Some(now);
        Change::Same
      }
      (Some(_), Some(_)) => Change::Replaced,
    }
  }

  /// The connection now has the file at the path open.
  pub fn reopened(&mut self) {
    self.open = of(&self.path);
  }
}
