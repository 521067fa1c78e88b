//! The seam between a Database's session and whatever runs its requests.
//!
//! A JavaScript session (`js::session::NativeSession`) only queues requests and receives
//! answers through the sink it gave when the backend was made; it never knows whether they run
//! on this process's engine, on a master reached over the socket, or on a backend added later.
//! Every backend keeps the same promises, which `conformance` tests against each of them:
//! - a session's requests are answered in the order it sent them, each exactly once (a reply,
//!   or a stream of chunks ended by `EachEnd`);
//! - an `each()` stream sends a bounded number of chunks ahead of the session's `resume`s;
//! - `interrupt` stops only the statement of this session running at that moment;
//! - after `leave`'s callback has run, the session holds nothing (no transaction, no statement).

use std::sync::Arc;

use crate::cluster::node::Membership;
use crate::engine::{SessionHandle, Sink};
use crate::error::Error;
use crate::protocol::{Outgoing, Request, Response};

/// One session's way to its database.
pub trait Backend: Send {
  /// Queues request `id`. Its answers go to the backend's sink, after those of every request
  /// queued before it.
  fn send(&self, id: u32, request: Request);

  /// Acknowledges one `Chunk` of the session's `each()` stream: the backend may send another.
  fn resume(&self);

  /// Stops this session's statement if one is running now (`SQLITE_INTERRUPT`).
  fn interrupt(&self);

  /// Passes on the requests queued since the last flush. A backend that sends as soon as it is
  /// asked has nothing to do; one that batches (a client's socket) writes the batch now. The
  /// JavaScript layer flushes once per turn of its event loop.
  fn flush(&self) {}

  /// Ends the session once its last request is answered; `done` runs when nothing of it is left
  /// (a master's last Database first hands its clients over to the next master).
  fn leave(&mut self, done: Box<dyn FnOnce() + Send>) {
    done()
  }
}

/// Standalone: a session of this process's engine of the file.
impl Backend for SessionHandle {
  fn send(&self, id: u32, request: Request) {
    SessionHandle::send(self, id, request)
  }

  fn resume(&self) {
    SessionHandle::resume(self)
  }

  fn interrupt(&self) {
    SessionHandle::interrupt(self)
  }
}

/// Cluster mode: a member of the node of a socket (the master's engine, a client connection,
/// or an election in between; the member does not know which).
impl Backend for Membership {
  fn send(&self, id: u32, request: Request) {
    Membership::send(self, id, request)
  }

  fn resume(&self) {
    Membership::resume(self)
  }

  fn interrupt(&self) {
    Membership::interrupt(self)
  }

  fn flush(&self) {
    Membership::flush(self)
  }

  fn leave(&mut self, done: Box<dyn FnOnce() + Send>) {
    Membership::leave(self, done)
  }
}

/// A backend that could not be reached at all (a cluster socket path that cannot exist): every
/// request is answered with the error that says why, so the Database fails the way a
/// node-sqlite3 Database fails to open, through its callbacks.
pub struct Unavailable {
  error: Error,
  sink: Arc<dyn Sink>,
}

impl Unavailable {
  pub fn new(error: Error, sink: Arc<dyn Sink>) -> Unavailable {
    Unavailable { error, sink }
  }
}

impl Backend for Unavailable {
  fn send(&self, id: u32, _: Request) {
    self.sink.send(Outgoing::Reply {
      id,
      response: Response::Error(self.error.clone()),
    });
    self.sink.flush();
  }

  fn resume(&self) {}

  fn interrupt(&self) {}
}

/// A boxed backend is one (what `NativeSession` holds, and what the conformance suite drives).
impl<B: Backend + ?Sized> Backend for Box<B> {
  fn send(&self, id: u32, request: Request) {
    (**self).send(id, request)
  }

  fn resume(&self) {
    (**self).resume()
  }

  fn interrupt(&self) {
    (**self).interrupt()
  }

  fn flush(&self) {
    (**self).flush()
  }

  fn leave(&mut self, done: Box<dyn FnOnce() + Send>) {
    (**self).leave(done)
  }
}

#[cfg(test)]
pub(crate) mod conformance;
