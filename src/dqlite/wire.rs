//! dqlite's wire protocol, version 1: the bytes of its requests and answers
//! (docs/dqlite.md#the-wire-protocol).
//!
//! Everything is little-endian and counted in 8-byte words. A message is a one-word header (the
//! body's length in words, a type, a schema revision, two unused bytes) and a body of fields:
//! integers take a word (two `u32`s share one), text is UTF-8 ended by a NUL and padded with
//! zeros to the next word (so text cannot hold a NUL), a blob is its length and its bytes,
//! padded. Parameters and rows carry a type code per value.
//!
//! Encoding refuses what the server would misread: text with a NUL (it would be cut there)
//! and more than 255 parameters (the count is one byte on the servers this package supports).
//! Decoding trusts nothing it reads: every length is checked against what is left of the body,
//! so no answer, however malformed, can make it read past the body, allocate more than the body
//! could describe, or loop without consuming bytes (`fuzz/fuzz_targets/decode_dqlite.rs`).

use crate::value::Value;

/// What a client writes first, alone, right after connecting.
pub const PROTOCOL_VERSION: u64 = 1;

/// The largest body accepted from a server. A part of a result is about one memory page; only
/// a `DUMP` carries whole files (the database and its WAL), and a database served by dqlite
/// lives in every node's memory, so a larger one is not a case to serve.
pub const BODY_LIMIT: usize = 1 << 30;

/// The most parameters one statement can be given: the count is a single byte.
pub const MAX_PARAMETERS: usize = 255;

pub const WORD: usize = 8;

/// Ends the last part of a result.
const ROWS_DONE: u64 = 0xffff_ffff_ffff_ffff;
/// Ends a part of a result after which more parts come, unasked.
const ROWS_PART: u64 = 0xeeee_eeee_eeee_eeee;

/// Value type codes, in parameters and rows.
mod code {
  pub const INTEGER: u8 = 1;
  pub const FLOAT: u8 = 2;
  pub const TEXT: u8 = 3;
  pub const BLOB: u8 = 4;
  pub const NULL: u8 = 5;
  /// An integer read from a `DATETIME`, `DATE` or `TIMESTAMP` column.
  pub const UNIXTIME: u8 = 9;
  /// Text read from such a column (a NULL there comes back as empty text).
  pub const ISO8601: u8 = 10;
  /// An integer read from a `BOOLEAN` column (a NULL there comes back as 0).
  pub const BOOLEAN: u8 = 11;
}

/// A node's part in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
  Voter = 0,
  Standby = 1,
  Spare = 2,
}

/// A request, borrowing what it sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Request<'a> {
  /// Which node leads, as far as this one knows.
  Leader,
  /// Registers the client; answered `Welcome`.
  Client {
    id: u64,
  },
  /// Opens database `name` (created if missing) on this connection; one per connection.
  Open {
    name: &'a str,
  },
  Prepare {
    db: u32,
    sql: &'a str,
  },
  Exec {
    db: u32,
    stmt: u32,
    params: &'a [Value],
  },
  Query {
    db: u32,
    stmt: u32,
    params: &'a [Value],
  },
  Finalize {
    db: u32,
    stmt: u32,
  },
  ExecSql {
    db: u32,
    sql: &'a str,
    params: &'a [Value],
  },
  QuerySql {
    db: u32,
    sql: &'a str,
    params: &'a [Value],
  },
  Interrupt {
    db: u32,
  },
  /// Adds node `id` at `address` to the cluster, as a spare.
  Add {
    id: u64,
    address: &'a str,
  },
  Assign {
    id: u64,
    role: Role,
  },
  Remove {
    id: u64,
  },
  /// The files of database `name`: a plain SQLite file and its WAL.
  Dump {
    name: &'a str,
  },
  /// The members, with their roles.
  Cluster,
  /// Hands leadership to node `id`.
  Transfer {
    id: u64,
  },
}

