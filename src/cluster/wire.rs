//! Frames and messages on the cluster socket (docs/protocol.md).
//!
//! A frame is a `u32` little-endian body length followed by a bincode body. The length is
//! checked against the reader's limit before anything is reserved for it, and the buffer only
//! grows as bytes actually arrive. Decoding a body may allocate at most `DECODE_FACTOR` times its
//! size (a string or list announces its length before its bytes; the announcement is checked
//! against that budget before anything is allocated), so a peer can never make the other side
//! allocate much more than it sent. Before authentication the limit is tiny (`HANDSHAKE_LIMIT`).
//!
//! The conversation: the client sends `Hello`, the master answers `Challenge`, the client
//! proves itself with `Proof`, the master answers `Verdict`. Then the client sends `Up` frames
//! (many requests in flight, several sessions per connection) and the master sends `Down`
//! frames (replies in request order per session, events, and `Closing` when it hands over).

use std::ops::Range;

use bincode::config::{self, Configuration, LittleEndian, Varint};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::protocol::{Outgoing, Request, Response};

pub const MAGIC: [u8; 8] = *b"sq3clstr";
/// Bumped whenever a message changes shape; both sides must speak the same version.
pub const VERSION: u32 = 4;
/// Largest frame body before authentication.
pub const HANDSHAKE_LIMIT: usize = 1024;
/// Largest frame body after authentication (see `MESSAGE_LIMIT`).
pub const FRAME_LIMIT: usize = crate::protocol::MESSAGE_LIMIT;

/// Request id of the requests a client node sends on a member's behalf to re-create it on a new
/// master (replays, docs/failover.md); their answers are not delivered. A member never uses it.
pub const REPLAY: u32 = u32::MAX;
/// Request id of the marker a closing master sends through each session (`Request::Wait`); a
/// client request that uses it is refused.
pub const MARK: u32 = u32::MAX - 1;

/// Requests a connection may have unanswered; past this the master stops reading from it
/// (the client's writes then wait), so a client that never reads cannot grow the master.
pub const MAX_OUTSTANDING: usize = 8192;
/// Sessions (Databases) per client connection.
pub const MAX_SESSIONS: usize = 4096;
/// Bytes of answers a client may leave unread before the master runs nothing more for it.
pub const BACKLOG_LIMIT: usize = 4 << 20;
/// A writer coalesces frames up to this many bytes per write.
pub const WRITE_BATCH: usize = 1 << 20;
/// What a socket's read or write buffer starts with, and shrinks back to after a large message
/// (so that one big result does not pin its memory for the connection's lifetime).
pub const BUFFER_START: usize = 64 << 10;
/// A write buffer grown past this is given back (`BUFFER_START`) once written.
pub const BUFFER_KEEP: usize = 4 * WRITE_BATCH;
/// A read buffer grown past this is given back once it has been read out.
const READ_KEEP: usize = 1 << 20;

fn config<const LIMIT: usize>() -> Configuration<LittleEndian, Varint, config::Limit<LIMIT>> {
  config::standard().with_limit::<LIMIT>()
}

/// What decoding may claim per byte of body: bincode counts a list of n values as n times the
/// value's size (32 bytes for a `Value`) before reading them, and every value takes at least
/// one byte of body, so honest messages stay well inside this budget.
pub const DECODE_FACTOR: usize = 64;

#[cfg(target_pointer_width = "64")]
const HUGE: usize = FRAME_LIMIT * DECODE_FACTOR;
#[cfg(not(target_pointer_width = "64"))]
const HUGE: usize = usize::MAX;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
  pub magic: [u8; 8],
  pub version: u32,
  pub pid: u32,
  pub nonce: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
  pub magic: [u8; 8],
  pub version: u32,
  pub pid: u32,
  pub nonce: [u8; 32],
  /// The master's proof that it knows the secret (`None`: it has none).
  pub proof: Option<[u8; 32]>,
  /// Whether the database is encrypted: a client without a key must not take over.
  pub keyed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
  pub proof: Option<[u8; 32]>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
  Welcome,
  Refused(String),
  /// The master takes no more clients for now (it is short of file descriptors, say): try
  /// again later. The text says why.
  Full(String),
}

/// Client to master.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Up {
  /// Starts session `session` of this connection (one per Database of the client process).
  Attach {
    session: u32,
  },
  Request {
    session: u32,
    id: u32,
    request: Request,
  },
  /// The client consumed one `each()` chunk of the session.
  Resume {
    session: u32,
  },
  Interrupt {
    session: u32,
  },
  /// Ends the session: the master rolls back what it left open.
  Detach {
    session: u32,
  },
  /// Are you there? The master answers `Pong` at once, whatever its engine is doing (the
  /// client's heartbeat while it waits for answers).
  Ping,
}

