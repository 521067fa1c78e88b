//! One read connection and its thread (docs/sessions.md#read-connections).
//!
//! A reader is given reads that the engine thread routed to it (`read_pool`), runs them on its
//! own connection to the file and answers each session directly through its sink, then tells the
//! engine thread it is done (`Command::ReadDone`), so that the session's next request may run. In
//! WAL mode a reader's statement reads the last committed state of the file and neither waits for
//! the write connection's transaction nor holds it up.
//!
//! The reads of one job come from one session, in its order: they run one after another and their
//! answers leave in that order. A reader keeps an `each()` it started until its end, one chunk per
//! job, so the scheduler's window paces it as it paces a stream of the write connection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use super::cache::StatementCache;
use super::connection::{Connection, Statement};
use super::identity::{self, Identity};
use super::requests::{deliver, step};
use super::settings::Settings;
use super::stream::{Chunk, Origin, Stream};
use super::{Command, SessionId, Shared, Sink};
use crate::error::Error;
use crate::protocol::{Key, Mode, OpenOptions, Request, Response};
use crate::value::Params;

/// One-shot statements a reader keeps prepared (each reader has its own cache).
const CACHE_CAPACITY: usize = 64;

/// How the write connection was opened: every reader opens the file the same way.
#[derive(Clone, PartialEq)]
pub(super) struct Source {
  pub options: OpenOptions,
  pub key: Option<Key>,
  /// The file the write connection has open (device, inode).
  pub file: Identity,
}

/// A `Source` borrowed from the write connection's state, to compare without copying.
#[derive(Clone, Copy)]
pub(super) struct SourceOf<'a> {
  pub options: &'a OpenOptions,
  pub key: Option<&'a Key>,
  pub file: Identity,
}

impl SourceOf<'_> {
  pub fn is(&self, source: &Source) -> bool {
    self.file == source.file && source.key.as_ref() == self.key && source.options == *self.options
  }

  pub fn to_owned(self) -> Source {
    Source {
      options: self.options.clone(),
      key: self.key.cloned(),
      file: self.file,
    }
  }
}

/// A read the engine thread routed to a reader: a one-shot `get`, `all` or `each`.
pub(super) struct Read {
  pub id: u32,
  /// Its arrival number (`Scheduler::received`), kept if it goes back to the write connection.
  pub arrival: u64,
  pub sql: String,
  pub params: Params,
  pub mode: Mode,
}

impl Read {
  /// The request again, to run on the write connection after all.
  pub fn into_request(self) -> (u32, Request, u64) {
    let Read {
      id,
      arrival,
      sql,
      params,
      mode,
    } = self;
    (id, Request::Query { sql, params, mode }, arrival)
  }
}

/// Work for a reader.
pub(super) enum Job {
  /// Reads of one session, in its order; an `each()` can only be the last of them.
  Run {
    session: SessionId,
    reads: Vec<Read>,
    /// The session's per-Database pragmas, put on the reader's connection first.
    settings: Settings,
    sink: Arc<dyn Sink>,
    /// The largest `each()` chunk the session may receive (`SessionPolicy::chunk_bytes_limit`).
    chunk_limit: usize,
  },
  /// The next chunk of the `each()` the reader holds.
  NextChunk,
  /// The session of the `each()` the reader holds is gone: the stream ends unanswered.
  DropStream,
}

/// What a reader reports when a job is done.
pub(super) enum Outcome {
  /// The reads were answered; `chunks` is the number of `each()` chunks delivered, and `stream`
  /// the request id of the session's `each()` the reader still holds.
  Answered { chunks: u32, stream: Option<u32> },
  /// These reads were not run (a statement that writes, or a reader that cannot open the file):
  /// they run on the write connection, in this order, before anything else of the session.
  Returned {
    reads: Vec<Read>,
    writes: Option<String>,
  },
}

/// An `each()` held between chunks, for its session.
struct Held {
  session: SessionId,
  stream: Stream,
  sink: Arc<dyn Sink>,
  chunk_limit: usize,
}