impl Request<'_> {
  fn kind(&self) -> u8 {
    match self {
      Request::Leader => 0,
      Request::Client { .. } => 1,
      Request::Open { .. } => 3,
      Request::Prepare { .. } => 4,
      Request::Exec { .. } => 5,
      Request::Query { .. } => 6,
      Request::Finalize { .. } => 7,
      Request::ExecSql { .. } => 8,
      Request::QuerySql { .. } => 9,
      Request::Interrupt { .. } => 10,
      Request::Add { .. } => 12,
      Request::Assign { .. } => 13,
      Request::Remove { .. } => 14,
      Request::Dump { .. } => 15,
      Request::Cluster => 16,
      Request::Transfer { .. } => 17,
    }
  }
}

/// Why a request cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
  /// Text (`what`: SQL, a parameter, a name) holds a NUL, where the server would cut it.
  Nul { what: &'static str },
  /// More parameters than `MAX_PARAMETERS`.
  TooManyParameters(usize),
}

impl std::fmt::Display for EncodeError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match self {
      EncodeError::Nul { what } => write!(
        f,
        "{what} contains a NUL character, which dqlite would cut the text at: bind it as a Buffer (BLOB) instead"
      ),
      EncodeError::TooManyParameters(n) => write!(
        f,
        "{n} parameters given, but dqlite 1.11 takes at most {MAX_PARAMETERS} per statement: split the statement"
      ),
    }
  }
}

/// Writes `request` as one message (header and body) at the end of `out`. On error `out` is
/// left as it was.
pub fn encode(request: &Request<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
  let start = out.len();
  out.extend_from_slice(&[0; WORD]);
  let written = write_body(request, out);
  if let Err(e) = written {
    out.truncate(start);
    return Err(e);
  }
  let words = ((out.len() - start - WORD) / WORD) as u32;
  out[start..start + 4].copy_from_slice(&words.to_le_bytes());
  out[start + 4] = request.kind();
  Ok(())
}

fn write_body(request: &Request<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
  match *request {
    Request::Leader | Request::Cluster => {
      // LEADER's body is an unused word; CLUSTER's asks for the format with roles (1).
      put_u64(out, u64::from(matches!(request, Request::Cluster)));
    }
    Request::Client { id } | Request::Remove { id } | Request::Transfer { id } => put_u64(out, id),
    Request::Open { name } => {
      put_text(out, name, "the database name")?;
      put_u64(out, 0); // flags
      put_text(out, "", "the VFS name")?; // the server's default VFS
    }
    Request::Prepare { db, sql } => {
      put_u64(out, u64::from(db));
      put_text(out, sql, "the SQL")?;
    }
    Request::Exec { db, stmt, params } | Request::Query { db, stmt, params } => {
      put_u32s(out, db, stmt);
      put_params(out, params)?;
    }
    Request::Finalize { db, stmt } => put_u32s(out, db, stmt),
    Request::ExecSql { db, sql, params } | Request::QuerySql { db, sql, params } => {
      put_u64(out, u64::from(db));
      put_text(out, sql, "the SQL")?;
      put_params(out, params)?;
    }
    Request::Interrupt { db } => put_u64(out, u64::from(db)),
    Request::Add { id, address } => {
      put_u64(out, id);
      put_text(out, address, "the node's address")?;
    }
    Request::Assign { id, role } => {
      put_u64(out, id);
      put_u64(out, role as u64);
    }
    Request::Dump { name } => put_text(out, name, "the database name")?,
  }
  Ok(())
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
  out.extend_from_slice(&value.to_le_bytes());
}

fn put_u32s(out: &mut Vec<u8>, a: u32, b: u32) {
  out.extend_from_slice(&a.to_le_bytes());
  out.extend_from_slice(&b.to_le_bytes());
}

fn pad(out: &mut Vec<u8>) {
  out.resize(out.len().next_multiple_of(WORD), 0);
}

