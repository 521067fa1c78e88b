//! The requests a session sends to its engine and the responses and events it gets back.
//!
//! These types are the whole vocabulary between a Database and the connection that serves it,
//! whether the Database lives in the same process (standalone, master) or reaches it over the
//! cluster socket. They are plain data (serde), so the same values can cross a socket as
//! bincode frames.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::value::{Params, Value};

/// What a statement execution should return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
  /// Step once; report `lastID` and `changes`.
  Run,
  /// Step once; return the row, if any.
  Get,
  /// Return every row.
  All,
  /// Stream every row in chunks, with flow control.
  Each,
}

/// A SQLCipher key, checked when it is applied: a wrong key is `SQLITE_NOTADB`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Key {
  /// Raw key bytes (32, or 48 with an explicit salt), used as SQLCipher's `x'…'` key.
  Raw(Vec<u8>),
  /// A passphrase, run through SQLCipher's key derivation.
  Passphrase(String),
}

impl Key {
  /// The raw key written as `hex`: 64 hex digits (a 32-byte key) or 96 (key and salt).
  pub fn raw_from_hex(hex: &str) -> Option<Key> {
    if !(hex.len() == 64 || hex.len() == 96) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
      return None;
    }
    let bytes = (0..hex.len())
      .step_by(2)
      .map(|i| u8::from_str_radix(&hex[i..i + 2], 16));
    bytes.collect::<Result<Vec<u8>, _>>().ok().map(Key::Raw)
  }

  /// A `PRAGMA key` value as SQLCipher reads it: `x'<64 or 96 hex digits>'` is a raw key,
  /// anything else a passphrase.
  pub fn from_pragma(text: String) -> Key {
    let hex = text
      .strip_prefix("x'")
      .or_else(|| text.strip_prefix("X'"))
      .and_then(|t| t.strip_suffix('\''));
    hex.and_then(Key::raw_from_hex).unwrap_or(Key::Passphrase(text))
  }
}

impl std::fmt::Debug for Key {
  // Keys are never printed, not even in debug output.
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.write_str("Key(…)")
  }
}

/// The key as sqlite3-cluster 1.x applied it, to open the files 1.x wrote (see
/// `engine::sqlcipher3`): `PRAGMA KEY = "<pass>"` then `PRAGMA CIPHER = 'aes-<bits>-cbc'` on
/// SQLCipher 3.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyKey {
  /// The text 1.x gave `PRAGMA KEY`: `x'<the app's key>'`.
  pub pass: String,
  /// AES key size in bits: the app's `bits`, 128 when it gave none (1.x's default).
  pub bits: u16,
}

impl std::fmt::Debug for LegacyKey {
  // Keys are never printed, not even in debug output.
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    write!(f, "LegacyKey(…, {} bits)", self.bits)
  }
}

/// One operation of a session's backup `backup` (node-sqlite3's `Backup` object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupOp {
  /// Opens `filename` and starts copying (into it when `filename_is_dest`, else out of it).
  Start {
    backup: u32,
    filename: String,
    source_name: String,
    dest_name: String,
    filename_is_dest: bool,
  },
  /// Copies up to `pages` pages; an error not in `retry` ends the backup.
  Step {
    backup: u32,
    pages: i32,
    retry: Vec<i32>,
  },
  Finish {
    backup: u32,
  },
}

/// A session's `PRAGMA key`. It never fails: with a wrong key the session's statements that read
/// the file fail with `SQLITE_NOTADB`, as they would on a connection of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PragmaKey {
  /// The key, for the engine of this process: it keys the connection if it has no key yet,
  /// else it must be the connection's key.
  Given(Key),
  /// What a cluster client found when it tried its key against the file itself: a key never
  /// crosses the socket (README, Security model), so the master only learns whether it was right.
  Checked(bool),
}

/// How a session opens (or joins) the connection of its database file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenOptions {
  pub filename: String,
  /// node-sqlite3's open flags (`OPEN_READWRITE | OPEN_CREATE`, …).
  pub flags: i32,
  pub key: Option<Key>,
  /// How 1.x would have applied `key`: tried when the key does not open the file the 2.x way.
  pub legacy: Option<LegacyKey>,
  /// Without `key`, an encrypted file fails the open (`create()`); otherwise the session opens
  /// and its reads fail until it gives the key (`new Database()`, as node-sqlite3).
  pub strict_key: bool,
  /// `bits` without `key`: the session refuses statements until it receives a `Key`.
  pub deferred_key: bool,
  /// Keep SQLCipher's own log on stderr.
  pub verbose: bool,
  pub busy_timeout_ms: i32,
  /// A session idle inside a transaction this long is rolled back (0: never). The value of the
  /// session that opens the connection (the master's) is the one the engine enforces.
  pub transaction_timeout_ms: u32,
  /// The journal mode the application chose (`journalMode`); without one, a file opened for
  /// writing in the default mode is put in WAL mode (`engine/journal.rs`). Like the key, the
  /// value of the session that opens the connection is the one that counts.
  pub journal_mode: Option<String>,
  /// Read connections the engine may open beside its write connection (`readConnections`;
  /// `None`: the engine's default, `engine::read_pool`). The opening session's value counts.
  pub read_connections: Option<u32>,
}