/// The reader thread: `reader` (the pool's epoch and its index in the pool), its jobs from the engine thread, its reports back.
pub(super) fn serve(
  reader: (u64, usize),
  source: Source,
  shared: Arc<Shared>,
  jobs: Receiver<Job>,
  done: Sender<Command>,
) {
  let mut state = Reader::open(&source, Arc::new(AtomicBool::new(false)));
  while let Ok(job) = jobs.recv() {
    let (session, outcome) = match job {
      Job::Run {
        session,
        reads,
        settings,
        sink,
        chunk_limit,
      } => {
        let _running = Running::start(&shared, session, &state.interrupted);
        (session, state.run(session, reads, settings, sink, chunk_limit))
      }
      Job::NextChunk => {
        let Some(session) = state.held.as_ref().map(|h| h.session) else {
          continue;
        };
        let _running = Running::start(&shared, session, &state.interrupted);
        (session, state.next_chunk())
      }
      Job::DropStream => {
        state.end_stream();
        continue;
      }
    };
    let report = Command::ReadDone {
      reader,
      session,
      outcome,
    };
    if done.send(report).is_err() {
      return;
    }
  }
}

/// A connection like the write connection: same file, flags, key, and quiet SQLCipher.
///
/// The path must still name the write connection's file, before and after the open: a reader
/// opened on a file put in its place would take the write connection's `-wal` for its own log,
/// read the old file's pages from it, and write them into the new file when it closes. Then
/// the reads go to the write connection until it has opened the new file itself (`identity`).
fn open(source: &Source, interrupted: &Arc<AtomicBool>) -> Result<Connection, Error> {
  let options = &source.options;
  let moved = || {
    Error::sqlite(
      rusqlite::ffi::SQLITE_CANTOPEN,
      "the database file was replaced: reads wait for the write connection to open the new one",
    )
  };
  let path = std::path::Path::new(&options.filename);
  if identity::of(path) != Some(source.file) {
    return Err(moved());
  }
  // The file exists: the write connection created it.
  let flags = options.flags & !rusqlite::ffi::SQLITE_OPEN_CREATE;
  let mut conn = Connection::open(&options.filename, flags, options.busy_timeout_ms)?;
  if identity::of(path) != Some(source.file) {
    return Err(moved());
  }
  conn.watch_interrupts(interrupted.clone());
  if !options.verbose {
    let _ = conn.execute_batch("PRAGMA cipher_log_level = NONE");
  }
  if let Some(key) = &source.key {
    conn.apply_key(key)?;
  }
  Ok(conn)
}

/// The file a reader has open, and its path.
struct File {
  path: std::path::PathBuf,
  identity: Identity,
}

impl File {
  /// Whether `error` comes of the file having been deleted or replaced under the reader (the
  /// path names another file now, or none): then the read goes back to the write connection,
  /// which finds out what happened and answers as it does for a file gone (`identity`).
  fn moved(&self, error: &Error) -> bool {
    let code = error.errno() & 0xff;
    let io = [
      rusqlite::ffi::SQLITE_IOERR,
      rusqlite::ffi::SQLITE_CANTOPEN,
      rusqlite::ffi::SQLITE_READONLY,
      rusqlite::ffi::SQLITE_CORRUPT,
      rusqlite::ffi::SQLITE_NOTADB,
    ];
    io.contains(&code) && identity::of(&self.path) != Some(self.identity)
  }
}

/// Marks `session` as running on this reader for `interrupt()` while it lives.
struct Running<'a> {
  shared: &'a Shared,
  session: SessionId,
}

impl<'a> Running<'a> {
  fn start(shared: &'a Shared, session: SessionId, interrupted: &Arc<AtomicBool>) -> Running<'a> {
    // An interrupt is for the statement running when it came, never for the next job.
    interrupted.store(false, Ordering::Relaxed);
    let mut readers = shared.on_readers.lock().unwrap_or_else(|e| e.into_inner());
    readers.insert(session, interrupted.clone());
    Running { shared, session }
  }
}

impl Drop for Running<'_> {
  fn drop(&mut self) {
    let mut readers = self.shared.on_readers.lock().unwrap_or_else(|e| e.into_inner());
    readers.remove(&self.session);
  }
}

