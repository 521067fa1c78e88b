//! Cluster mode: one master process owns the database; the others reach it over a Unix socket.
//!
//! - [`election`]: the lock file that decides who is master, and the socket's files.
//! - [`wire`]: frames and messages on the socket, reserved request ids, size limits, and the
//!   framed connection both sides start with.
//! - [`handshake`]: both halves of the versioned handshake, over any byte stream.
//! - [`auth`]: peer credentials and the `secret` challenge.
//! - [`server`]: the master's listener; each client session becomes an engine session.
//! - [`client`]: a client's connection to its master: writer, reader, heartbeat, and what it
//!   wrote and has not seen answered.
//! - [`failover`]: what re-creates a member on the next master (replay), and what becomes of
//!   its requests when a master is lost, closes or freezes; independent of the election.
//! - [`key_check`]: a client proves its own key against the file before its open succeeds.
//! - [`descriptors`]: the file descriptors a master keeps for SQLite.
//! - [`identity`]: one master per database file, whatever path names it.
//! - [`node`]: this process's role per socket: membership, the election, becoming master or
//!   client.
//! - [`own_reads`]: a client's own read connections, which run its Databases' reads outside
//!   transactions without a trip to the master.
//!
//! Everything here runs on the cluster runtime's threads (tokio, sockets only); SQL runs on the
//! engine thread (and, in a client, on its own readers' threads); JavaScript threads only queue
//! requests and receive batches.

pub mod auth;
pub mod client;
pub mod descriptors;
pub mod election;
pub mod failover;
pub mod handshake;
pub mod identity;
pub mod key_check;
pub mod node;
pub mod own_reads;
pub mod server;
pub mod wire;

#[cfg(test)]
mod tests;

use once_cell::sync::Lazy;
use tokio::runtime::Handle;

/// One thread runs every socket of this process: the work per message is small, and a single
/// thread avoids the cross-thread wake-ups of a work-stealing pool (they cost more than the
/// work on a machine with few cores).
static RUNTIME: Lazy<Handle> = Lazy::new(|| {
  let runtime = tokio::runtime::Builder::new_current_thread()
    .enable_all()
    .build()
    .expect("the cluster runtime could not start (out of threads?)");
  let handle = runtime.handle().clone();
  std::thread::Builder::new()
    .name("sqlite3-cluster io".into())
    .spawn(move || runtime.block_on(std::future::pending::<()>()))
    .expect("the cluster thread could not start");
  handle
});

pub fn runtime() -> &'static Handle {
  &RUNTIME
}