#[cfg(test)]
impl OpenOptions {
  /// Read-write, created if missing, no key: what the tests open.
  pub fn for_tests(filename: &str) -> OpenOptions {
    OpenOptions {
      filename: filename.into(),
      flags: 2 | 4,
      key: None,
      legacy: None,
      strict_key: true,
      deferred_key: false,
      verbose: false,
      busy_timeout_ms: 1000,
      transaction_timeout_ms: 0,
      journal_mode: None,
      read_connections: None,
    }
  }
}

/// `db.configure(...)` and the hooks behind `on('trace' | 'profile' | 'change')`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Setting {
  BusyTimeout(i32),
  Limit { id: i32, value: i32 },
  Trace(bool),
  Profile(bool),
  Change(bool),
}

/// One request of a session. Requests of a session run in the order they are sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
  /// First request of every session.
  Open(OpenOptions),
  /// A one-shot statement (`db.run/get/all/each/map`): prepared through the statement cache,
  /// executed, reset.
  Query {
    sql: String,
    params: Params,
    mode: Mode,
  },
  /// `db.prepare()`: the session keeps statement `stmt` until `Finalize`.
  Prepare {
    stmt: u32,
    sql: String,
  },
  Bind {
    stmt: u32,
    params: Params,
  },
  Execute {
    stmt: u32,
    params: Params,
    mode: Mode,
  },
  Reset {
    stmt: u32,
  },
  Finalize {
    stmt: u32,
  },
  /// `db.exec()`: every statement of a script, results discarded.
  Exec {
    sql: String,
  },
  Configure(Setting),
  /// `db.init({ key })`: the deferred key, and how 1.x would have applied it.
  Key(Key, Option<LegacyKey>),
  /// `PRAGMA key = …` sent as a statement: the route ORMs take to SQLCipher.
  PragmaKey(PragmaKey),
  /// `db.backup()`: node-sqlite3's Backup, run by the engine of the file.
  Backup(BackupOp),
  LoadExtension {
    path: String,
  },
  /// `db.wait()`: answered once everything sent before it is done.
  Wait,
  /// `db.close()`: fails with `SQLITE_BUSY` while the session holds unfinalized statements.
  Close,
  /// The session's transaction was lost with its master (failover): mark it *aborted*, so that
  /// its statements fail with `CLUSTER_TXN_ABORTED` until `ROLLBACK` (docs/sessions.md#aborted-sessions).
  Abort,
  /// Worker1's `exec`: a whole script with SQLite WASM's `oo1.DB.exec` semantics.
  Script(Script),
  /// Worker1's `export`: the database image (`sqlite3_serialize`).
  Export,
}

/// `oo1.DB.exec`: every statement of `sql` runs in order; `bind` goes to the first statement
/// that has parameters; the first statement with result columns is handled as `first` says
/// (its column names are reported in every case); every other statement is stepped once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Script {
  pub sql: String,
  pub bind: Params,
  pub first: FirstResult,
}

/// What `exec` does with the first statement that has result columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FirstResult {
  /// Step it once, like any other statement (no row options given).
  Step,
  /// Read all its rows (`callback` or `resultRows`).
  Read,
  /// Only its column names (`columnNames` alone): oo1 does not step it at all.
  Describe,
}

/// What a `Script` produced. `error` ends it early; what ran before stays (no implicit
/// transaction), and the rows read so far are reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptResult {
  pub columns: Option<Vec<String>>,
  /// Row-major values of the first result statement.
  pub values: Vec<Value>,
  /// The text of each statement, trimmed; empty statements fold into the next one.
  pub statements: Vec<String>,
  /// `sqlite3_total_changes64()` after minus before.
  pub changes: i64,
  pub last_insert_rowid: i64,
  pub error: Option<Error>,
}

/// The code of a `Script` error that is not SQLite's (oo1's own messages, such as
/// "Bind index 2 is out of range.").
pub const SCRIPT_ERROR: i32 = -1;

/// The largest message a cluster connection carries (one request, or one reply: an `all()`
/// result, one `each()` chunk). Bigger results must be streamed with `each()`.
pub const MESSAGE_LIMIT: usize = 256 << 20;

/// The column names of a result, shared by every row of it. `id` names the shape so that a
/// receiver can cache what it builds from the names (row constructors) and a sender can skip
/// names the receiver already has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shape {
  pub id: u32,
  pub columns: Vec<String>,
}

/// Rows of one shape, row-major: `values.len()` is a multiple of `shape.columns.len()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rows {
  pub shape: Arc<Shape>,
  pub values: Vec<Value>,
}