struct Reader {
  /// The connection, or why it could not be opened (then every read goes back to the writer).
  conn: Result<Connection, Error>,
  file: File,
  cache: StatementCache,
  /// The per-Database pragmas the connection has now.
  applied: Settings,
  held: Option<Held>,
  interrupted: Arc<AtomicBool>,
}

impl Reader {
  /// A reader of `source`'s file (which may fail to open: then it gives every read back).
  fn open(source: &Source, interrupted: Arc<AtomicBool>) -> Reader {
    Reader {
      conn: open(source, &interrupted),
      file: File {
        path: source.options.filename.clone().into(),
        identity: source.file,
      },
      cache: StatementCache::new(CACHE_CAPACITY),
      applied: Settings::default(),
      held: None,
      interrupted,
    }
  }

  /// Runs the reads of a job. Several plain reads share one read transaction, as a read group
  /// does on the write connection (`read_group.rs`): SQLite then takes its locks and looks at the
  /// log once for all of them. They all arrived before the job was handed out, so the shared
  /// snapshot still holds every write answered before any of them was sent. An `each()` keeps
  /// its own read, so a job with one is not grouped.
  fn run(
    &mut self,
    session: SessionId,
    reads: Vec<Read>,
    settings: Settings,
    sink: Arc<dyn Sink>,
    chunk_limit: usize,
  ) -> Outcome {
    let Ok(conn) = &self.conn else {
      return Outcome::Returned { reads, writes: None };
    };
    if settings != self.applied {
      Settings::apply(settings, &mut self.applied, conn);
    }
    let grouped =
      reads.len() > 1 && reads.iter().all(|r| r.mode != Mode::Each) && conn.execute_batch("BEGIN").is_ok();
    let outcome = self.run_reads(session, reads, sink, chunk_limit);
    if grouped {
      if let Ok(conn) = &self.conn {
        if conn.execute_batch("COMMIT").is_err() {
          let _ = conn.execute_batch("ROLLBACK");
        }
      }
    }
    outcome
  }

  fn run_reads(
    &mut self,
    session: SessionId,
    reads: Vec<Read>,
    sink: Arc<dyn Sink>,
    chunk_limit: usize,
  ) -> Outcome {
    let Ok(conn) = &self.conn else {
      return Outcome::Returned { reads, writes: None };
    };
    let mut reads = reads.into_iter();
    while let Some(read) = reads.next() {
      let stmt = match self.cache.take(&read.sql) {
        Some(stmt) => stmt,
        None => match conn.prepare(&read.sql) {
          Ok(Some(stmt)) => stmt,
          Ok(None) => {
            deliver(&sink, read.id, Response::Error(Error::misuse("not an error")));
            continue;
          }
          Err(e) if self.file.moved(&e) => return give_back(&sink, read, reads, None),
          Err(e) => {
            deliver(&sink, read.id, Response::PrepareError(e));
            continue;
          }
        },
      };
      // The SQL looked like a query, but SQLite says it writes (`WITH … INSERT`): it and the
      // reads after it go to the write connection, where they keep their order.
      if !stmt.readonly() {
        let writes = Some(read.sql.clone());
        return give_back(&sink, read, reads, writes);
      }
      let mut stmt = stmt;
      if let Err(e) = stmt.bind(&read.params) {
        recycle(&mut self.cache, read.sql, stmt);
        deliver(&sink, read.id, Response::Error(e));
        continue;
      }
      if read.mode == Mode::Each {
        let stream = Stream::new(read.id, stmt, Origin::Cached(read.sql));
        self.held = Some(Held {
          session,
          stream,
          sink: sink.clone(),
          chunk_limit,
        });
        return self.next_chunk();
      }
      let response = step(conn, &mut stmt, read.mode);
      if matches!(&response, Response::Error(e) if self.file.moved(e)) {
        // The statement is dropped with the connection it belongs to, which is not used again.
        drop(stmt);
        return give_back(&sink, read, reads, None);
      }
      recycle(&mut self.cache, read.sql, stmt);
      deliver(&sink, read.id, response);
    }
    sink.flush();
    Outcome::Answered {
      chunks: 0,
      stream: None,
    }
  }

