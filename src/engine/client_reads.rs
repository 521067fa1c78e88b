//! What the engine tells the cluster clients it serves so that each can run its reads outside
//! transactions on a read connection of its own process (docs/sessions.md#client-read-connections).
//!
//! A client on the master's machine can open the file itself. A read it runs there costs what a
//! node-sqlite3 read costs, where a read sent to the master crosses the socket and two threads of
//! the master. It sees what a read on the master's readers would see, given what the engine tells
//! it here: which file it may read (the master's, by device and inode: a path may name another
//! file in the client's process, or the file may have been replaced), and whether it may read it
//! at all now. Like the engine's own readers, it may not while the file is not in WAL mode, while
//! the write connection holds state a reader would not see (`local_state`), while the log is
//! being emptied (`log_limit`), or when the application turned read connections off. Each
//! session is also told its per-Database pragmas, which the client's connection takes on, or
//! that it may not read itself at all (not keyed yet, aborted, watching `trace`/`profile`).
//!
//! A session hears of a change before the reply that follows it, as it hears of its transaction
//! (`Outgoing::Txn`): a read it sends after a reply is routed by what was true when the reply
//! left. Other sessions are told when the engine next flushes its answers.

use super::database::Database;
use super::identity::Identity;
use super::session::Session;
use crate::protocol::{ClientReads, Outgoing};

impl Database {
  /// The file clients may read themselves now, if they may.
  fn file_for_client_reads(&mut self) -> Option<Identity> {
    if self.gone.is_some() || self.journal_pending || self.log.draining() || self.reader_capacity() == 0 {
      return None;
    }
    let file = self.watch.as_ref()?.opened()?;
    let conn = self.conn.as_mut()?;
    self.local.allows_readers(conn).then_some(file)
  }

  /// Looks again at what clients may read (`client_reads_version` counts the changes).
  pub fn look_at_client_reads(&mut self) {
    let now = self.file_for_client_reads();
    if std::mem::replace(&mut self.client_reads, now) != now {
      self.client_reads_version += 1;
    }
  }

  /// Tells `session`, if it is a client's and open, what changed for its reads since it was
  /// last told. `look_at_client_reads` ran first.
  pub fn tell_client_reads(&self, session: &mut Session) {
    if !session.policy.runs_reads_itself || !session.opened {
      return;
    }
    let may = !session.aborted
      && !session.awaiting_key
      && session.key_gate.is_none()
      && !session.hooks.trace
      && !session.hooks.profile;
    let now = ClientReads {
      file: self.client_reads,
      session: may.then_some(session.settings),
    };
    if session.told_reads != Some(now) {
      session.told_reads = Some(now);
      session.sink.send(Outgoing::ClientReads(now));
    }
  }
}
