//! The JavaScript side of the addon: the `NativeSession` class that `lib/` builds the
//! node-sqlite3 API on, and the conversions between JavaScript values and [`crate::value`].
//!
//! Everything here runs on the JavaScript thread, except `Outbox::send`, which the engine calls.

mod convert;
pub mod event_loop;
mod outbox;
mod session;

pub use session::NativeSession;
