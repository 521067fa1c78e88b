//! Delivery from an engine thread to the JavaScript thread.
//!
//! The engine appends to a queue; the first message into an empty queue wakes the JavaScript
//! thread through a threadsafe function, which takes the whole queue and hands it to the
//! session's dispatcher as one flat array. Many completions that happen together therefore
//! cost one wake-up and one call into JavaScript.
//!
//! An answer read on the JavaScript thread itself, by an event of its loop (a socket watched
//! there, `js::event_loop`), needs no wake-up: between `hold` and `deliver_held` the outbox only
//! queues, and `deliver_held` calls the dispatcher at once, as Node calls back for its own
//! sockets. Waking the thread through the threadsafe function would cost a second turn of the
//! loop per answer (docs/dqlite.md#the-event-loop-path).

use std::collections::HashSet;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use napi::sys;

use super::convert::Writer;
use crate::engine::Sink;
use crate::protocol::Outgoing;

/// Column-name sets the dispatcher has cached; past this many it is told to start over.
const KNOWN_SHAPES_LIMIT: usize = 4096;

pub struct Outbox {
  state: Mutex<State>,
  known_shapes: Mutex<HashSet<u32>>,
  /// Set at failover: the next batch tells the dispatcher to forget every shape.
  forget_shapes: AtomicBool,
}

struct State {
  queue: Vec<Outgoing>,
  /// Null once the session is disposed: nothing may be delivered after that.
  tsfn: sys::napi_threadsafe_function,
  /// Between `hold` and `deliver_held`: the JavaScript thread delivers the queue itself.
  held: bool,
  /// The JavaScript thread's environment, and a reference to the dispatcher, for
  /// `deliver_held`; the reference is deleted (and nulled) by the finalizer.
  env: sys::napi_env,
  dispatch: sys::napi_ref,
}

// SAFETY: the threadsafe function handle is the one N-API object made to be used from any
// thread (`napi_call_threadsafe_function`); it is read and cleared only under the outbox's mutex,
// and nulled by the finalizer before Node frees it. `env` and `dispatch` are only carried by
// other threads: they are used on the JavaScript thread alone (`deliver_held`, `finalize`).
unsafe impl Send for State {}

impl Outbox {
  /// Creates the outbox and its threadsafe function around `dispatch`. The function starts
  /// unreferenced: an idle Database does not keep Node alive.
  ///
  /// # Safety
  ///
  /// Called on the JavaScript thread of `env`, during a call from JavaScript; `dispatch` is a
  /// handle of that call's scope (N-API refuses a non-function with an error status).
  pub unsafe fn new(env: sys::napi_env, dispatch: sys::napi_value) -> Result<Arc<Outbox>, String> {
    let outbox = Arc::new(Outbox {
      state: Mutex::new(State {
        queue: Vec::new(),
        tsfn: ptr::null_mut(),
        held: false,
        env,
        dispatch: ptr::null_mut(),
      }),
      known_shapes: Mutex::new(HashSet::new()),
      forget_shapes: AtomicBool::new(false),
    });
    let mut name = ptr::null_mut();
    let label = "sqlite3-cluster";
    // SAFETY: `env` is live on this thread (this function's contract); `label` is UTF-8 passed with
    // its length; `name` is a local. Were the call to fail, `name` would stay null and the next
    // call would refuse it with an error status.
    unsafe {
      sys::napi_create_string_utf8(env, label.as_ptr().cast(), label.len() as isize, &mut name);
    }
    let context = Arc::into_raw(outbox.clone()) as *mut c_void;
    let mut tsfn = ptr::null_mut();
    // SAFETY: `env` and `dispatch` as this function's contract says; `name` is a handle of this
    // scope. `context` carries one strong count of the outbox, which `finalize` takes back;
    // `finalize` and `call_js` have the signatures N-API expects; `tsfn` is a local.
    let status = unsafe {
      sys::napi_create_threadsafe_function(
        env,
        dispatch,
        ptr::null_mut(),
        name,
        0,
        1,
        ptr::null_mut(),
        Some(finalize),
        context,
        Some(call_js),
        &mut tsfn,
      )
    };
    if status != sys::Status::napi_ok {
      // SAFETY: creation failed, so N-API will never call `finalize`: the count `Arc::into_raw`
      // gave `context` is taken back here, once.
      drop(unsafe { Arc::from_raw(context as *const Outbox) });
      return Err(format!(
        "could not create the delivery function (status {status})"
      ));
    }
    // SAFETY: `tsfn` was just created, on this thread (the JavaScript thread of `env`, the only one
    // where unref may run), and no other thread has it yet.
    unsafe { sys::napi_unref_threadsafe_function(env, tsfn) };
    let mut dispatch_ref = ptr::null_mut();
    // SAFETY: as above; `dispatch` is a function (the threadsafe function accepted it). Were the
    // call to fail, the reference stays null and `deliver_held` leaves the queue to the
    // threadsafe function.
    unsafe { sys::napi_create_reference(env, dispatch, 1, &mut dispatch_ref) };
    let mut state = outbox.lock();
    state.tsfn = tsfn;
    state.dispatch = dispatch_ref;
    drop(state);
    Ok(outbox)
  }