/// Master to client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Down {
  Message {
    session: u32,
    message: Outgoing,
  },
  /// The master is closing gracefully: it answered every request it read, and will execute
  /// nothing more. Requests still unanswered were never run and may be sent to the next master.
  Closing,
  /// The answer to `Ping`.
  Pong,
}

impl Up {
  /// The request this frame carries, as `(session, id)`.
  pub fn request(&self) -> Option<(u32, u32)> {
    match self {
      Up::Request { session, id, .. } => Some((*session, *id)),
      _ => None,
    }
  }
}

impl Down {
  /// Whether this message ends a request (anything but stream chunks and events).
  pub fn finishes_request(&self) -> Option<(u32, u32)> {
    match self {
      Down::Message {
        session,
        message: Outgoing::Reply { id, response },
      } if !matches!(response, Response::Chunk(_)) => Some((*session, *id)),
      _ => None,
    }
  }
}

#[derive(Debug)]
pub enum WireError {
  /// A frame announced a body larger than the limit.
  TooLarge {
    size: usize,
    limit: usize,
  },
  /// A body that is not a valid message.
  Malformed(String),
  Io(std::io::Error),
}

impl std::fmt::Display for WireError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match self {
      WireError::TooLarge { size, limit } => {
        write!(f, "frame of {size} bytes exceeds the limit of {limit} bytes")
      }
      WireError::Malformed(why) => write!(f, "malformed message: {why}"),
      WireError::Io(e) => write!(f, "{e}"),
    }
  }
}

impl From<std::io::Error> for WireError {
  fn from(e: std::io::Error) -> Self {
    WireError::Io(e)
  }
}

/// Appends one frame holding `message` to `out`. Returns the body size.
pub fn encode<T: Serialize>(message: &T, out: &mut Vec<u8>) -> Result<usize, WireError> {
  let start = out.len();
  out.extend_from_slice(&[0; 4]);
  if let Err(e) = bincode::serde::encode_into_std_write(message, out, config::<FRAME_LIMIT>()) {
    out.truncate(start);
    return Err(WireError::Malformed(e.to_string()));
  }
  let size = out.len() - start - 4;
  if size > FRAME_LIMIT {
    out.truncate(start);
    return Err(WireError::TooLarge {
      size,
      limit: FRAME_LIMIT,
    });
  }
  out[start..start + 4].copy_from_slice(&(size as u32).to_le_bytes());
  Ok(size)
}

/// A request that cannot cross the socket, answered on this side instead.
#[derive(Debug)]
pub struct Refused {
  pub session: u32,
  pub id: u32,
  /// `SQLITE_TOOBIG`, with `explain`'s text.
  pub error: Error,
}

impl Refused {
  /// The answer that takes the refused message's place.
  pub fn reply(self) -> Down {
    Down::Message {
      session: self.session,
      message: Outgoing::Reply {
        id: self.id,
        response: Response::Error(self.error),
      },
    }
  }
}

/// Appends one frame holding `message`, either way across the socket. A message that cannot be
/// encoded (larger than a frame may be) is left out; when it is a request, or the answer that
/// ends one (`request`), the request is answered with `SQLITE_TOOBIG` instead, in `explain`'s
/// words: the caller delivers the returned refusal (the peer would otherwise wait forever).
pub fn encode_or_refuse<T: Serialize>(
  message: &T,
  request: Option<(u32, u32)>,
  out: &mut Vec<u8>,
  explain: impl FnOnce(&WireError) -> String,
) -> Option<Refused> {
  let e = encode(message, out).err()?;
  let (session, id) = request?;
  Some(Refused {
    session,
    id,
    error: Error::sqlite(rusqlite::ffi::SQLITE_TOOBIG, explain(&e)),
  })
}

/// Decodes one body with an allocation budget of about `DECODE_FACTOR` times its size (bincode's
/// limit is a constant, so the budget comes in steps); trailing bytes make it malformed.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
  const K: usize = 1 << 10;
  const M: usize = 1 << 20;
  let decoded = match body.len() {
    n if n <= K => bincode::serde::decode_from_slice::<T, _>(body, config::<{ K * DECODE_FACTOR }>()),
    n if n <= 64 * K => {
      bincode::serde::decode_from_slice::<T, _>(body, config::<{ 64 * K * DECODE_FACTOR }>())
    }
    n if n <= M => bincode::serde::decode_from_slice::<T, _>(body, config::<{ M * DECODE_FACTOR }>()),
    n if n <= 16 * M => {
      bincode::serde::decode_from_slice::<T, _>(body, config::<{ 16 * M * DECODE_FACTOR }>())
    }
    _ => bincode::serde::decode_from_slice::<T, _>(body, config::<HUGE>()),
  };
  match decoded {
    Ok((value, used)) if used == body.len() => Ok(value),
    Ok((_, used)) => Err(WireError::Malformed(format!(
      "{} bytes left over after the message",
      body.len() - used
    ))),
    Err(e) => Err(WireError::Malformed(e.to_string())),
  }
}

