//! A socket watched by the JavaScript thread's own event loop (libuv's `uv_poll_t`).
//!
//! A backend thread that waits for a socket and then wakes the JavaScript thread costs two
//! thread switches per answer; on a small machine they cost more than the query
//! (docs/dqlite.md#the-event-loop-path). A `Watch` lets the JavaScript thread itself hear that a
//! socket has something to read, between its other events, as Node's own sockets do.
//!
//! libuv's functions are looked up in the running process (Node exports them for addons). A
//! process without them (a Rust test binary, a runtime that is not Node) has no `EventLoop`,
//! and its callers keep to their threads.

use std::ffi::{c_int, c_void, CStr};
use std::os::fd::RawFd;
use std::ptr;

use napi::sys;
use once_cell::sync::OnceCell;

/// `UV_POLL` in `uv_handle_type`, and `UV_READABLE` in `uv_poll_event` (uv.h).
const UV_POLL: c_int = 8;
const UV_READABLE: c_int = 1;

type PollCallback = unsafe extern "C" fn(handle: *mut c_void, status: c_int, events: c_int);
type CloseCallback = unsafe extern "C" fn(handle: *mut c_void);

type HandleSize = unsafe extern "C" fn(kind: c_int) -> usize;
type PollInit = unsafe extern "C" fn(event_loop: *mut c_void, handle: *mut c_void, fd: c_int) -> c_int;
type PollStart = unsafe extern "C" fn(handle: *mut c_void, events: c_int, callback: PollCallback) -> c_int;
type HandleFn = unsafe extern "C" fn(handle: *mut c_void) -> c_int;
type Close = unsafe extern "C" fn(handle: *mut c_void, callback: CloseCallback);
type Unref = unsafe extern "C" fn(handle: *mut c_void);

/// The libuv functions a `Watch` uses, as found in the process.
struct Uv {
  handle_size: HandleSize,
  poll_init: PollInit,
  poll_start: PollStart,
  poll_stop: HandleFn,
  close: Close,
  unref: Unref,
}

impl Uv {
  fn find() -> Option<&'static Uv> {
    static UV: OnceCell<Option<Uv>> = OnceCell::new();
    UV.get_or_init(|| {
      fn symbol(name: &CStr) -> Option<*mut c_void> {
        // SAFETY: `name` is a NUL-terminated string; RTLD_DEFAULT searches the symbols already
        // loaded in the process, and a missing one is a null pointer, checked here.
        let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
        (!found.is_null()).then_some(found)
      }
      // SAFETY (each transmute): the symbol is libuv's function of that name, whose C signature
      // (uv.h) is the function pointer type it becomes; the handle pointers are `uv_poll_t *`
      // and `uv_handle_t *`, which a `uv_poll_t` is.
      unsafe {
        Some(Uv {
          handle_size: std::mem::transmute::<*mut c_void, HandleSize>(symbol(c"uv_handle_size")?),
          poll_init: std::mem::transmute::<*mut c_void, PollInit>(symbol(c"uv_poll_init")?),
          poll_start: std::mem::transmute::<*mut c_void, PollStart>(symbol(c"uv_poll_start")?),
          poll_stop: std::mem::transmute::<*mut c_void, HandleFn>(symbol(c"uv_poll_stop")?),
          close: std::mem::transmute::<*mut c_void, Close>(symbol(c"uv_close")?),
          unref: std::mem::transmute::<*mut c_void, Unref>(symbol(c"uv_unref")?),
        })
      }
    })
    .as_ref()
  }
}

/// The event loop of one JavaScript thread.
#[derive(Clone, Copy)]
pub struct EventLoop {
  raw: *mut c_void,
  uv: &'static Uv,
}

// SAFETY: the pointer is only handed back to libuv by `Watch`, whose functions run on the
// loop's own thread (their contract); carrying or sharing it across threads does nothing with it.
unsafe impl Send for EventLoop {}
unsafe impl Sync for EventLoop {}

impl EventLoop {
  /// The loop of `env`'s thread; `None` where libuv cannot be reached.
  ///
  /// # Safety
  ///
  /// Called on the JavaScript thread of `env`, while `env` is live.
  pub unsafe fn of(env: sys::napi_env) -> Option<EventLoop> {
    let uv = Uv::find()?;
    let mut raw = ptr::null_mut();
    // SAFETY: `env` is live on this thread (the contract); `raw` is a local.
    let status = unsafe { sys::napi_get_uv_event_loop(env, &mut raw) };
    (status == sys::Status::napi_ok && !raw.is_null()).then_some(EventLoop { raw: raw.cast(), uv })
  }
}

