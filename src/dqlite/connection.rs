//! One connection to the leader of a dqlite cluster, for one Database
//! (docs/dqlite.md#connections).
//!
//! A Database's transactions live on its connection, so each Database has its own, and sends
//! one request at a time on it: dqlite reads the next request only after it has written the whole
//! answer to the last, and newer servers treat a request sent meanwhile as a fatal error.
//!
//! - **Finding the leader.** Each seed is asked LEADER; a seed that names another node is not
//!   believed until that node, asked in turn, names itself (a node that lost leadership may not
//!   know yet). A seed that knows no leader (only voters know) is skipped. The whole list is tried
//!   again with backoff until the deadline.
//! - **Time limits.** Connecting takes at most `CONNECT_TIMEOUT`; each request's answer at most
//!   the connection's timeout. A node cut off by a partition keeps its sockets open, so only a
//!   timeout tells the client it is gone.
//! - **Delayed ACKs.** libdqlite never sets `TCP_NODELAY` on its sockets, so the last small
//!   segment of a result of a few parts waits in the server for the client's ACK, which Linux
//!   delays by about 40 ms: `all()` of 1000 rows took 44 ms instead of 0.4 ms. The client sets
//!   `TCP_NODELAY` on its side and re-arms `TCP_QUICKACK` (which the kernel clears by itself)
//!   whenever more is on its way (a message read in part, a result with parts to come), so
//!   those segments are acknowledged at once. Not after an answer read whole: nothing waits for
//!   that ACK, the next request carries it, and sending it alone cost more CPU than the query.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::wire::{self, DecodeError, EncodeError, Header, Request, Response, RowsPart, Server};

/// The longest a connection attempt to one node may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest a node may take to answer while the leader is searched for (LEADER, CLIENT,
/// OPEN: all answered by the node itself, at once).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The id this client gives itself in CLIENT (the server only logs it).
const CLIENT_ID: u64 = 0;

/// Why a connection cannot go on. Every one of them ends the connection: what was in flight has
/// an unknown outcome.
#[derive(Debug)]
pub enum Failure {
  /// The socket failed, closed, or an answer did not come in time.
  Io(std::io::Error),
  /// The node sent something that is not this protocol.
  Protocol(DecodeError),
  /// The node answered with a message that does not fit the request.
  Unexpected(&'static str),
}

impl std::fmt::Display for Failure {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match self {
      Failure::Io(e) => write!(f, "{e}"),
      Failure::Protocol(e) => write!(f, "the node does not speak dqlite's protocol: {e}"),
      Failure::Unexpected(what) => write!(f, "the node answered {what} with an unexpected message"),
    }
  }
}

impl From<std::io::Error> for Failure {
  fn from(e: std::io::Error) -> Failure {
    Failure::Io(e)
  }
}

/// Why a request was not sent (nothing reached the node: the connection is still good).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub EncodeError);

/// A connection to the leader, with database `name` open on it.
pub struct Connection {
  stream: TcpStream,
  /// The leader's address, as the seeds named it.
  pub address: String,
  pub db: u32,
  out: Vec<u8>,
  inbox: Inbox,
}

/// What was received and not decoded yet. One `recv` usually brings a whole answer (header and
/// body), and a result's parts often come several to a read: one system call where reading the
/// header and the body apart took two.
#[derive(Default)]
struct Inbox {
  bytes: Vec<u8>,
  /// Where the undecoded bytes start.
  start: usize,
}

/// The least a read asks the kernel for.
const READ_SIZE: usize = 64 * 1024;

/// Whether `send` sent the request.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
  Sent,
  TooLarge,
}

/// What became of a request.
#[derive(Debug)]
pub enum Outcome<T> {
  Answered(T),
  /// Not sent: it cannot be encoded (text with NUL, too many parameters).
  Refused(Refused),
  /// The connection failed; whether the request ran is unknown.
  Lost(Failure),
}

impl Connection {
  /// Finds the leader among `seeds` (and the nodes they name) before `deadline`, registers, and
  /// opens database `name` (created if missing). `timeout` bounds every request's answer.
  pub fn open(
    seeds: &[String],
    name: &str,
    timeout: Duration,
    deadline: Instant,
  ) -> Result<Connection, String> {
    let mut delay = Duration::from_millis(20);
    let mut last = String::from("no seed answered");
    loop {
      for seed in seeds {
        match Self::try_leader(seed, name, timeout) {
          Ok(connection) => return Ok(connection),
          Err(why) => last = why,
        }
      }
      let now = Instant::now();
      if now >= deadline {
        return Err(format!("no leader found among {}: {last}", seeds.join(", ")));
      }
      std::thread::sleep(delay.min(deadline - now));
      delay = (delay * 2).min(Duration::from_secs(1));
    }
  }