fn put_text(out: &mut Vec<u8>, text: &str, what: &'static str) -> Result<(), EncodeError> {
  if text.as_bytes().contains(&0) {
    return Err(EncodeError::Nul { what });
  }
  out.extend_from_slice(text.as_bytes());
  out.push(0);
  pad(out);
  Ok(())
}

/// Parameters: nothing at all when there are none; otherwise the count, a type code per value
/// (padded to the word), then the values.
fn put_params(out: &mut Vec<u8>, params: &[Value]) -> Result<(), EncodeError> {
  if params.is_empty() {
    return Ok(());
  }
  if params.len() > MAX_PARAMETERS {
    return Err(EncodeError::TooManyParameters(params.len()));
  }
  out.push(params.len() as u8);
  for value in params {
    out.push(match value {
      Value::Integer(_) => code::INTEGER,
      Value::Real(_) => code::FLOAT,
      Value::Text(_) => code::TEXT,
      Value::Blob(_) => code::BLOB,
      Value::Null => code::NULL,
    });
  }
  pad(out);
  for value in params {
    match value {
      Value::Integer(i) => put_u64(out, *i as u64),
      Value::Real(r) => put_u64(out, r.to_bits()),
      Value::Text(text) => put_text(out, text, "a text parameter")?,
      Value::Blob(bytes) => {
        put_u64(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
        pad(out);
      }
      Value::Null => put_u64(out, 0),
    }
  }
  Ok(())
}

/// A message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
  /// The body's length in bytes.
  pub len: usize,
  pub kind: u8,
  pub schema: u8,
}

impl Header {
  /// Reads a header; a body over `BODY_LIMIT` is refused before anything is allocated for it.
  pub fn parse(bytes: [u8; WORD]) -> Result<Header, DecodeError> {
    let words = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let len = words * WORD;
    if len > BODY_LIMIT {
      return Err(DecodeError::TooLarge(len));
    }
    Ok(Header {
      len,
      kind: bytes[4],
      schema: bytes[5],
    })
  }
}

/// A member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
  pub id: u64,
  pub address: String,
  /// `None` for a role code this client does not know.
  pub role: Option<Role>,
}

/// One part of a result: the columns (every part repeats them) and its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct RowsPart {
  pub columns: Vec<String>,
  pub rows: Vec<Vec<Value>>,
  /// More parts follow, unasked.
  pub more: bool,
}

/// An answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
  /// The request failed: an SQLite (extended) result code or dqlite's own, and why.
  Failure {
    code: u64,
    message: String,
  },
  /// `Leader`'s answer: the leader's id and address (empty: no leader known here).
  Server {
    id: u64,
    address: String,
  },
  Welcome {
    heartbeat_timeout_ms: u64,
  },
  Servers(Vec<Server>),
  Db {
    id: u32,
  },
  Stmt {
    db: u32,
    id: u32,
    params: u64,
  },
  Result {
    last_insert_id: i64,
    changes: u64,
  },
  Rows(RowsPart),
  Empty,
  Files(Vec<(String, Vec<u8>)>),
  Metadata {
    failure_domain: u64,
    weight: u64,
  },
}

/// Why an answer could not be read: the server is not speaking this protocol (or the bytes
/// were damaged), and the connection cannot be trusted any further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
  /// A header announced a body over `BODY_LIMIT`.
  TooLarge(usize),
  /// The body ended inside a field.
  Short,
  /// A type code this protocol does not have (`what`: message, value, role).
  Unknown { what: &'static str, code: u64 },
  /// A result with no columns had something other than its end.
  RowsWithoutColumns,
}

impl std::fmt::Display for DecodeError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match self {
      DecodeError::TooLarge(len) => write!(f, "a message of {len} bytes, over the limit of {BODY_LIMIT}"),
      DecodeError::Short => write!(f, "a message ended inside a field"),
      DecodeError::Unknown { what, code } => write!(f, "an unknown {what} type {code}"),
      DecodeError::RowsWithoutColumns => write!(f, "rows in a result without columns"),
    }
  }
}

