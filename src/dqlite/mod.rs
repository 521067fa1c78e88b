//! The dqlite backend (docs/dqlite.md): Databases on a dqlite cluster (Raft-replicated SQLite)
//! through whichever node leads, for apps that outgrow one machine.
//!
//! - [`wire`]: dqlite's wire protocol, version 1: encoding requests, decoding answers.
//! - [`statement`]: what must be known of a statement before sending it: its kind (rows or
//!   not, a write with rows), a second statement after it, its parameters' numbers.
//! - [`stored`]: which column a write stores each bound value in, and which values a column
//!   dqlite types by its declaration cannot give back without stopping the node.
//! - [`session`]: a Database's session on the cluster, the `Backend` behind a `dqlite://`
//!   filename; its statements answered on the JavaScript thread's event loop (`session/direct`).
//! - [`shapes`]: the column names of its results, sent to JavaScript once per session.
//! - [`connection`]: one connection to the cluster's leader: finding it, time limits, requests
//!   and the parts of their results.

pub mod connection;
pub mod session;
pub mod shapes;
pub mod statement;
pub mod stored;
pub mod wire;

#[cfg(test)]
mod tests;