  /// Asks `seed` who leads; connects to the leader it names when it names itself or the leader
  /// confirms.
  fn try_leader(seed: &str, name: &str, timeout: Duration) -> Result<Connection, String> {
    // A node that accepts connections and does not answer (frozen, or cut off) holds the search
    // up for at most this long; the requests of the connection found get `timeout`.
    let probe = timeout.min(PROBE_TIMEOUT);
    let mut asked = Self::dial(seed, probe).map_err(|e| format!("{seed}: {e}"))?;
    let leader = asked.leader().map_err(|e| format!("{seed}: {e}"))?;
    let Some(leader) = leader else {
      return Err(format!("{seed} knows no leader"));
    };
    let mut connection = if leader == seed {
      asked
    } else {
      let mut other = Self::dial(&leader, probe).map_err(|e| format!("{leader}: {e}"))?;
      if other.leader().map_err(|e| format!("{leader}: {e}"))?.as_deref() != Some(leader.as_str()) {
        return Err(format!("{seed} names {leader} as leader, which does not agree"));
      }
      other
    };
    connection.register(name).map_err(|e| format!("{leader}: {e}"))?;
    connection
      .set_timeout(timeout)
      .map_err(|e| format!("{leader}: {e}"))?;
    Ok(connection)
  }

  /// Bounds each later answer (and write) by `timeout`.
  fn set_timeout(&self, timeout: Duration) -> std::io::Result<()> {
    self.stream.set_read_timeout(Some(timeout))?;
    self.stream.set_write_timeout(Some(timeout))
  }

  /// A connection to `address` that has sent the protocol version.
  fn dial(address: &str, timeout: Duration) -> Result<Connection, Failure> {
    let target = address
      .to_socket_addrs()?
      .next()
      .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such address"))?;
    let mut stream = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(&wire::PROTOCOL_VERSION.to_le_bytes())?;
    Ok(Connection {
      stream,
      address: address.to_owned(),
      db: 0,
      out: Vec::new(),
      inbox: Inbox::default(),
    })
  }

  /// The leader's address as this node knows it.
  fn leader(&mut self) -> Result<Option<String>, Failure> {
    match self.call(Request::Leader) {
      Outcome::Answered(Response::Server { address, .. }) if address.is_empty() => Ok(None),
      Outcome::Answered(Response::Server { address, .. }) => Ok(Some(address)),
      Outcome::Answered(_) => Err(Failure::Unexpected("LEADER")),
      Outcome::Refused(_) => unreachable!("LEADER always encodes"),
      Outcome::Lost(e) => Err(e),
    }
  }

  /// CLIENT, then OPEN of `name`.
  fn register(&mut self, name: &str) -> Result<(), String> {
    match self.call(Request::Client { id: CLIENT_ID }) {
      Outcome::Answered(Response::Welcome { .. }) => {}
      other => return Err(format!("CLIENT: {}", describe(other))),
    }
    match self.call(Request::Open { name }) {
      Outcome::Answered(Response::Db { id }) => {
        self.db = id;
        Ok(())
      }
      other => Err(format!("OPEN {name}: {}", describe(other))),
    }
  }

  /// The members of the cluster, as the leader knows them.
  pub fn members(&mut self) -> Outcome<Vec<Server>> {
    match self.call(Request::Cluster) {
      Outcome::Answered(Response::Servers(servers)) => Outcome::Answered(servers),
      Outcome::Answered(_) => Outcome::Lost(Failure::Unexpected("CLUSTER")),
      Outcome::Refused(r) => Outcome::Refused(r),
      Outcome::Lost(e) => Outcome::Lost(e),
    }
  }

  /// Whether the node has closed its end (or sent what nobody asked for): then a request is not
  /// sent on this connection at all, and is not in doubt. A node killed with its sockets open
  /// at the kernel is seen here at once.
  pub fn is_closed(&self) -> bool {
    if self.inbox.bytes.len() > self.inbox.start {
      return true;
    }
    let mut byte = 0u8;
    // SAFETY: the descriptor is this connection's open socket, and `byte` is a one-byte buffer
    // that lives for the call. MSG_PEEK leaves the byte unread; MSG_DONTWAIT answers at once
    // without changing the socket's blocking mode (one system call per request).
    let n = unsafe {
      libc::recv(
        self.stream.as_raw_fd(),
        (&mut byte as *mut u8).cast(),
        1,
        libc::MSG_PEEK | libc::MSG_DONTWAIT,
      )
    };
    let nothing_waiting = n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock;
    !nothing_waiting
  }

