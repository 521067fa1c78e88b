//! A client proves its own key against the database file before its open succeeds
//! (docs/security.md). The key of a member's open is never sent to the master, so the master
//! cannot tell a client with the wrong key; such a client would only fail when it took over,
//! leaving every other process without a usable master. So when the master answers an open
//! that carried a key, the answer is held back while the key is tried on a second, read-only
//! connection of this process, and the open fails instead when the key is wrong.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::engine::Sink;
use crate::error::Error;
use crate::protocol::{OpenOptions, Outgoing, Response};

/// The gate on one member's deliveries.
pub struct KeyCheck {
  state: Arc<Mutex<Check>>,
}

enum Check {
  None,
  /// The open `id` went to a master with this key.
  Armed {
    id: u32,
    options: OpenOptions,
  },
  /// The master answered the open; the check runs. Everything for the member waits here.
  Running {
    held: Vec<Outgoing>,
  },
}

fn lock(state: &Mutex<Check>) -> MutexGuard<'_, Check> {
  state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Default for KeyCheck {
  fn default() -> Self {
    KeyCheck {
      state: Arc::new(Mutex::new(Check::None)),
    }
  }
}

impl KeyCheck {
  /// No check of this member's key is running. (An open still waiting for its answer does not
  /// count: after a graceful handover it is sent again, so it may never be answered by the
  /// master it was armed for, and this member may be the only one able to lead.)
  pub fn checked(&self) -> bool {
    !matches!(*lock(&self.state), Check::Running { .. })
  }

  /// The open `id` with a key goes to another process's master: check the key when it answers.
  pub fn arm(&self, id: u32, options: &OpenOptions) {
    if options.key.is_some() {
      *lock(&self.state) = Check::Armed {
        id,
        options: options.clone(),
      };
    }
  }

  /// Passes `message` on to `out`, or holds it while a check runs; the answer to an armed open
  /// starts the check.
  pub fn pass(&self, message: Outgoing, out: &Arc<dyn Sink>) {
    let mut check = lock(&self.state);
    match &mut *check {
      Check::None => {
        drop(check);
        out.send(message);
      }
      Check::Running { held } => held.push(message),
      Check::Armed { id, .. } => {
        let answered = matches!(&message, Outgoing::Reply { id: got, .. } if got == id);
        if !answered {
          drop(check);
          return out.send(message);
        }
        let Check::Armed { options, .. } = std::mem::replace(&mut *check, Check::None) else {
          unreachable!("matched above")
        };
        if !matches!(
          message,
          Outgoing::Reply {
            response: Response::Done,
            ..
          }
        ) {
          drop(check);
          return out.send(message); // the master refused the open itself
        }
        *check = Check::Running { held: vec![message] };
        drop(check);
        let (state, sink) = (self.state.clone(), out.clone());
        let spawned = std::thread::Builder::new()
          .name("sqlite3-cluster-key".into())
          .spawn(move || finish(&state, &*sink, crate::engine::check_key(&options)));
        if spawned.is_err() {
          finish(&self.state, &**out, Ok(()));
        }
      }
    }
  }
}

/// Delivers what waited for the check; the open fails instead when the key is wrong.
fn finish(state: &Mutex<Check>, out: &dyn Sink, result: Result<(), Error>) {
  let mut check = lock(state);
  let Check::Running { held } = std::mem::replace(&mut *check, Check::None) else {
    return;
  };
  for (i, message) in held.into_iter().enumerate() {
    match (i, &result, message) {
      (0, Err(e), Outgoing::Reply { id, .. }) => out.send(Outgoing::Reply {
        id,
        response: Response::Error(Error::sqlite(
          rusqlite::ffi::SQLITE_NOTADB,
          format!(
            "{} (this process checked its own `key` against the file before joining the master)",
            e.message()
          ),
        )),
      }),
      (_, _, message) => out.send(message),
    }
  }
}