/// A socket the loop watches for something to read. `on_readable(context)` is called on the
/// loop's thread while the watch is started; the watch owns a duplicate of the socket's
/// descriptor, so the socket's owner may close its own at any time. The socket stays in
/// blocking mode.
pub struct Watch {
  handle: *mut c_void,
  uv: &'static Uv,
  fd: RawFd,
  started: bool,
}

// SAFETY: as `EventLoop`: the handle is used only on the loop's thread (the contract of every
// method), and moving the owner between threads does not touch it.
unsafe impl Send for Watch {}

/// What the handle's memory holds after libuv's own fields: the callback's context.
struct Context {
  on_readable: Box<dyn FnMut()>,
  fd: RawFd,
}

impl Watch {
  /// Watches a duplicate of `fd` on `event_loop`; the watch does not keep the loop alive.
  ///
  /// # Safety
  ///
  /// Called on `event_loop`'s thread; `fd` is an open socket.
  pub unsafe fn new(event_loop: EventLoop, fd: RawFd, on_readable: Box<dyn FnMut()>) -> Option<Watch> {
    let uv = event_loop.uv;
    // SAFETY: `fd` is open (the contract); a failure is -1, checked.
    let fd = unsafe { libc::dup(fd) };
    if fd < 0 {
      return None;
    }
    // SAFETY: `handle_size` only reads its argument. The handle is allocated with the size libuv
    // gives for a poll handle, zeroed, and aligned for any of its fields (malloc's alignment);
    // `poll_init` runs on the loop's thread (the contract) with that open descriptor.
    unsafe {
      let size = (uv.handle_size)(UV_POLL);
      let handle = libc::calloc(1, size);
      if handle.is_null() {
        libc::close(fd);
        return None;
      }
      if (uv.poll_init)(event_loop.raw, handle, fd) != 0 {
        libc::free(handle);
        libc::close(fd);
        return None;
      }
      // libuv made the descriptor non-blocking, and with it the socket's owner's (a duplicate
      // shares the flag): the owner's reads wait, with their timeout, so the flag goes. The
      // watch reads nothing itself; its caller reads with MSG_DONTWAIT.
      let flags = libc::fcntl(fd, libc::F_GETFL);
      if flags >= 0 {
        libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
      }
      (uv.unref)(handle);
      // `data` is the first field of every libuv handle.
      let context = Box::into_raw(Box::new(Context { on_readable, fd }));
      *handle.cast::<*mut Context>() = context;
      Some(Watch {
        handle,
        uv,
        fd,
        started: false,
      })
    }
  }

  /// The watched duplicate of the socket (to `shutdown` it from another thread: the socket
  /// then reads as closed, and the watch says so).
  pub fn fd(&self) -> RawFd {
    self.fd
  }

  /// Whether the watch is started.
  pub fn is_started(&self) -> bool {
    self.started
  }

  /// Starts watching (again); idempotent.
  ///
  /// # Safety
  ///
  /// Called on the loop's thread.
  pub unsafe fn start(&mut self) -> bool {
    if !self.started {
      // SAFETY: the handle is initialized and not closed (it is closed only by `drop`).
      self.started = unsafe { (self.uv.poll_start)(self.handle, UV_READABLE, on_poll) } == 0;
    }
    self.started
  }

  /// Stops watching: a socket that stays readable (closed by its peer) no longer calls.
  ///
  /// # Safety
  ///
  /// Called on the loop's thread.
  pub unsafe fn stop(&mut self) {
    if self.started {
      // SAFETY: as `start`.
      unsafe { (self.uv.poll_stop)(self.handle) };
      self.started = false;
    }
  }
}

impl Drop for Watch {
  /// Closes the handle; libuv frees it, its context and its descriptor once closed. Must run on
  /// the loop's thread, as every owner of a `Watch` does (it is dropped where it was made).
  fn drop(&mut self) {
    // SAFETY: the handle is initialized and this is its only close; `on_close` frees what
    // `new` allocated, after libuv is done with the handle.
    unsafe { (self.uv.close)(self.handle, on_close) };
  }
}

unsafe extern "C" fn on_poll(handle: *mut c_void, _status: c_int, _events: c_int) {
  // SAFETY: `data` was set to a live `Context` by `new` and is freed only by `on_close`, after
  // which libuv makes no more calls. A fault of the callback must not unwind into C: it is
  // caught, and the callback's own caller keeps its state consistent (it answers what it can).
  unsafe {
    let context = &mut **handle.cast::<*mut Context>();
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (context.on_readable)()));
  }
}

unsafe extern "C" fn on_close(handle: *mut c_void) {
  // SAFETY: libuv is done with the handle; the context and the memory were made by `new`.
  unsafe {
    let context = Box::from_raw(*handle.cast::<*mut Context>());
    libc::close(context.fd);
    libc::free(handle);
  }
}