  fn lock(&self) -> std::sync::MutexGuard<'_, State> {
    self.state.lock().unwrap_or_else(|e| e.into_inner())
  }

  /// Keeps the event loop alive (a request is in flight) or lets it exit (idle).
  ///
  /// # Safety
  ///
  /// Called on the JavaScript thread of `env`: N-API allows ref and unref only there.
  pub unsafe fn set_referenced(&self, env: sys::napi_env, on: bool) {
    let state = self.lock();
    if state.tsfn.is_null() {
      return;
    }
    // SAFETY: `tsfn` is non-null under the lock, so neither released (`dispose`) nor finalized
    // (`finalize`): both null it under this lock, which is held. `env` is the JavaScript thread's
    // (this function's contract).
    unsafe {
      if on {
        sys::napi_ref_threadsafe_function(env, state.tsfn);
      } else {
        sys::napi_unref_threadsafe_function(env, state.tsfn);
      }
    }
  }

  /// Stops delivery for good and releases the threadsafe function.
  pub fn dispose(&self) {
    let mut state = self.lock();
    if !state.tsfn.is_null() {
      // SAFETY: `tsfn` is non-null under the lock, so still alive and not yet released. This is the
      // one release that matches the one thread count it was created with (release may run on any
      // thread), and it is nulled right after, so nothing uses it again.
      unsafe {
        sys::napi_release_threadsafe_function(state.tsfn, sys::ThreadsafeFunctionReleaseMode::release)
      };
      state.tsfn = ptr::null_mut();
    }
    state.queue.clear();
  }
}

impl Sink for Outbox {
  fn hold(&self) {
    self.lock().held = true;
  }

  unsafe fn deliver_held(&self) {
    let mut state = self.lock();
    state.held = false;
    if state.queue.is_empty() {
      return;
    }
    if state.tsfn.is_null() || state.dispatch.is_null() {
      // Disposed (nothing may be delivered), or no reference to call through: the threadsafe
      // function delivers, as for any other thread.
      if !state.tsfn.is_null() {
        // SAFETY: as in `send`.
        unsafe {
          sys::napi_call_threadsafe_function(
            state.tsfn,
            ptr::null_mut(),
            sys::ThreadsafeFunctionCallMode::nonblocking,
          )
        };
      }
      return;
    }
    let (env, dispatch_ref) = (state.env, state.dispatch);
    drop(state);
    // SAFETY: `deliver_held`'s contract: this is the JavaScript thread, in an event of its
    // loop, with no JavaScript on the stack. The environment is live: the
    // reference is non-null, so `finalize` (which runs before the environment goes) has not run.
    // The dispatcher is called with the lock released: what it calls may send again.
    unsafe { self.deliver_now(env, dispatch_ref) };
  }

  fn reset(&self) {
    self.forget_shapes.store(true, Ordering::Release);
  }

  fn send(&self, message: Outgoing) {
    if let Outgoing::Txn(_) | Outgoing::ClientReads(_) = message {
      return; // JavaScript does not track transactions, and runs no reads of its own
    }
    let mut state = self.lock();
    if state.tsfn.is_null() {
      return;
    }
    state.queue.push(message);
    if state.queue.len() == 1 && !state.held {
      // SAFETY: `tsfn` is non-null under the lock, so neither released (`dispose`) nor finalized
      // (`finalize` nulls it under this lock before Node frees it). Any thread may call it;
      // nonblocking never waits, so holding the lock is fine, and the queue has no size limit, so
      // the call is never refused for a full queue.
      unsafe {
        sys::napi_call_threadsafe_function(
          state.tsfn,
          ptr::null_mut(),
          sys::ThreadsafeFunctionCallMode::nonblocking,
        )
      };
    }
  }
}

impl Outbox {
  /// The queue, as the dispatcher's arguments `(batch, resetShapes)`; `None` when empty.
  ///
  /// # Safety
  ///
  /// On the JavaScript thread of the live `env`, inside a handle scope: the handles returned
  /// belong to it.
  unsafe fn arguments(&self, env: sys::napi_env) -> Option<[sys::napi_value; 2]> {
    let batch = std::mem::take(&mut self.lock().queue);
    if batch.is_empty() {
      return None;
    }
    let mut known = self.known_shapes.lock().unwrap_or_else(|e| e.into_inner());
    let reset_shapes = known.len() > KNOWN_SHAPES_LIMIT || self.forget_shapes.swap(false, Ordering::AcqRel);
    if reset_shapes {
      known.clear();
    }
    // SAFETY: `convert`'s contract is this function's.
    let array = unsafe {
      let mut writer = Writer::new(env, batch.len()).ok()?;
      for message in &batch {
        writer.write(message, &mut |id| !known.insert(id)).ok()?;
      }
      writer.array()
    };
    let mut reset = ptr::null_mut();
    // SAFETY: as above; napi_get_boolean cannot fail with a live `env` and a local out-pointer.
    unsafe { sys::napi_get_boolean(env, reset_shapes, &mut reset) };
    Some([array, reset])
  }