impl Rows {
  pub fn len(&self) -> usize {
    match self.shape.columns.len() {
      0 => 0,
      n => self.values.len() / n,
    }
  }

  pub fn is_empty(&self) -> bool {
    self.len() == 0
  }
}

/// The answer to one request. `Each` answers with any number of `Chunk`s, then `EachEnd`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
  Done,
  Run {
    last_id: i64,
    changes: i64,
  },
  Row(Option<Rows>),
  Rows(Rows),
  /// Part of an `Each` result. The receiver acknowledges each chunk (flow control).
  Chunk(Rows),
  /// End of an `Each` result; `error` is a runtime error met while stepping.
  EachEnd {
    error: Option<Error>,
  },
  Error(Error),
  /// The SQL of a one-shot `Query` did not compile. node-sqlite3 reports this to a different
  /// callback than a runtime error (`each`'s completion callback, without a receiver).
  PrepareError(Error),
  /// The request was addressed to a statement whose prepare failed: node-sqlite3 drops such
  /// calls without calling back, and so does the Database; the receiver only forgets the request.
  Dropped,
  Script(ScriptResult),
  Bytes(Vec<u8>),
  /// A backup step: whether the copy is complete, node-sqlite3's `remaining`/`pageCount` after
  /// it, and its error (node-sqlite3 updates both counts after a failed step too).
  Backup {
    done: bool,
    remaining: i32,
    page_count: i32,
    error: Option<Error>,
  },
}

/// Something that happened on the connection while this session's statement ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
  /// A statement started; bound parameters expanded.
  Trace(String),
  /// A statement finished, with its duration in nanoseconds.
  Profile { sql: String, nanos: u64 },
  /// A row changed (`sqlite3_update_hook`).
  Change {
    kind: ChangeKind,
    database: String,
    table: String,
    rowid: i64,
  },
  /// A dqlite session's connection goes to this leader now ("host:port"), a first one or
  /// another after failover. Only dqlite sessions send it; it never crosses a cluster socket.
  Leader { address: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
  Insert,
  Update,
  Delete,
}

impl ChangeKind {
  pub fn as_str(self) -> &'static str {
    match self {
      ChangeKind::Insert => "insert",
      ChangeKind::Update => "update",
      ChangeKind::Delete => "delete",
    }
  }
}

/// The part a process plays for one database file (`db.cluster.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
  Master,
  Client,
}

impl Role {
  pub fn as_str(self) -> &'static str {
    match self {
      Role::Master => "master",
      Role::Client => "client",
    }
  }
}

/// See `Outgoing::ClientReads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientReads {
  /// The file (device, inode) that reads outside transactions may be run on by a client of
  /// its own, or `None` while they must go to the master: the file is not in WAL mode, the
  /// write connection holds state of its own (TEMP objects, ATTACHed databases…), or the
  /// master's application turned read connections off.
  pub file: Option<(u64, u64)>,
  /// The session's per-Database pragmas, which a client's read connection takes on too; `None`
  /// while the session's reads must go to the master whatever the file: it is not open, waits
  /// for its key, lost its transaction, or watches `trace`/`profile` (which report the master's
  /// statements).
  pub session: Option<crate::engine::Settings>,
}

impl Outgoing {
  /// About how many bytes the message takes on the socket: what a master counts of the answers
  /// a client has not read yet.
  pub fn size(&self) -> usize {
    let rows = |rows: &Rows| 16 + rows.values.iter().map(Value::size).sum::<usize>();
    match self {
      Outgoing::Reply { response, .. } => match response {
        Response::Row(Some(r)) | Response::Rows(r) | Response::Chunk(r) => rows(r),
        Response::Bytes(bytes) => 16 + bytes.len(),
        Response::Script(script) => 64 + script.values.iter().map(Value::size).sum::<usize>(),
        _ => 32,
      },
      _ => 32,
    }
  }
}

/// What an engine (or the cluster layer) sends to a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outgoing {
  Reply {
    id: u32,
    response: Response,
  },
  Event(Event),
  /// The session entered (`true`) or left (`false`) a transaction. Sent before the reply of the
  /// statement that changed it, so a client always knows whether a lost master took a
  /// transaction of its with it.
  Txn(bool),
  /// The request `id` was not run: the master is closing and the session is outside a
  /// transaction (see `SessionHandle::guard`). Never crosses the socket: the client sends the
  /// request again, to the next master.
  NotRun {
    id: u32,
  },
  /// What a client on the master's machine needs to run this session's reads on a read
  /// connection of its own (docs/sessions.md#client-read-connections): sent before the reply
  /// that follows a change, and to every session when the file's part changes.
  ClientReads(ClientReads),
  /// This process became master or client of the database (cluster mode only; never crosses
  /// the socket).
  Role {
    role: Role,
    master_pid: u32,
  },
}