/// Bytes received and not yet consumed, cut into frames.
pub struct FrameBuffer {
  data: Vec<u8>,
  start: usize,
  limit: usize,
}

impl FrameBuffer {
  pub fn new(limit: usize) -> Self {
    FrameBuffer {
      data: Vec::new(),
      start: 0,
      limit,
    }
  }

  pub fn set_limit(&mut self, limit: usize) {
    self.limit = limit;
  }

  pub fn extend(&mut self, bytes: &[u8]) {
    self.compact();
    self.data.extend_from_slice(bytes);
  }

  /// The range (within `body()`) of the next complete frame's body, `None` when more bytes
  /// are needed, or an error when the announced size is over the limit.
  pub fn next_frame(&mut self) -> Result<Option<Range<usize>>, WireError> {
    let available = &self.data[self.start..];
    if available.len() < 4 {
      return Ok(None);
    }
    let size = u32::from_le_bytes(available[..4].try_into().expect("4 bytes")) as usize;
    if size > self.limit {
      return Err(WireError::TooLarge {
        size,
        limit: self.limit,
      });
    }
    if available.len() < 4 + size {
      return Ok(None);
    }
    let body = self.start + 4..self.start + 4 + size;
    self.start += 4 + size;
    Ok(Some(body))
  }

  pub fn bytes(&self, range: Range<usize>) -> &[u8] {
    &self.data[range]
  }

  /// Drops consumed bytes (keeps the buffer from growing with the connection's lifetime).
  fn compact(&mut self) {
    if self.start == 0 {
      return;
    }
    if self.start == self.data.len() {
      self.data.clear();
      if self.data.capacity() > READ_KEEP {
        self.data.shrink_to(BUFFER_START);
      }
    } else {
      self.data.drain(..self.start);
    }
    self.start = 0;
  }

  /// Reads into spare room of at least `want` bytes; returns how many were read (0 at EOF).
  /// Cancel-safe: the buffer only changes when the read completes.
  pub async fn fill<R: tokio::io::AsyncRead + Unpin>(
    &mut self,
    reader: &mut R,
    want: usize,
  ) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    self.compact();
    self.data.reserve(want);
    reader.read_buf(&mut self.data).await
  }
}

/// Reads frames from a byte stream.
pub struct FrameReader<R> {
  inner: R,
  buffer: FrameBuffer,
}

impl<R: tokio::io::AsyncRead + Unpin> FrameReader<R> {
  pub fn new(inner: R, limit: usize) -> Self {
    FrameReader {
      inner,
      buffer: FrameBuffer::new(limit),
    }
  }

  pub fn set_limit(&mut self, limit: usize) {
    self.buffer.set_limit(limit);
  }

  /// The next message; `Ok(None)` when the peer closed the connection between frames.
  pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, WireError> {
    loop {
      if let Some(body) = self.buffer.next_frame()? {
        return decode(self.buffer.bytes(body)).map(Some);
      }
      if self.buffer.fill(&mut self.inner, BUFFER_START).await? == 0 {
        return if self.buffer.data.len() > self.buffer.start {
          Err(WireError::Malformed(
            "the connection closed inside a frame".into(),
          ))
        } else {
          Ok(None)
        };
      }
    }
  }

  /// Every message already received (at least one, waiting for it if needed); `Ok(empty)` at
  /// a clean end of stream.
  pub async fn batch<T: DeserializeOwned>(&mut self, out: &mut Vec<T>) -> Result<(), WireError> {
    match self.next().await? {
      None => return Ok(()),
      Some(first) => out.push(first),
    }
    while let Some(body) = self.buffer.next_frame()? {
      out.push(decode(self.buffer.bytes(body))?);
    }
    Ok(())
  }
}

/// Writes frames, a burst at a time: a writer encodes what it has into `pending()` and writes
/// it out in one go (one system call for many small messages).
pub struct FrameWriter<W> {
  inner: W,
  pending: Vec<u8>,
}

impl<W: tokio::io::AsyncWrite + Unpin> FrameWriter<W> {
  pub fn new(inner: W) -> Self {
    FrameWriter {
      inner,
      pending: Vec::with_capacity(BUFFER_START),
    }
  }

  /// Frames encoded and not written yet.
  pub fn pending(&mut self) -> &mut Vec<u8> {
    &mut self.pending
  }

  /// Writes what is pending. The buffer is emptied either way, and given back when a large
  /// message grew it past `BUFFER_KEEP`.
  pub async fn write_out(&mut self) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let written = self.inner.write_all(&self.pending).await;
    self.pending.clear();
    if self.pending.capacity() > BUFFER_KEEP {
      self.pending = Vec::with_capacity(BUFFER_START);
    }
    written
  }

  /// Closes the writing side (the peer reads the end of the stream).
  pub async fn shutdown(&mut self) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    self.inner.shutdown().await
  }
}