  /// Calls the dispatcher with the queue from an event of the loop, as Node calls back for its
  /// own handles: `napi_make_callback` runs the microtasks and `process.nextTick` callbacks the
  /// dispatcher's callbacks queued (promises resolved by them settle now), and an exception it
  /// throws is reported as uncaught, as from the threadsafe function.
  ///
  /// # Safety
  ///
  /// On the JavaScript thread of the live `env`, with no JavaScript on the stack (an event of
  /// the loop); `dispatch_ref` is the outbox's live reference to the dispatcher.
  unsafe fn deliver_now(&self, env: sys::napi_env, dispatch_ref: sys::napi_ref) {
    let mut scope = ptr::null_mut();
    // SAFETY: this function's contract; every handle below belongs to the scope opened here
    // and closed at the end; `args` outlives the call. The dispatcher's own callbacks restore
    // the async context of the calls that made the requests (lib/callbacks.js), so the call
    // itself needs none (a null `async_context`).
    unsafe {
      if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
        return;
      }
      let mut dispatch = ptr::null_mut();
      let mut global = ptr::null_mut();
      sys::napi_get_reference_value(env, dispatch_ref, &mut dispatch);
      sys::napi_get_global(env, &mut global);
      if let (false, Some(args)) = (dispatch.is_null(), self.arguments(env)) {
        sys::napi_make_callback(
          env,
          ptr::null_mut(),
          global,
          dispatch,
          2,
          args.as_ptr(),
          ptr::null_mut(),
        );
        // Its status cannot tell an exception thrown from JavaScript that can no longer run
        // (a Worker being terminated); whether an exception is pending can.
        let mut thrown = false;
        sys::napi_is_exception_pending(env, &mut thrown);
        if thrown {
          let mut error = ptr::null_mut();
          sys::napi_get_and_clear_last_exception(env, &mut error);
          sys::napi_fatal_exception(env, error);
        }
      }
      sys::napi_close_handle_scope(env, scope);
    }
  }
}

/// Node deletes the threadsafe function (after `dispose`, or when its environment shuts down,
/// e.g. a worker thread is terminated): nothing may use it after this.
///
/// # Safety
///
/// Called by Node only, once, on the JavaScript thread, with the `context` that `Outbox::new` gave
/// the threadsafe function.
unsafe extern "C" fn finalize(env: sys::napi_env, _data: *mut c_void, context: *mut c_void) {
  // SAFETY: `context` holds the strong count `Outbox::new` leaked into it with `Arc::into_raw`;
  // Node finalizes once, so it is taken back once. Node may still call `call_js` after this, with a
  // null `env`, for calls left in its queue: `call_js` then does not touch `context`.
  let outbox = unsafe { Arc::from_raw(context as *const Outbox) };
  let mut state = outbox.lock();
  state.tsfn = ptr::null_mut();
  state.queue.clear();
  if !state.dispatch.is_null() {
    // SAFETY: the reference was made by `Outbox::new` in this environment, which is live while
    // Node finalizes; it is deleted once, here, and nulled.
    unsafe { sys::napi_delete_reference(env, state.dispatch) };
    state.dispatch = ptr::null_mut();
  }
  drop(state);
  drop(outbox);
}

/// # Safety
///
/// Called by Node only, on the JavaScript thread: either with a live `env`, a handle scope open and
/// `dispatch` the function given to `Outbox::new`, or, while the function is being torn down, with
/// a null `env` and a `context` that `finalize` may already have released.
unsafe extern "C" fn call_js(
  env: sys::napi_env,
  dispatch: sys::napi_value,
  context: *mut c_void,
  _data: *mut c_void,
) {
  if env.is_null() || context.is_null() {
    return; // the environment is shutting down
  }
  // SAFETY: `env` is non-null, so this is a call made before `finalize`, and `context` still holds
  // its strong count of the outbox.
  let outbox = unsafe { &*(context as *const Outbox) };
  // SAFETY: `arguments`' contract: the JavaScript thread of the live `env`, inside the scope
  // Node opened for this call.
  let Some(args) = (unsafe { outbox.arguments(env) }) else {
    return;
  };
  let mut global = ptr::null_mut();
  // SAFETY: as above. `dispatch` is the function handle Node passed in, and `args` outlives the
  // call. napi_get_global cannot fail with a live `env` and a local out-pointer.
  unsafe {
    sys::napi_get_global(env, &mut global);
    // An exception thrown by the dispatcher is left pending: Node reports it as uncaught,
    // as it does for node-sqlite3's callbacks.
    sys::napi_call_function(env, global, dispatch, 2, args.as_ptr(), ptr::null_mut());
  }
}