/// Reads the body of a message whose header is `header`.
pub fn decode(header: &Header, body: &[u8]) -> Result<Response, DecodeError> {
  let mut r = Cursor { body, at: 0 };
  Ok(match header.kind {
    0 => Response::Failure {
      code: r.u64()?,
      message: r.text()?,
    },
    1 => Response::Server {
      id: r.u64()?,
      address: r.text()?,
    },
    2 => Response::Welcome {
      heartbeat_timeout_ms: r.u64()?,
    },
    3 => {
      let n = r.count(3)?;
      let mut servers = Vec::with_capacity(n);
      for _ in 0..n {
        let id = r.u64()?;
        let address = r.text()?;
        let role = match r.u64()? {
          0 => Some(Role::Voter),
          1 => Some(Role::Standby),
          2 => Some(Role::Spare),
          _ => None,
        };
        servers.push(Server { id, address, role });
      }
      Response::Servers(servers)
    }
    4 => {
      let (id, _) = r.u32s()?;
      Response::Db { id }
    }
    5 => {
      let (db, id) = r.u32s()?;
      Response::Stmt {
        db,
        id,
        params: r.u64()?,
      }
    }
    6 => Response::Result {
      last_insert_id: r.u64()? as i64,
      changes: r.u64()?,
    },
    7 => Response::Rows(r.rows()?),
    8 => Response::Empty,
    9 => {
      let n = r.count(2)?;
      let mut files = Vec::with_capacity(n);
      for _ in 0..n {
        let name = r.text()?;
        let size = r.u64()?;
        files.push((name, r.padded_bytes(size)?.to_vec()));
      }
      Response::Files(files)
    }
    10 => Response::Metadata {
      failure_domain: r.u64()?,
      weight: r.u64()?,
    },
    kind => {
      return Err(DecodeError::Unknown {
        what: "message",
        code: u64::from(kind),
      })
    }
  })
}

/// A place in a body being read.
struct Cursor<'a> {
  body: &'a [u8],
  at: usize,
}

impl<'a> Cursor<'a> {
  fn left(&self) -> usize {
    self.body.len() - self.at
  }

  fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
    if n > self.left() {
      return Err(DecodeError::Short);
    }
    let bytes = &self.body[self.at..self.at + n];
    self.at += n;
    Ok(bytes)
  }

  fn peek_u64(&self) -> Result<u64, DecodeError> {
    let bytes = self.body.get(self.at..self.at + WORD).ok_or(DecodeError::Short)?;
    Ok(u64::from_le_bytes(bytes.try_into().expect("a word")))
  }

  fn u64(&mut self) -> Result<u64, DecodeError> {
    let value = self.peek_u64()?;
    self.at += WORD;
    Ok(value)
  }

  fn u32s(&mut self) -> Result<(u32, u32), DecodeError> {
    let word = self.u64()?;
    Ok((word as u32, (word >> 32) as u32))
  }

  /// A count of items that each take at least `words` words: more than the body could hold is
  /// refused before anything is allocated for them.
  fn count(&mut self, words: usize) -> Result<usize, DecodeError> {
    let n = self.u64()?;
    if n > (self.left() / (words * WORD)) as u64 {
      return Err(DecodeError::Short);
    }
    Ok(n as usize)
  }

  /// `len` bytes, then the padding to the next word (which may be missing at the very end).
  fn padded_bytes(&mut self, len: u64) -> Result<&'a [u8], DecodeError> {
    let len = usize::try_from(len).map_err(|_| DecodeError::Short)?;
    let bytes = self.take(len)?;
    self.at = self.at.next_multiple_of(WORD).min(self.body.len());
    Ok(bytes)
  }

  /// Text up to its NUL, then the padding. Bytes that are not UTF-8 (SQLite stores what it is
  /// given) are replaced, as node-sqlite3 does.
  fn text(&mut self) -> Result<String, DecodeError> {
    let rest = &self.body[self.at..];
    let end = rest.iter().position(|&b| b == 0).ok_or(DecodeError::Short)?;
    let text = String::from_utf8_lossy(&rest[..end]).into_owned();
    self.at += (end + 1).next_multiple_of(WORD).min(rest.len());
    Ok(text)
  }

  /// A part of a result: its columns, its rows, and how it ends.
  fn rows(&mut self) -> Result<RowsPart, DecodeError> {
    let n = self.count(1)?;
    let columns = (0..n).map(|_| self.text()).collect::<Result<Vec<_>, _>>()?;
    let header_len = n.div_ceil(2).next_multiple_of(WORD);
    let mut rows = Vec::new();
    loop {
      match self.peek_u64()? {
        ROWS_DONE | ROWS_PART => break,
        _ if n == 0 => return Err(DecodeError::RowsWithoutColumns),
        _ => {}
      }
      let types = self.take(header_len)?;
      let mut row = Vec::with_capacity(n);
      for i in 0..n {
        let code = (types[i / 2] >> ((i % 2) * 4)) & 0x0f;
        row.push(self.value(code)?);
      }
      rows.push(row);
    }
    let more = self.u64()? == ROWS_PART;
    Ok(RowsPart { columns, rows, more })
  }

  /// One value of a row, as node-sqlite3 would give it: a UNIXTIME or BOOLEAN is a number, an
  /// ISO8601 is text.
  fn value(&mut self, code: u8) -> Result<Value, DecodeError> {
    Ok(match code {
      code::INTEGER | code::UNIXTIME | code::BOOLEAN => Value::Integer(self.u64()? as i64),
      code::FLOAT => Value::Real(f64::from_bits(self.u64()?)),
      code::TEXT | code::ISO8601 => Value::Text(self.text()?),
      code::BLOB => {
        let len = self.u64()?;
        Value::Blob(self.padded_bytes(len)?.to_vec())
      }
      code::NULL => {
        self.u64()?;
        Value::Null
      }
      code => {
        return Err(DecodeError::Unknown {
          what: "value",
          code: u64::from(code),
        })
      }
    })
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn message(request: Request<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&request, &mut out).unwrap();
    out
  }

  fn words(bytes: &[u8]) -> Vec<u64> {
    bytes
      .chunks(8)
      .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
      .collect()
  }

  #[test]
  fn a_request_is_a_header_and_a_body_of_whole_words() {
    // LEADER: one unused word.
    assert_eq!(words(&message(Request::Leader)), vec![1, 0]);
    // OPEN "db": text "db\0" padded to a word, flags 0, an empty VFS name (one zero word).
    let open = message(Request::Open { name: "db" });
    assert_eq!(open.len() % 8, 0);
    assert_eq!(&open[..8], &[3, 0, 0, 0, 3, 0, 0, 0]);
    assert_eq!(&open[8..16], b"db\0\0\0\0\0\0");
    assert_eq!(words(&open[16..]), vec![0, 0]);
    // A text of exactly 8 bytes needs a second word for its NUL.
    let prepare = message(Request::Prepare {
      db: 0,
      sql: "SELECT 1",
    });
    assert_eq!(words(&prepare)[0] & 0xffff_ffff, 3);
  }

  #[test]
  fn parameters_carry_a_count_and_a_code_each_then_the_values() {
    let params = [
      Value::Integer(-2),
      Value::Real(1.5),
      Value::Text("é".into()),
      Value::Blob(vec![1, 2, 3]),
      Value::Null,
    ];
    let body = message(Request::ExecSql {
      db: 0,
      sql: "x",
      params: &params,
    })[8..]
      .to_vec();
    let w = words(&body);
    assert_eq!(w[0], 0); // db
    assert_eq!(&body[8..16], b"x\0\0\0\0\0\0\0");
    assert_eq!(&body[16..24], &[5, 1, 2, 3, 4, 5, 0, 0]);
    assert_eq!(w[3] as i64, -2);
    assert_eq!(f64::from_bits(w[4]), 1.5);
    assert_eq!(&body[40..48], "é\0\0\0\0\0\0".as_bytes());
    assert_eq!(w[6], 3);
    assert_eq!(&body[56..64], &[1, 2, 3, 0, 0, 0, 0, 0]);
    assert_eq!(w[8], 0);
    assert_eq!(w.len(), 9);
    // Without parameters the tail is empty.
    assert_eq!(
      message(Request::Exec {
        db: 0,
        stmt: 7,
        params: &[]
      })
      .len(),
      16
    );
  }

  #[test]
  fn what_the_server_would_misread_is_refused() {
    let mut out = vec![9];
    let nul = encode(
      &Request::Prepare {
        db: 0,
        sql: "SELECT 'a\0b'",
      },
      &mut out,
    );
    assert_eq!(nul, Err(EncodeError::Nul { what: "the SQL" }));
    let params = vec![Value::Null; 256];
    let many = encode(
      &Request::QuerySql {
        db: 0,
        sql: "x",
        params: &params,
      },
      &mut out,
    );
    assert_eq!(many, Err(EncodeError::TooManyParameters(256)));
    assert_eq!(out, vec![9], "nothing is left behind");
    let text = [Value::Text("a\0".into())];
    assert_eq!(
      encode(
        &Request::Exec {
          db: 0,
          stmt: 1,
          params: &text
        },
        &mut out
      ),
      Err(EncodeError::Nul {
        what: "a text parameter"
      })
    );
  }

  /// A ROWS body: columns, then rows of (code, word values), then `end`.
  fn rows_body(columns: &[&str], rows: &[Vec<(u8, Vec<u8>)>], end: u64) -> Vec<u8> {
    let mut body = Vec::new();
    put_u64(&mut body, columns.len() as u64);
    for c in columns {
      put_text(&mut body, c, "").unwrap();
    }
    for row in rows {
      let mut header = vec![0u8; columns.len().div_ceil(2).next_multiple_of(8)];
      for (i, (code, _)) in row.iter().enumerate() {
        header[i / 2] |= code << ((i % 2) * 4);
      }
      body.extend_from_slice(&header);
      for (_, value) in row {
        body.extend_from_slice(value);
      }
    }
    put_u64(&mut body, end);
    body
  }

  fn rows_header(body: &[u8]) -> Header {
    Header {
      len: body.len(),
      kind: 7,
      schema: 0,
    }
  }

  #[test]
  fn rows_decode_with_the_value_kinds_node_sqlite3_gives() {
    let mut text = Vec::new();
    put_text(&mut text, "2024-01-02", "").unwrap();
    let body = rows_body(
      &["a", "b", "c"],
      &[
        vec![
          (1, 42u64.to_le_bytes().to_vec()),
          (10, text.clone()),
          (11, 1u64.to_le_bytes().to_vec()),
        ],
        vec![
          (5, vec![0; 8]),
          (9, 7u64.to_le_bytes().to_vec()),
          (2, 2.5f64.to_bits().to_le_bytes().to_vec()),
        ],
      ],
      ROWS_PART,
    );
    let Response::Rows(part) = decode(&rows_header(&body), &body).unwrap() else {
      panic!("rows")
    };
    assert_eq!(part.columns, vec!["a", "b", "c"]);
    assert_eq!(
      part.rows,
      vec![
        vec![
          Value::Integer(42),
          Value::Text("2024-01-02".into()),
          Value::Integer(1)
        ],
        vec![Value::Null, Value::Integer(7), Value::Real(2.5)],
      ]
    );
    assert!(part.more);
  }

  #[test]
  fn malformed_answers_are_errors_never_panics_or_loops() {
    // Rows of a result without columns would consume nothing: refused.
    let mut body = Vec::new();
    put_u64(&mut body, 0);
    put_u64(&mut body, 5);
    assert_eq!(
      decode(&rows_header(&body), &body),
      Err(DecodeError::RowsWithoutColumns)
    );
    // A column count larger than the body could hold.
    let mut body = Vec::new();
    put_u64(&mut body, u64::MAX / 2);
    assert_eq!(decode(&rows_header(&body), &body), Err(DecodeError::Short));
    // A blob longer than what is left.
    let body = rows_body(&["b"], &[vec![(4, 1000u64.to_le_bytes().to_vec())]], ROWS_DONE);
    assert_eq!(decode(&rows_header(&body), &body), Err(DecodeError::Short));
    // Text without its NUL.
    let failure = [1u8, 0, 0, 0, 0, 0, 0, 0, b'a', b'b'];
    let header = Header {
      len: failure.len(),
      kind: 0,
      schema: 0,
    };
    assert_eq!(decode(&header, &failure), Err(DecodeError::Short));
    // An unknown message type, and a header announcing too large a body.
    let header = Header {
      len: 0,
      kind: 99,
      schema: 0,
    };
    assert_eq!(
      decode(&header, &[]),
      Err(DecodeError::Unknown {
        what: "message",
        code: 99
      })
    );
    assert!(matches!(
      Header::parse([0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0]),
      Err(DecodeError::TooLarge(_))
    ));
    // Every prefix of a valid answer fails cleanly.
    let body = rows_body(&["x"], &[vec![(3, b"hello\0\0\0".to_vec())]], ROWS_DONE);
    for len in 0..body.len() {
      assert!(
        decode(&rows_header(&body[..len]), &body[..len]).is_err(),
        "prefix of {len} bytes"
      );
    }
  }

  /// The fuzzer's seeds (`fuzz/corpus/decode_dqlite`, written independently of this code) are
  /// whole answers of every kind: each decodes.
  #[test]
  fn the_fuzz_seeds_decode() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode_dqlite");
    let mut kinds = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
      // Only the seeds: a fuzzing run adds inputs of its own here (untracked), most malformed.
      let path = entry.unwrap().path();
      if !path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
      {
        continue;
      }
      let bytes = std::fs::read(path).unwrap();
      let mut rest = &bytes[..];
      while !rest.is_empty() {
        let header = Header::parse(rest[..8].try_into().unwrap()).unwrap();
        let body = &rest[8..8 + header.len];
        decode(&header, body).unwrap_or_else(|e| panic!("type {}: {e}", header.kind));
        kinds.insert(header.kind);
        rest = &rest[8 + header.len..];
      }
    }
    assert_eq!(
      kinds.into_iter().collect::<Vec<_>>(),
      (0..=10).collect::<Vec<u8>>()
    );
  }

  #[test]
  fn members_and_files_decode() {
    let mut body = Vec::new();
    put_u64(&mut body, 2);
    for (id, address, role) in [(1u64, "127.0.0.1:9001", 0u64), (2, "127.0.0.1:9002", 2)] {
      put_u64(&mut body, id);
      put_text(&mut body, address, "").unwrap();
      put_u64(&mut body, role);
    }
    let header = Header {
      len: body.len(),
      kind: 3,
      schema: 0,
    };
    assert_eq!(
      decode(&header, &body),
      Ok(Response::Servers(vec![
        Server {
          id: 1,
          address: "127.0.0.1:9001".into(),
          role: Some(Role::Voter)
        },
        Server {
          id: 2,
          address: "127.0.0.1:9002".into(),
          role: Some(Role::Spare)
        },
      ]))
    );
    let mut body = Vec::new();
    put_u64(&mut body, 1);
    put_text(&mut body, "db", "").unwrap();
    put_u64(&mut body, 3);
    body.extend_from_slice(&[7, 8, 9, 0, 0, 0, 0, 0]);
    let header = Header {
      len: body.len(),
      kind: 9,
      schema: 0,
    };
    assert_eq!(
      decode(&header, &body),
      Ok(Response::Files(vec![("db".into(), vec![7, 8, 9])]))
    );
  }
}