/// A framed connection before it is split: frames read under a size limit (`HANDSHAKE_LIMIT`
/// until the peer is authenticated), frames written whole. Both halves of the handshake run on
/// it, over a socket or, in tests, over an in-memory pipe; the connection's reader and writer
/// tasks then take its halves.
pub struct Framed<R, W> {
  reader: FrameReader<R>,
  writer: FrameWriter<W>,
}

impl<R: tokio::io::AsyncRead + Unpin, W: tokio::io::AsyncWrite + Unpin> Framed<R, W> {
  pub fn new(read: R, write: W) -> Self {
    Framed {
      reader: FrameReader::new(read, HANDSHAKE_LIMIT),
      writer: FrameWriter::new(write),
    }
  }

  pub async fn send<T: Serialize>(&mut self, message: &T) -> Result<(), WireError> {
    encode(message, self.writer.pending())?;
    self.writer.write_out().await?;
    Ok(())
  }

  /// The next message; `Ok(None)` when the peer closed the connection between frames.
  pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, WireError> {
    self.reader.next().await
  }

  /// The peer is authenticated: frames may be as large as `FRAME_LIMIT` from now on, and the
  /// halves go to the connection's reader and writer tasks.
  pub fn into_parts(mut self) -> (FrameReader<R>, FrameWriter<W>) {
    self.reader.set_limit(FRAME_LIMIT);
    (self.reader, self.writer)
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::protocol::{Mode, Rows, Shape};
  use crate::value::{Params, Value};
  use std::sync::Arc;

  #[test]
  fn values_cross_unchanged() {
    let rows = Rows {
      shape: Arc::new(Shape {
        id: 7,
        columns: vec!["a".into(), "b\0c".into()],
      }),
      values: vec![
        Value::Real(f64::from_bits(0x7ff8_0000_0000_0001)),
        Value::Text("x\0y\u{1F600}".into()),
        Value::Blob(vec![0, 255, 1]),
        Value::Integer(i64::MIN),
      ],
    };
    let message = Down::Message {
      session: 3,
      message: Outgoing::Reply {
        id: 9,
        response: Response::Rows(rows.clone()),
      },
    };
    let mut out = Vec::new();
    encode(&message, &mut out).unwrap();
    let mut buffer = FrameBuffer::new(FRAME_LIMIT);
    buffer.extend(&out);
    let body = buffer.next_frame().unwrap().unwrap();
    let back: Down = decode(buffer.bytes(body)).unwrap();
    match back {
      Down::Message {
        message: Outgoing::Reply {
          response: Response::Rows(r),
          ..
        },
        ..
      } => {
        assert_eq!(r.shape.columns, rows.shape.columns);
        match (&r.values[0], &rows.values[0]) {
          (Value::Real(a), Value::Real(b)) => assert_eq!(a.to_bits(), b.to_bits()),
          _ => panic!("not a real"),
        }
        assert_eq!(r.values[1..], rows.values[1..]);
      }
      other => panic!("unexpected {other:?}"),
    }
  }

  #[test]
  fn oversized_frames_are_refused_before_reading_them() {
    let mut buffer = FrameBuffer::new(HANDSHAKE_LIMIT);
    buffer.extend(&u32::MAX.to_le_bytes());
    assert!(matches!(buffer.next_frame(), Err(WireError::TooLarge { .. })));
  }

  #[test]
  fn a_short_body_cannot_announce_a_huge_string() {
    // Verdict::Refused with a string length of 0x0fffff00 in a 6-byte body (found by fuzzing).
    let body = [0x01, 0xfc, 0x00, 0xff, 0xff, 0x0f];
    assert!(matches!(decode::<Verdict>(&body), Err(WireError::Malformed(_))));
  }

  #[test]
  fn garbage_is_malformed_not_a_panic() {
    for body in [
      &b""[..],
      b"\xff\xff\xff\xff\xff",
      b"\x01\x02",
      b"\x00\xfd\xff\xff\xff\xff\xff\xff\xff\x7f",
    ] {
      assert!(decode::<Up>(body).is_err());
    }
    let request = Up::Request {
      session: 1,
      id: 2,
      request: Request::Query {
        sql: "SELECT 1".into(),
        params: Params::None,
        mode: Mode::All,
      },
    };
    let mut out = Vec::new();
    encode(&request, &mut out).unwrap();
    let mut truncated = out[4..].to_vec();
    truncated.pop();
    assert!(decode::<Up>(&truncated).is_err());
    let mut extra = out[4..].to_vec();
    extra.push(0);
    assert!(decode::<Up>(&extra).is_err());
  }
}
