//! The part of libdqlite's node API (`dqlite.h`, 1.11) the program uses, and a node that stops and
//! frees itself when dropped.

use std::ffi::{c_char, c_int, c_uint, CStr, CString};

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