  /// Sends `request` and reads its answer (a FAILURE is an answer). For a query, this is its
  /// first part; `next_part` reads the others.
  pub fn call(&mut self, request: Request<'_>) -> Outcome<Response> {
    if let Err(outcome) = self.send(request, usize::MAX) {
      return outcome;
    }
    match self.read() {
      Ok(response) => Outcome::Answered(response),
      Err(e) => Outcome::Lost(e),
    }
  }

  /// Sends `request` without waiting for its answer (`try_read` reads it). A request that
  /// encodes to more than `limit` bytes is not sent (`Sent::TooLarge`): writing it could wait
  /// for the node to read, and the caller may not wait.
  pub fn send(&mut self, request: Request<'_>, limit: usize) -> Result<Sent, Outcome<Response>> {
    self.out.clear();
    if let Err(e) = wire::encode(&request, &mut self.out) {
      return Err(Outcome::Refused(Refused(e)));
    }
    if self.out.len() > limit {
      return Ok(Sent::TooLarge);
    }
    match self.stream.write_all(&self.out) {
      Ok(()) => Ok(Sent::Sent),
      Err(e) => Err(Outcome::Lost(e.into())),
    }
  }

  /// The next message if it has arrived whole, without waiting for it (`None` when more must
  /// come first).
  pub fn try_read(&mut self) -> Result<Option<Response>, Failure> {
    self.message(false)
  }

  /// The socket, for a watch on it (`js::event_loop`).
  pub fn fd(&self) -> std::os::fd::RawFd {
    self.stream.as_raw_fd()
  }

  /// The next part of a result whose last part said more follow (`RowsPart::more`). A FAILURE
  /// may come instead, after some parts.
  pub fn next_part(&mut self) -> Result<Result<RowsPart, (u64, String)>, Failure> {
    match self.read()? {
      Response::Rows(part) => Ok(Ok(part)),
      Response::Failure { code, message } => Ok(Err((code, message))),
      _ => Err(Failure::Unexpected("a query")),
    }
  }

  /// One message from the node.
  fn read(&mut self) -> Result<Response, Failure> {
    Ok(self.message(true)?.expect("a read that waits has a message"))
  }

  /// One message from the node; without `wait`, `None` when it has not arrived whole yet.
  fn message(&mut self, wait: bool) -> Result<Option<Response>, Failure> {
    if !self.fill(wire::WORD, wait)? {
      return Ok(None);
    }
    let at = self.inbox.start;
    let word: [u8; wire::WORD] = self.inbox.bytes[at..at + wire::WORD].try_into().expect("filled");
    let header = Header::parse(word).map_err(Failure::Protocol)?;
    if !self.fill(wire::WORD + header.len, wait)? {
      return Ok(None);
    }
    // Filling may have moved the message to the front of the buffer.
    let body_at = self.inbox.start + wire::WORD;
    let body = &self.inbox.bytes[body_at..body_at + header.len];
    let response = wire::decode(&header, body).map_err(Failure::Protocol)?;
    self.inbox.start += wire::WORD + header.len;
    if matches!(&response, Response::Rows(part) if part.more) {
      // More parts are on their way: acknowledge at once.
      quick_ack(&self.stream);
    }
    Ok(Some(response))
  }

