//! The part of libdqlite's node API (`dqlite.h`, 1.11) the program uses, and a node that stops and
//! frees itself when dropped.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::IntoRawFd;
use std::time::Duration;

#[repr(C)]
struct RawNode {
  _opaque: [u8; 0],
}

extern "C" {
  fn dqlite_node_create(
    id: u64,
    address: *const c_char,
    data_dir: *const c_char,
    node: *mut *mut RawNode,
  ) -> c_int;
  fn dqlite_node_destroy(node: *mut RawNode);
  fn dqlite_node_set_bind_address(node: *mut RawNode, address: *const c_char) -> c_int;
  fn dqlite_node_set_network_latency_ms(node: *mut RawNode, milliseconds: c_uint) -> c_int;
  fn dqlite_node_set_connect_func(
    node: *mut RawNode,
    connect: extern "C" fn(arg: *mut c_void, address: *const c_char, fd: *mut c_int) -> c_int,
    arg: *mut c_void,
  ) -> c_int;
  fn dqlite_node_start(node: *mut RawNode) -> c_int;
  fn dqlite_node_stop(node: *mut RawNode) -> c_int;
  fn dqlite_node_errmsg(node: *mut RawNode) -> *const c_char;
  fn dqlite_generate_node_id(address: *const c_char) -> u64;
}

/// A dqlite node of this process: created, configured, then started.
pub struct Node {
  raw: *mut RawNode,
  started: bool,
}

fn c_string(what: &str, value: &str) -> Result<CString, String> {
  CString::new(value).map_err(|_| format!("{what} contains a NUL character: {value:?}"))
}

/// A new node id for a node at `address` (the bootstrap node uses 1).
pub fn generate_id(address: &str) -> Result<u64, String> {
  let address = c_string("the address", address)?;
  // SAFETY: `address` is a NUL-terminated string that outlives the call; libdqlite keeps no
  // reference to it.
  Ok(unsafe { dqlite_generate_node_id(address.as_ptr()) })
}

impl Node {
  /// Creates node `id`, known to the others at `address`, keeping its data in `dir`.
  pub fn create(id: u64, address: &str, dir: &str) -> Result<Node, String> {
    let (address, dir) = (
      c_string("the address", address)?,
      c_string("the data folder", dir)?,
    );
    let mut raw = std::ptr::null_mut();
    // SAFETY: both strings are NUL-terminated and outlive the call (libdqlite copies them); `raw`
    // is a valid place for the node pointer.
    let rc = unsafe { dqlite_node_create(id, address.as_ptr(), dir.as_ptr(), &mut raw) };
    let node = Node { raw, started: false };
    if rc != 0 {
      return Err(format!("cannot create the node: {}", node.errmsg(rc)));
    }
    Ok(node)
  }

  /// Why the last call failed, in libdqlite's words.
  fn errmsg(&self, rc: c_int) -> String {
    if self.raw.is_null() {
      return format!("error {rc}");
    }
    // SAFETY: `raw` is a live node; the message is a NUL-terminated string owned by it, copied at once.
    let message = unsafe { dqlite_node_errmsg(self.raw) };
    if message.is_null() {
      return format!("error {rc}");
    }
    // SAFETY: non-null and NUL-terminated, as above.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
    if text.is_empty() {
      format!("error {rc}")
    } else {
      text
    }
  }

  /// Where it listens for clients and the other nodes ("host:port").
  pub fn bind(&mut self, address: &str) -> Result<(), String> {
    let address = c_string("the listen address", address)?;
    // SAFETY: `raw` is a live node not started yet; the string outlives the call (copied).
    let rc = unsafe { dqlite_node_set_bind_address(self.raw, address.as_ptr()) };
    if rc != 0 {
      return Err(format!(
        "cannot listen on {}: {}",
        address.to_string_lossy(),
        self.errmsg(rc)
      ));
    }
    Ok(())
  }

  /// The network's round trip: Raft's election timeout becomes about 15 times this, its
  /// heartbeat 1.5 times.
  pub fn set_latency_ms(&mut self, ms: u32) -> Result<(), String> {
    // SAFETY: `raw` is a live node not started yet.
    let rc = unsafe { dqlite_node_set_network_latency_ms(self.raw, ms) };
    if rc != 0 {
      return Err(format!(
        "cannot set a network latency of {ms} ms: {}",
        self.errmsg(rc)
      ));
    }
    Ok(())
  }

  /// Makes the node reach its peers through `connect_without_delay`.
  pub fn connect_without_delay(&mut self) -> Result<(), String> {
    // SAFETY: `raw` is a live node not started yet; the function is `extern "C"`, never unwinds
    // and needs no argument.
    let rc = unsafe { dqlite_node_set_connect_func(self.raw, connect_without_delay, std::ptr::null_mut()) };
    if rc != 0 {
      return Err(format!("cannot set how to reach peers: {}", self.errmsg(rc)));
    }
    Ok(())
  }

  /// Starts its thread: it serves from now on.
  pub fn start(&mut self) -> Result<(), String> {
    // SAFETY: `raw` is a live node, configured and not started.
    let rc = unsafe { dqlite_node_start(self.raw) };
    if rc != 0 {
      return Err(format!("cannot start the node: {}", self.errmsg(rc)));
    }
    self.started = true;
    Ok(())
  }
}

impl Drop for Node {
  fn drop(&mut self) {
    if self.raw.is_null() {
      return;
    }
    // SAFETY: `raw` is a live node; a started node must be stopped before it is destroyed, and
    // neither is used again.
    unsafe {
      if self.started {
        dqlite_node_stop(self.raw);
      }
      dqlite_node_destroy(self.raw);
    }
  }
}

/// How long a node waits for a peer's TCP handshake before Raft tries again later.
const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects to the peer at `address` ("host:port") with `TCP_NODELAY`, and gives libdqlite the
/// descriptor. libdqlite's own connect leaves Nagle's algorithm on: a small Raft message (an
/// append, its acknowledgement) that follows another still unacknowledged waits for the peer's
/// delayed ACK, up to 40 ms, and every commit waits for such messages.
extern "C" fn connect_without_delay(_arg: *mut c_void, address: *const c_char, fd: *mut c_int) -> c_int {
  const FAILED: c_int = 1;
  if address.is_null() || fd.is_null() {
    return FAILED;
  }
  // SAFETY: libdqlite passes a NUL-terminated address that lives for the call.
  let address = unsafe { CStr::from_ptr(address) }.to_string_lossy().into_owned();
  // Nothing below panics in practice, but a panic must never unwind into C.
  let connected = std::panic::catch_unwind(|| -> Option<TcpStream> {
    let targets = address.to_socket_addrs().ok()?;
    let stream = targets
      .into_iter()
      .find_map(|target| TcpStream::connect_timeout(&target, PEER_CONNECT_TIMEOUT).ok())?;
    stream.set_nodelay(true).ok()?;
    Some(stream)
  });
  match connected {
    Ok(Some(stream)) => {
      // SAFETY: `fd` is non-null and points to libdqlite's place for the descriptor, which it
      // owns from now on.
      unsafe { *fd = stream.into_raw_fd() };
      0
    }
    _ => FAILED,
  }
}
