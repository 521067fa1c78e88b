//! Requests to a node over dqlite's wire protocol, with the addon's codec
//! (`src/dqlite/wire.rs`): what joining a cluster and handing over leadership need. One
//! connection per request, each bounded in time.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::wire::{self, Header, Request, Response, Server, PROTOCOL_VERSION};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `request` to the node at `address` and reads its answer. A FAILURE answer is an error
/// too, with its code and message.
pub fn call(address: &str, request: Request<'_>) -> Result<Response, String> {
  let target = address
    .to_socket_addrs()
    .map_err(|e| format!("{address}: {e}"))?
    .next()
    .ok_or_else(|| format!("{address}: no such address"))?;
  let mut stream =
    TcpStream::connect_timeout(&target, CONNECT_TIMEOUT).map_err(|e| format!("{address}: {e}"))?;
  let io = |e: std::io::Error| format!("{address}: {e}");
  stream.set_nodelay(true).map_err(io)?;
  stream.set_read_timeout(Some(REQUEST_TIMEOUT)).map_err(io)?;
  stream.set_write_timeout(Some(REQUEST_TIMEOUT)).map_err(io)?;
  let mut out = PROTOCOL_VERSION.to_le_bytes().to_vec();
  wire::encode(&request, &mut out).map_err(|e| e.to_string())?;
  stream.write_all(&out).map_err(io)?;
  let mut word = [0u8; 8];
  stream.read_exact(&mut word).map_err(io)?;
  let header = Header::parse(word).map_err(|e| format!("{address}: {e}"))?;
  let mut body = vec![0u8; header.len];
  stream.read_exact(&mut body).map_err(io)?;
  match wire::decode(&header, &body).map_err(|e| format!("{address}: {e}"))? {
    Response::Failure { code, message } => Err(format!("{address}: {message} (code {code})")),
    response => Ok(response),
  }
}

/// The leader as `address` knows it: `(id, address)`, or `None` when it knows none.
pub fn leader(address: &str) -> Result<Option<(u64, String)>, String> {
  match call(address, Request::Leader)? {
    Response::Server { address, .. } if address.is_empty() => Ok(None),
    Response::Server { id, address } => Ok(Some((id, address))),
    other => Err(format!("{address}: unexpected answer to LEADER: {other:?}")),
  }
}

/// The members, with their roles, as the leader at `address` knows them.
pub fn members(address: &str) -> Result<Vec<Server>, String> {
  match call(address, Request::Cluster)? {
    Response::Servers(servers) => Ok(servers),
    other => Err(format!("{address}: unexpected answer to CLUSTER: {other:?}")),
  }
}