  /// Receives until `len` undecoded bytes are at hand; without `wait`, only what has arrived
  /// (false when that is not enough).
  fn fill(&mut self, len: usize, wait: bool) -> Result<bool, Failure> {
    let inbox = &mut self.inbox;
    if inbox.bytes.len() - inbox.start >= len {
      return Ok(true);
    }
    // Move what is left to the front, so the buffer grows only for a message larger than it.
    inbox.bytes.drain(..inbox.start);
    inbox.start = 0;
    let flags = if wait { 0 } else { libc::MSG_DONTWAIT };
    while inbox.bytes.len() < len {
      let have = inbox.bytes.len();
      inbox.bytes.reserve((len - have).max(READ_SIZE));
      let free = inbox.bytes.spare_capacity_mut();
      // SAFETY: the descriptor is this connection's open socket; `free` is writable for its
      // length, which is passed. A blocking read is bounded by the socket's read timeout.
      let n = unsafe {
        libc::recv(
          self.stream.as_raw_fd(),
          free.as_mut_ptr().cast(),
          free.len(),
          flags,
        )
      };
      let error = (n < 0).then(std::io::Error::last_os_error);
      if n > 0 {
        // SAFETY: the kernel wrote `n` bytes, no more than the spare capacity, right after the
        // `have` bytes already there.
        unsafe { inbox.bytes.set_len(have + n as usize) };
      }
      match error {
        Some(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
        Some(e) if !wait && e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
        Some(e) => return Err(Failure::Io(e)),
        None if n == 0 => return Err(Failure::Io(std::io::ErrorKind::UnexpectedEof.into())),
        // More of this message is on its way: acknowledge what came at once.
        None if inbox.bytes.len() < len => quick_ack(&self.stream),
        None => {}
      }
    }
    Ok(true)
  }
}

impl Drop for Connection {
  /// Closes the connection itself, not only this descriptor: a watch on the socket holds a
  /// duplicate of it (`js::event_loop`), and the node must see the connection end (it rolls
  /// back a transaction left open on it).
  fn drop(&mut self) {
    let _ = self.stream.shutdown(std::net::Shutdown::Both);
  }
}

/// Re-arms `TCP_QUICKACK`, which the kernel turns off again by itself (see the module comment).
fn quick_ack(stream: &TcpStream) {
  let on: libc::c_int = 1;
  // SAFETY: the descriptor is this connection's open socket; the option value is a c_int that
  // lives for the call, and its size is passed. A failure only leaves ACKs delayed.
  unsafe {
    libc::setsockopt(
      stream.as_raw_fd(),
      libc::IPPROTO_TCP,
      libc::TCP_QUICKACK,
      (&on as *const libc::c_int).cast(),
      std::mem::size_of::<libc::c_int>() as libc::socklen_t,
    );
  }
}

fn describe(outcome: Outcome<Response>) -> String {
  match outcome {
    Outcome::Answered(Response::Failure { code, message }) => format!("{message} (code {code})"),
    Outcome::Answered(other) => format!("unexpected answer {other:?}"),
    Outcome::Refused(Refused(e)) => e.to_string(),
    Outcome::Lost(e) => e.to_string(),
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::io::Read;
  use std::net::TcpListener;

  /// A message as a node writes it: the header, then `body` (a multiple of 8 bytes).
  fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() / 8) as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(body);
    out
  }

  fn welcome(heartbeat: u64) -> Vec<u8> {
    message(2, &heartbeat.to_le_bytes())
  }

  fn failure(code: u64, text: &str) -> Vec<u8> {
    let mut body = code.to_le_bytes().to_vec();
    body.extend_from_slice(text.as_bytes());
    body.push(0);
    body.resize(body.len().next_multiple_of(8), 0);
    message(0, &body)
  }

  #[test]
  fn messages_are_read_whole_however_the_bytes_arrive() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let long = "x".repeat(3 * READ_SIZE);
    let (first, second, third) = (welcome(7), failure(1, &long), welcome(9));
    let node = {
      let (first, second, third) = (first.clone(), second.clone(), third.clone());
      std::thread::spawn(move || {
        let (mut peer, _) = listener.accept().unwrap();
        let mut version = [0u8; 8];
        peer.read_exact(&mut version).unwrap();
        // The first message with the second's header and the first bytes of its body; then
        // the rest of that body, larger than one read, in pieces; then the last message whole.
        let mut both = first;
        both.extend_from_slice(&second[..12]);
        let pause = || std::thread::sleep(Duration::from_millis(30));
        peer.write_all(&both).unwrap();
        pause();
        for piece in second[12..].chunks(READ_SIZE / 3) {
          peer.write_all(piece).unwrap();
        }
        pause();
        peer.write_all(&third).unwrap();
        pause();
      })
    };
    let mut conn = Connection::dial(&address, Duration::from_secs(5)).unwrap();
    assert!(matches!(
      conn.read().unwrap(),
      Response::Welcome {
        heartbeat_timeout_ms: 7
      }
    ));
    match conn.read().unwrap() {
      Response::Failure { code: 1, message } => assert_eq!(message, long),
      other => panic!("expected the long failure, got {other:?}"),
    }
    assert!(!conn.is_closed(), "nothing is left undecoded between answers");
    assert!(matches!(
      conn.read().unwrap(),
      Response::Welcome {
        heartbeat_timeout_ms: 9
      }
    ));
    node.join().unwrap();
  }
}
