//! `db.backup()`: one operation of a session's backup (start, step, finish); the copying itself
//! is `engine/backup.rs`.

use rusqlite::ffi;

use crate::engine::backup::{Backup, Direction};
use crate::engine::database::Database;
use crate::engine::session::Session;
use crate::error::Error;
use crate::protocol::{BackupOp, Response};

impl Database {
  /// One operation of a session's `db.backup()`.
  pub(super) fn backup(&mut self, session: &mut Session, op: BackupOp) -> Result<Response, Error> {
    match op {
      BackupOp::Start {
        backup,
        filename,
        source_name,
        dest_name,
        filename_is_dest,
      } => {
        let direction = Direction {
          filename: &filename,
          source_name: &source_name,
          dest_name: &dest_name,
          filename_is_dest,
        };
        if !filename_is_dest && session.readonly {
          return Err(Error::sqlite(
            ffi::SQLITE_READONLY,
            "attempt to write a readonly database",
          ));
        }
        let started = Backup::start(self.conn(), &direction, self.key.as_ref())?;
        session.backups.insert(backup, started);
        Ok(Response::Done)
      }
      BackupOp::Step { backup, pages, retry } => {
        let job = session
          .backups
          .get_mut(&backup)
          .ok_or_else(|| Error::misuse("Backup is already finished"))?;
        let progress = job.step(pages, &retry);
        Ok(Response::Backup {
          done: progress.done,
          remaining: progress.remaining,
          page_count: progress.page_count,
          error: progress.error,
        })
      }
      BackupOp::Finish { backup } => {
        session.backups.remove(&backup);
        Ok(Response::Done)
      }
    }
  }
}
