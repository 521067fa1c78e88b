//! The dqlite backend (docs/dqlite.md): Databases on a dqlite cluster (Raft-replicated SQLite)
//! through whichever node leads, for apps that outgrow one machine.
//!
//! - [`wire`]: dqlite's wire protocol, version 1: encoding requests, decoding answers.
//! - [`connection`]: one connection to the cluster's leader: finding it, time limits, requests
//!   and the parts of their results.

pub mod connection;
pub mod wire;

#[cfg(test)]
mod tests;
