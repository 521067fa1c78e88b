//! The rules in which sessions differ, by where their Database lives. A Database of this process
//! and a cluster client's Database (served over the socket) are sessions of the same engine and
//! obey the same rules (docs/sessions.md) but for the few named here. Each rule is named after
//! what it decides, so that a new kind of session states its answer to each instead of borrowing
//! another kind's flag.

use crate::protocol::MESSAGE_LIMIT;

/// How the engine treats one session (`Engine::attach_with`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
  /// Its `Open` joins the connection this process opened, and never opens or keys one. A cluster
  /// client's key stays in its own process (it proves the key against the file there, see
  /// `check_key`), so the master's connection, keyed by the master, is the only one it may use;
  /// when the master has none, its `Open` fails with `CLUSTER_MASTER_LOST` (the client tries the
  /// next master).
  pub joins_existing_connection: bool,
  /// Until it is open, while the engine has no connection, its requests are answered
  /// `Outgoing::NotRun` instead of failing: such an engine belongs to a master that is closing
  /// (or whose own open failed, and that hands over next), and the client sends the requests to
  /// the next master (docs/failover.md).
  pub hands_over_without_connection: bool,
  /// `loadExtension` may run. A library loaded for a client would run inside the master's
  /// process, with the master's rights, and serve every other client too (docs/security.md).
  pub may_load_extensions: bool,
  /// The most bytes of values one `each()` chunk may carry. A client's chunk travels as one
  /// cluster message, so it must fit `MESSAGE_LIMIT` with room for the frame around the values;
  /// a row larger than that ends the stream with `SQLITE_TOOBIG`. A local chunk is bounded by
  /// `CHUNK_BYTES` (`stream.rs`) alone.
  pub chunk_bytes_limit: usize,
  /// It is told what it needs to run its reads on a read connection of its own process
  /// (`Outgoing::ClientReads`). A Database of this process has the engine's readers.
  pub runs_reads_itself: bool,
}

impl SessionPolicy {
  /// A Database of this process: standalone, or the master's own.
  pub const LOCAL: SessionPolicy = SessionPolicy {
    joins_existing_connection: false,
    hands_over_without_connection: false,
    may_load_extensions: true,
    chunk_bytes_limit: usize::MAX,
    runs_reads_itself: false,
  };

  /// A cluster client's Database, served by this process as its master.
  pub const CLUSTER_CLIENT: SessionPolicy = SessionPolicy {
    joins_existing_connection: true,
    hands_over_without_connection: true,
    may_load_extensions: false,
    chunk_bytes_limit: MESSAGE_LIMIT - (1 << 20),
    runs_reads_itself: true,
  };
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::engine::stream::CHUNK_BYTES;

  #[test]
  fn a_client_chunk_fits_one_message_and_still_holds_a_full_chunk() {
    let limit = SessionPolicy::CLUSTER_CLIENT.chunk_bytes_limit;
    assert!(
      limit < MESSAGE_LIMIT,
      "room is left for the frame around the values"
    );
    assert!(
      limit > CHUNK_BYTES,
      "an ordinary chunk is never cut by the message limit"
    );
  }
}