  /// Delivers the next chunk of the held `each()`, or its end.
  fn next_chunk(&mut self) -> Outcome {
    let Some(held) = self.held.as_mut() else {
      return Outcome::Answered {
        chunks: 0,
        stream: None,
      };
    };
    let Chunk { rows, end } = held.stream.next_chunk(held.chunk_limit);
    let mut chunks = 0;
    if let Some(rows) = rows {
      deliver(&held.sink, held.stream.id, Response::Chunk(rows));
      chunks = 1;
    }
    let stream = match end {
      None => Some(held.stream.id),
      Some(error) => {
        deliver(&held.sink, held.stream.id, Response::EachEnd { error });
        None
      }
    };
    held.sink.flush();
    if stream.is_none() {
      self.end_stream();
    }
    Outcome::Answered { chunks, stream }
  }

  /// Gives the held stream's statement back to the cache.
  fn end_stream(&mut self) {
    if let Some(held) = self.held.take() {
      if let Origin::Cached(sql) = held.stream.origin {
        recycle(&mut self.cache, sql, held.stream.stmt);
      }
    }
  }
}

/// Gives `read` and the reads after it back to the write connection (the answers already
/// delivered leave first).
fn give_back(
  sink: &Arc<dyn Sink>,
  read: Read,
  rest: impl Iterator<Item = Read>,
  writes: Option<String>,
) -> Outcome {
  sink.flush();
  let mut reads = vec![read];
  reads.extend(rest);
  Outcome::Returned { reads, writes }
}

/// Gives a one-shot statement back to the reader's cache, reset and unbound.
fn recycle(cache: &mut StatementCache, sql: String, mut stmt: Statement) {
  stmt.reset();
  stmt.clear_bindings();
  cache.put(sql, stmt);
}

/// A read connection that a cluster client opens itself (`cluster::client_reads`): the reader
/// above without the engine around it. It runs one-shot `get` and `all` reads, one batch at a
/// time, for whoever calls it.
pub struct OwnReader {
  reader: Reader,
}

/// Reads an `OwnReader` did not run, for the master to run in this order: a statement that
/// writes (its SQL in `writes`), or a file that could not be read here.
pub struct GivenBack {
  pub requests: Vec<(u32, Request)>,
  pub writes: Option<String>,
}

impl OwnReader {
  /// Opens `options.filename`, which must be the file `file` (device, inode) before and after
  /// the open, keyed with `key`; setting `interrupted` stops the read running at that moment
  /// (`SQLITE_INTERRUPT`). A reader that could not open gives every read back.
  pub fn open(
    options: OpenOptions,
    key: Option<Key>,
    file: Identity,
    interrupted: Arc<AtomicBool>,
  ) -> OwnReader {
    let mut reader = Reader::open(&Source { options, key, file }, interrupted);
    if let Ok(conn) = &mut reader.conn {
      conn.set_shapes_apart();
    }
    OwnReader { reader }
  }

  /// Whether it could open the file.
  pub fn is_open(&self) -> bool {
    self.reader.conn.is_ok()
  }

  /// Runs `reads` (each a `Query` in `get` or `all` mode) with the Database's per-Database
  /// pragmas, answering each through `sink`; the reads it did not run come back.
  pub fn run(
    &mut self,
    reads: Vec<(u32, Request)>,
    settings: Settings,
    sink: Arc<dyn Sink>,
  ) -> Option<GivenBack> {
    let reads = reads
      .into_iter()
      .filter_map(|(id, request)| match request {
        Request::Query { sql, params, mode } => Some(Read {
          id,
          arrival: 0,
          sql,
          params,
          mode,
        }),
        _ => None,
      })
      .collect();
    // An interrupt is for the read running when it came, never for the next batch.
    self.reader.interrupted.store(false, Ordering::Relaxed);
    match self.reader.run(0, reads, settings, sink, usize::MAX) {
      Outcome::Answered { .. } => None,
      Outcome::Returned { reads, writes } => Some(GivenBack {
        requests: reads
          .into_iter()
          .map(|read| {
            let (id, request, _) = read.into_request();
            (id, request)
          })
          .collect(),
        writes,
      }),
    }
  }
}
