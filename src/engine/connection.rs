//! A thin, owned wrapper over one `sqlite3*` handle and its prepared statements.
//!
//! Only the engine thread touches these types. They use SQLite's C API directly (through
//! rusqlite's `ffi`) because node-sqlite3's statement semantics — persistent cursors, bindings
//! that outlive a run, `SQLITE_DONE` quirks — need the raw statement, not a borrowed wrapper.
//! This module never opens, locks or touches the database file outside SQLite.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use rusqlite::ffi;

use crate::error::Error;
use crate::protocol::{ChangeKind, Event, Key, Shape};
use crate::value::{Bind, ParamKey, Params, Value};

static NEXT_SHAPE: AtomicU32 = AtomicU32::new(1);

/// The bit that sets the shape ids of a client's own read connections apart (`set_shapes_apart`).
const APART: u32 = 1 << 31;

/// A shape of result columns with an id no other shape of this process has (JavaScript knows
/// shapes by id): for rows that come from elsewhere than a statement of this process (dqlite).
pub fn new_shape(columns: Vec<String>) -> Arc<Shape> {
  Arc::new(Shape {
    id: NEXT_SHAPE.fetch_add(1, Ordering::Relaxed) & !APART,
    columns,
  })
}

/// One open connection.
pub struct Connection {
  db: *mut ffi::sqlite3,
  /// Where the trace, profile and update hooks put their events, at a stable address for the
  /// hooks' context pointer; the engine drains it after each step of work.
  #[allow(clippy::box_collection)] // the hooks hold a pointer to the Vec itself, which must not move
  hook_events: Box<Vec<Event>>,
  /// Some hook is on (its events must see every statement as the user ran it).
  hooked: bool,
  /// Set by `interrupt()`: the progress handler stops the running statement (see
  /// `watch_interrupts`).
  interrupted: Option<Arc<AtomicBool>>,
  /// Or-ed into the ids of its statements' shapes (`set_shapes_apart`).
  shape_bit: u32,
}

// SAFETY: a Connection is created on one thread and then moved to the thread that owns it (the
// engine thread, or a reader thread for a read connection), which is the only one that uses it
// (other threads stop statements through the `interrupted` flag, never
// through the handle). SQLite is built threadsafe, so moving the handle between threads is
// allowed; it is never used from two threads at once.
unsafe impl Send for Connection {}

impl Connection {
  /// A private in-memory database, for the engine's unit tests.
  #[cfg(test)]
  pub fn memory() -> Connection {
    Connection::open(
      ":memory:",
      ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE,
      0,
    )
    .expect("an in-memory database opens")
  }

  /// Opens `filename` with node-sqlite3's `flags`; extended result codes on.
  pub fn open(filename: &str, flags: i32, busy_timeout_ms: i32) -> Result<Connection, Error> {
    let c_name = CString::new(filename).map_err(|_| {
      Error::sqlite(
        ffi::SQLITE_CANTOPEN,
        "unable to open database file: the name contains NUL",
      )
    })?;
    let mut db = ptr::null_mut();
    // node-sqlite3 always opens FULLMUTEX; the engine is single-threaded, but interrupt() is not.
    let flags = flags | ffi::SQLITE_OPEN_FULLMUTEX;
    // SAFETY: `c_name` is NUL-terminated and outlives the call; `&mut db` is a local out-pointer; a
    // null VFS name selects the default VFS.
    let rc = unsafe { ffi::sqlite3_open_v2(c_name.as_ptr(), &mut db, flags, ptr::null()) };
    if rc != ffi::SQLITE_OK {
      let error = if db.is_null() {
        Error::sqlite(rc, errstr(rc))
      } else {
        let e = Error::sqlite(rc, errmsg(db));
        // SAFETY: a failed open may still allocate a handle: it is ours alone (no statement exists
        // yet), its message was copied out above, and it is closed exactly once, here.
        unsafe { ffi::sqlite3_close(db) };
        e
      };
      return Err(error);
    }
    // SAFETY: `db` was just opened and is owned by this function until it moves into the
    // `Connection`.
    unsafe {
      ffi::sqlite3_extended_result_codes(db, 1);
      ffi::sqlite3_busy_timeout(db, busy_timeout_ms);
    }
    Ok(Connection {
      db,
      hook_events: Box::new(Vec::new()),
      hooked: false,
      interrupted: None,
      shape_bit: 0,
    })
  }

  pub fn handle(&self) -> *mut ffi::sqlite3 {
    self.db
  }

  pub fn error(&self, rc: c_int) -> Error {
    Error::sqlite(rc, errmsg(self.db))
  }

  /// Runs SQL that returns no rows the caller needs (pragmas, ROLLBACK).
  pub fn execute_batch(&self, sql: &str) -> Result<(), Error> {
    let mut rest = sql;
    while let Some((stmt, tail)) = self.prepare_one(rest)? {
      if let Some(mut stmt) = stmt {
        loop {
          match stmt.step() {
            ffi::SQLITE_ROW => continue,
            ffi::SQLITE_DONE => break,
            rc => return Err(self.error(rc)),
          }
        }
      }
      rest = tail;
    }
    Ok(())
  }

  /// Prepares the first statement of `sql`. `Ok(None)` at the end of the text; a statement of
  /// only whitespace or comments is `Some((None, tail))`.
  pub fn prepare_one<'a>(&self, sql: &'a str) -> Result<Option<(Option<Statement>, &'a str)>, Error> {
    if sql.is_empty() {
      return Ok(None);
    }
    let mut raw = ptr::null_mut();
    let mut tail: *const c_char = ptr::null();
    // SAFETY: `db` is open for the life of `self`. `sql` is passed with its length in bytes (no NUL
    // needed) and outlives the call, so `tail` points into it or is null; `raw` is a local
    // out-pointer, and the statement it receives is owned by the `Statement` made below.
    let rc = unsafe {
      ffi::sqlite3_prepare_v3(
        self.db,
        sql.as_ptr().cast(),
        sql.len() as c_int,
        0,
        &mut raw,
        &mut tail,
      )
    };
    if rc != ffi::SQLITE_OK {
      return Err(self.error(rc));
    }
    let used = if tail.is_null() {
      sql.len()
    } else {
      tail as usize - sql.as_ptr() as usize
    };
    let rest = &sql[used.min(sql.len())..];
    let stmt = if raw.is_null() {
      None
    } else {
      Some(Statement::new(raw, self.shape_bit))
    };
    if stmt.is_none() && used == 0 {
      return Ok(None);
    }
    Ok(Some((stmt, rest)))
  }

  /// Prepares only the first statement, as node-sqlite3 does (`db.run("A; B")` runs A).
  pub fn prepare(&self, sql: &str) -> Result<Option<Statement>, Error> {
    Ok(self.prepare_one(sql)?.and_then(|(stmt, _)| stmt))
  }

  pub fn last_insert_rowid(&self) -> i64 {
    // SAFETY: `db` is open for the life of `self`.
    unsafe { ffi::sqlite3_last_insert_rowid(self.db) }
  }

  pub fn total_changes(&self) -> i64 {
    // SAFETY: `db` is open for the life of `self`.
    unsafe { ffi::sqlite3_total_changes64(self.db) }
  }

  /// The database image of schema `main` (`sqlite3_serialize`).
  pub fn serialize(&self) -> Result<Vec<u8>, Error> {
    let mut size: ffi::sqlite3_int64 = 0;
    // SAFETY: `db` is open for the life of `self`. The schema name is a static C string; flags 0
    // make SQLite return a copy that we own (freed below).
    let data = unsafe { ffi::sqlite3_serialize(self.db, c"main".as_ptr(), &mut size, 0) };
    if data.is_null() {
      return Err(Error::sqlite(
        ffi::SQLITE_NOMEM,
        "the database could not be serialized",
      ));
    }
    // SAFETY: `data` is non-null and holds the `size` bytes SQLite wrote; they are copied before it
    // is freed.
    let bytes = unsafe { std::slice::from_raw_parts(data as *const u8, size as usize) }.to_vec();
    // SAFETY: `data` came from sqlite3_serialize (sqlite3_malloc) and is freed once, after the
    // copy.
    unsafe { ffi::sqlite3_free(data.cast()) };
    Ok(bytes)
  }

  pub fn changes(&self) -> i64 {
    // SAFETY: `db` is open for the life of `self`.
    unsafe { ffi::sqlite3_changes64(self.db) }
  }

  pub fn is_autocommit(&self) -> bool {
    // SAFETY: `db` is open for the life of `self`.
    unsafe { ffi::sqlite3_get_autocommit(self.db) != 0 }
  }

  pub fn set_busy_timeout(&self, ms: i32) {
    // SAFETY: `db` is open for the life of `self`.
    unsafe { ffi::sqlite3_busy_timeout(self.db, ms) };
  }

  pub fn set_limit(&self, id: i32, value: i32) {
    // SAFETY: `db` is open for the life of `self`. An unknown limit id is ignored by SQLite.
    unsafe { ffi::sqlite3_limit(self.db, id, value) };
  }

  /// Applies a SQLCipher key and proves it by reading the schema: a wrong key is
  /// `SQLITE_NOTADB` here, never on a later query.
  pub fn apply_key(&self, key: &Key) -> Result<(), Error> {
    self.set_key(key)?;
    self.verify_readable(true)
  }

  /// The first value `sql` (a pragma) answers, as text: `PRAGMA journal_mode` → `"wal"`.
  pub fn pragma_text(&self, sql: &str) -> Result<Option<String>, Error> {
    Ok(match self.first_value(sql)? {
      Some(Value::Text(text)) => Some(text),
      _ => None,
    })
  }

  /// The first column of the first row of a pragma that answers a number
  /// (`wal_checkpoint`'s busy flag), if it has one.
  pub fn pragma_integer(&self, sql: &str) -> Result<Option<i64>, Error> {
    Ok(match self.first_value(sql)? {
      Some(Value::Integer(n)) => Some(n),
      _ => None,
    })
  }

  fn first_value(&self, sql: &str) -> Result<Option<Value>, Error> {
    let Some(mut stmt) = self.prepare(sql)? else {
      return Ok(None);
    };
    if !stmt.advance()? {
      return Ok(None);
    }
    let mut row = Vec::new();
    stmt.read_row(1, &mut row);
    Ok(row.pop())
  }

  /// The value of a boolean pragma (`PRAGMA foreign_keys`…), if it has one.
  pub fn pragma_flag(&self, name: &str) -> Result<Option<bool>, Error> {
    Statement::pragma_flag_of(self, name)
  }

  /// Gives SQLCipher the key without reading the file (a backup's new destination, say).
  pub fn set_key(&self, key: &Key) -> Result<(), Error> {
    let material = key_material(key);
    // SAFETY: `db` is open for the life of `self`; `material` outlives the call, which copies it.
    let rc = unsafe { ffi::sqlite3_key(self.db, material.as_ptr().cast(), material.len() as c_int) };
    if rc != ffi::SQLITE_OK {
      return Err(self.error(rc));
    }
    Ok(())
  }

  /// The connection's last error, for calls that report failure without a code.
  pub fn last_error(&self) -> Error {
    // SAFETY: `db` is open for the life of `self`.
    self.error(unsafe { ffi::sqlite3_errcode(self.db) })
  }

  /// Reads the schema so that an encrypted file opened without (or with the wrong) key fails now.
  pub fn verify_readable(&self, keyed: bool) -> Result<(), Error> {
    match self.execute_batch("SELECT count(*) FROM sqlite_master") {
      Err(e) if e.errno() == ffi::SQLITE_NOTADB => Err(Error::sqlite(
        ffi::SQLITE_NOTADB,
        if keyed {
          "file is not a database: the key is wrong, or the file is not a SQLCipher database"
        } else {
          "file is not a database: it may be encrypted (pass its `key`) or not be a SQLite file"
        },
      )),
      other => other,
    }
  }

  pub fn load_extension(&self, path: &str) -> Result<(), Error> {
    let c_path =
      CString::new(path).map_err(|_| Error::sqlite(ffi::SQLITE_ERROR, "extension path contains NUL"))?;
    let mut err: *mut c_char = ptr::null_mut();
    // SAFETY: `db` is open for the life of `self`. The variadic arguments are the (int, int*) this
    // option takes; `c_path` is NUL-terminated and outlives the call; `err` is a local that SQLite
    // leaves null or sets to a message it allocated (freed below). Loading runs the extension's own
    // native code, which no comment can vouch for: it is as trusted as the path the application
    // passed (node-sqlite3's `loadExtension` has the same contract).
    let rc = unsafe {
      ffi::sqlite3_db_config(
        self.db,
        ffi::SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION,
        1,
        ptr::null_mut::<c_int>(),
      );
      let rc = ffi::sqlite3_load_extension(self.db, c_path.as_ptr(), ptr::null(), &mut err);
      ffi::sqlite3_db_config(
        self.db,
        ffi::SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION,
        0,
        ptr::null_mut::<c_int>(),
      );
      rc
    };
    if rc == ffi::SQLITE_OK {
      return Ok(());
    }
    let message = if err.is_null() {
      errmsg(self.db)
    } else {
      // SAFETY: `err` is non-null, so SQLite set it to a NUL-terminated message; it is copied
      // before it is freed.
      let m = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
      // SAFETY: `err` was allocated by SQLite and is freed once, after the copy.
      unsafe { ffi::sqlite3_free(err.cast()) };
      m
    };
    Err(Error::sqlite(rc, message))
  }

  /// Gives the shapes of its statements ids apart from the engine's. A cluster client's own read
  /// connection answers the same JavaScript receiver as its master does, and that receiver
  /// knows shapes by id (it gets a shape's column names only the first time): the master's ids
  /// come from the master process's count, which this process's count could repeat.
  pub fn set_shapes_apart(&mut self) {
    self.shape_bit = APART;
  }

  /// Stops the running statement (`SQLITE_INTERRUPT`) while `flag` is set. Unlike
  /// `sqlite3_interrupt`, whose flag stays up until no statement of the connection is active
  /// (an open cursor of another session keeps it up), this stops only what runs while the flag
  /// is set, and the engine lowers it when the running session's turn ends.
  pub fn watch_interrupts(&mut self, flag: Arc<AtomicBool>) {
    let ctx = Arc::as_ptr(&flag) as *mut c_void;
    self.interrupted = Some(flag);
    // SAFETY: `db` is open for the life of `self`. `ctx` points at the flag inside `flag`, which
    // `self.interrupted` keeps alive while the handler is registered, and which is freed only after
    // `drop` closed the connection. The previous flag (replaced just above) may be freed already,
    // but the handler runs only inside SQLite calls on this connection, and none runs between the
    // two lines: only this thread makes them, and it is here. The flag is atomic, so other threads
    // may set it while the handler reads it.
    unsafe { ffi::sqlite3_progress_handler(self.db, PROGRESS_OPS, Some(progress_cb), ctx) };
  }

  /// Whether a statement that writes is still active (stepped, not reset; an `INSERT …
  /// RETURNING` read with `get()`, say): its write ends only with that statement.
  pub fn writing(&self) -> bool {
    // SAFETY: `db` is open for the life of `self`. The statements sqlite3_next_stmt walks are this
    // connection's, and stay alive during the walk: only this thread prepares or finalizes them.
    let mut stmt = unsafe { ffi::sqlite3_next_stmt(self.db, ptr::null_mut()) };
    while !stmt.is_null() {
      // SAFETY: `stmt` is a live statement of `db` (as above).
      if unsafe { ffi::sqlite3_stmt_busy(stmt) != 0 && ffi::sqlite3_stmt_readonly(stmt) == 0 } {
        return true;
      }
      // SAFETY: as above; `stmt` is still live.
      stmt = unsafe { ffi::sqlite3_next_stmt(self.db, stmt) };
    }
    false
  }

  pub fn hooked(&self) -> bool {
    self.hooked
  }

  /// Runs `f`, SQL of the engine's own, without the hook events it produces: `trace` and
  /// `profile` report the statements sessions ran, never the engine's questions to SQLite.
  pub fn unobserved<T>(&mut self, f: impl FnOnce(&Connection) -> T) -> T {
    let before = self.hook_events.len();
    let out = f(self);
    self.hook_events.truncate(before);
    out
  }

  /// Events the hooks produced since the last call.
  pub fn take_events(&mut self) -> Vec<Event> {
    if self.hook_events.is_empty() {
      return Vec::new();
    }
    std::mem::take(&mut *self.hook_events)
  }

  /// Turns the trace, profile and update hooks on or off. Trace and profile share one
  /// `sqlite3_trace_v2` registration (the legacy `sqlite3_trace` and `sqlite3_profile` each
  /// switch the other off).
  pub fn set_hooks(&mut self, trace: bool, profile: bool, change: bool) {
    self.hooked = trace || profile || change;
    let ctx: *mut Vec<Event> = &mut *self.hook_events;
    let mask = (if trace { ffi::SQLITE_TRACE_STMT } else { 0 })
      | (if profile { ffi::SQLITE_TRACE_PROFILE } else { 0 });
    // SAFETY: `db` is open for the life of `self`. `ctx` points at the Vec inside `hook_events`, a
    // Box whose content never moves (only the Vec's own buffer does) and is freed only after `drop`
    // closed the connection. The callbacks run only inside SQLite calls on this connection, made by
    // this thread, at moments when no Rust reference to the Vec is live.
    unsafe {
      ffi::sqlite3_trace_v2(
        self.db,
        mask as _,
        if mask != 0 { Some(trace_cb) } else { None },
        ctx.cast(),
      );
      ffi::sqlite3_update_hook(self.db, if change { Some(update_cb) } else { None }, ctx.cast());
    }
  }
}

impl Drop for Connection {
  fn drop(&mut self) {
    // The engine drops (finalizes) every statement before its connection, so the close normally
    // ends the handle at once. Should a statement or a backup outlive it all the same (a panic
    // unwinding the engine drops its fields in declaration order), the hooks' contexts
    // (`hook_events`, the interrupt flag) are freed with `self`: the hooks are removed first, and
    // `sqlite3_close_v2` keeps the handle alive until its last statement or backup ends.
    // SAFETY: `db` is open and closed exactly once, here; removing a hook takes a null callback
    // and context, and nothing else uses the handle on this thread meanwhile.
    unsafe {
      ffi::sqlite3_trace_v2(self.db, 0, None, std::ptr::null_mut());
      ffi::sqlite3_update_hook(self.db, None, std::ptr::null_mut());
      ffi::sqlite3_progress_handler(self.db, 0, None, std::ptr::null_mut());
      sqlite3_close_v2(self.db);
    }
  }
}

// Not in the generated bindings of the bundled SQLCipher, which exports it (SQLite 3.7.14+).
extern "C" {
  fn sqlite3_close_v2(db: *mut ffi::sqlite3) -> c_int;
}

/// `SQLITE_TRACE_STMT`: the statement's text with its parameters expanded (as the legacy
/// `sqlite3_trace` reports it; trigger bodies come as `-- TRIGGER …` comments, unexpanded).
/// `SQLITE_TRACE_PROFILE`: the statement's text as written and its run time.
/// Virtual machine steps between two looks at the interrupt flag.
const PROGRESS_OPS: c_int = 1000;

/// What SQLCipher is given for `key`: a passphrase as it is, a raw key as `x'<hex>'`.
pub fn key_material(key: &Key) -> Vec<u8> {
  match key {
    Key::Raw(bytes) => {
      let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
      format!("x'{hex}'").into_bytes()
    }
    Key::Passphrase(p) => p.as_bytes().to_vec(),
  }
}

/// # Safety
///
/// Called by SQLite only (registered by `Connection::watch_interrupts`): `ctx` must point at a live
/// `AtomicBool`, the one the connection's `interrupted` holds.
unsafe extern "C" fn progress_cb(ctx: *mut c_void) -> c_int {
  // SAFETY: `ctx` is that flag (see the contract above); only a shared reference is made, and the
  // flag is atomic.
  c_int::from(unsafe { &*(ctx as *const AtomicBool) }.load(Ordering::Relaxed))
}

/// # Safety
///
/// Called by SQLite only (registered by `Connection::set_hooks`), with the arguments
/// `sqlite3_trace_v2` documents: `ctx` the connection's live `hook_events` Vec, with no other
/// reference to it live; `p` the statement; `x` its unexpanded SQL text (`SQLITE_TRACE_STMT`) or a
/// pointer to its run time in nanoseconds (`SQLITE_TRACE_PROFILE`).
unsafe extern "C" fn trace_cb(
  kind: std::ffi::c_uint,
  ctx: *mut c_void,
  p: *mut c_void,
  x: *mut c_void,
) -> c_int {
  if ctx.is_null() || p.is_null() {
    return 0;
  }
  // SAFETY: `ctx` is the Vec of `hook_events` (this function's contract): alive while the
  // connection is, and not otherwise borrowed during a SQLite call.
  let events = unsafe { &mut *(ctx as *mut Vec<Event>) };
  let stmt = p as *mut ffi::sqlite3_stmt;
  let text = |c: *const c_char| {
    if c.is_null() {
      String::new()
    } else {
      // SAFETY: `c` is non-null and one of SQLite's NUL-terminated strings, valid during the
      // callback; it is copied at once.
      unsafe { CStr::from_ptr(c) }.to_string_lossy().into_owned()
    }
  };
  match kind {
    ffi::SQLITE_TRACE_STMT => {
      let raw = x as *const c_char;
      // SAFETY: for `SQLITE_TRACE_STMT`, non-null `x` is the statement's NUL-terminated SQL text
      // (or a trigger's comment), valid during the callback.
      let sql = if !raw.is_null() && unsafe { CStr::from_ptr(raw) }.to_bytes().starts_with(b"--") {
        text(raw)
      } else {
        // SAFETY: `stmt` is the statement being traced, live during the callback; the expanded text
        // is SQLite's allocation (or null), freed below.
        let expanded = unsafe { ffi::sqlite3_expanded_sql(stmt) };
        let sql = if expanded.is_null() {
          text(raw)
        } else {
          text(expanded)
        };
        // SAFETY: `expanded` came from sqlite3_expanded_sql and is freed once, after the copy;
        // sqlite3_free(NULL) does nothing.
        unsafe { ffi::sqlite3_free(expanded.cast()) };
        sql
      };
      events.push(Event::Trace(sql));
    }
    ffi::SQLITE_TRACE_PROFILE => {
      let nanos = if x.is_null() {
        0
      } else {
        // SAFETY: for `SQLITE_TRACE_PROFILE`, non-null `x` points at the statement's run time, an
        // i64 in nanoseconds.
        unsafe { *(x as *const i64) }.max(0) as u64
      };
      events.push(Event::Profile {
        // SAFETY: `stmt` is live during the callback, and so is its SQL text, which `text` copies.
        sql: text(unsafe { ffi::sqlite3_sql(stmt) }),
        nanos,
      });
    }
    _ => {}
  }
  0
}

/// # Safety
///
/// Called by SQLite only (registered by `Connection::set_hooks`): `ctx` the connection's live
/// `hook_events` Vec, with no other reference to it live; `database` and `table` NUL-terminated
/// names valid during the call.
unsafe extern "C" fn update_cb(
  ctx: *mut c_void,
  op: c_int,
  database: *const c_char,
  table: *const c_char,
  rowid: i64,
) {
  if ctx.is_null() {
    return;
  }
  let kind = match op {
    ffi::SQLITE_INSERT => ChangeKind::Insert,
    ffi::SQLITE_UPDATE => ChangeKind::Update,
    ffi::SQLITE_DELETE => ChangeKind::Delete,
    _ => return,
  };
  let text = |p: *const c_char| {
    if p.is_null() {
      String::new()
    } else {
      // SAFETY: `p` is non-null, one of SQLite's NUL-terminated names, valid during the callback;
      // it is copied at once.
      unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
  };
  // SAFETY: as in `trace_cb`: `ctx` is the live Vec of `hook_events`, not otherwise borrowed during
  // the call.
  let events = unsafe { &mut *(ctx as *mut Vec<Event>) };
  events.push(Event::Change {
    kind,
    database: text(database),
    table: text(table),
    rowid,
  });
}

fn errmsg(db: *mut ffi::sqlite3) -> String {
  // SAFETY: callers (all in this module) pass an open handle: `self.db`, or a statement's
  // connection. The message stays valid until the next call on `db` and is copied at once.
  unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) }
    .to_string_lossy()
    .into_owned()
}

fn errstr(rc: c_int) -> String {
  // SAFETY: sqlite3_errstr returns a static string for every code.
  unsafe { CStr::from_ptr(ffi::sqlite3_errstr(rc)) }
    .to_string_lossy()
    .into_owned()
}

/// A prepared statement with node-sqlite3's cursor state.
pub struct Statement {
  raw: *mut ffi::sqlite3_stmt,
  shape: Option<Arc<Shape>>,
  shape_bit: u32,
  /// The last step returned `SQLITE_DONE` (a parameterless `get()` then stays at the end).
  pub done: bool,
  /// The result of the last operation (step, reset, bind), which node-sqlite3 reports from a
  /// parameterless `bind()` when it is `SQLITE_ROW` or `SQLITE_DONE`.
  pub status: c_int,
  /// A plain query: read-only, returns columns, and its SQL starts with `SELECT`, `WITH` or
  /// `VALUES` (no pragma, no transaction control). Such statements may share a read group.
  pub query: bool,
  /// Its SQL names a pragma: it may change a per-Database setting (see `settings`).
  pub pragma: bool,
  /// Its SQL may change the connection's local state (see `local_state`).
  pub local: bool,
}

// SAFETY: as for `Connection`: a statement lives on the thread of its connection (the engine
// thread or a reader thread), and is finalized there, before the connection closes.
unsafe impl Send for Statement {}

impl Statement {
  fn new(raw: *mut ffi::sqlite3_stmt, shape_bit: u32) -> Self {
    // SAFETY: `raw` is a statement just prepared; its SQL text lives as long as it does.
    let text = unsafe {
      let text = ffi::sqlite3_sql(raw);
      (!text.is_null()).then(|| std::ffi::CStr::from_ptr(text).to_str().unwrap_or(""))
    }
    .unwrap_or("");
    // SAFETY: as above.
    let query = unsafe { ffi::sqlite3_stmt_readonly(raw) != 0 && ffi::sqlite3_column_count(raw) > 0 }
      && super::is_query(text);
    Statement {
      raw,
      shape: None,
      shape_bit,
      done: false,
      status: ffi::SQLITE_OK,
      query,
      pragma: super::settings::may_set(text),
      local: super::local_state::may_change(text),
    }
  }

  /// The value of a boolean pragma (`PRAGMA foreign_keys`…), if it has one.
  pub fn pragma_flag_of(conn: &Connection, name: &str) -> Result<Option<bool>, Error> {
    let Some(mut stmt) = conn.prepare(&format!("PRAGMA {name}"))? else {
      return Ok(None);
    };
    if !stmt.advance()? {
      return Ok(None);
    }
    let mut row = Vec::new();
    stmt.read_row(1, &mut row);
    Ok(match row.first() {
      Some(Value::Integer(v)) => Some(*v != 0),
      _ => None,
    })
  }

  fn db(&self) -> *mut ffi::sqlite3 {
    // SAFETY: `raw` is live for the life of `self`. `Statement`s are finalized only in `drop`,
    // before their connection closes.
    unsafe { ffi::sqlite3_db_handle(self.raw) }
  }

  fn error(&self, rc: c_int) -> Error {
    Error::sqlite(rc, errmsg(self.db()))
  }

  pub fn readonly(&self) -> bool {
    // SAFETY: `raw` is live for the life of `self`.
    unsafe { ffi::sqlite3_stmt_readonly(self.raw) != 0 }
  }

  /// The position of a parameter (0 when the statement has no such name).
  fn parameter_index(&self, key: &ParamKey) -> c_int {
    match key {
      ParamKey::Index(i) => *i,
      ParamKey::Name(name) => match CString::new(name.as_str()) {
        // SAFETY: `raw` is live for the life of `self`. `c` is NUL-terminated and outlives the
        // call.
        Ok(c) => unsafe { ffi::sqlite3_bind_parameter_index(self.raw, c.as_ptr()) },
        Err(_) => 0,
      },
    }
  }

  pub fn parameter_count(&self) -> c_int {
    // SAFETY: `raw` is live for the life of `self`.
    unsafe { ffi::sqlite3_bind_parameter_count(self.raw) }
  }

  pub fn column_count(&self) -> usize {
    // SAFETY: `raw` is live for the life of `self`.
    unsafe { ffi::sqlite3_column_count(self.raw) as usize }
  }

  /// Binds like oo1's `Stmt.bind`: positions must exist ("Bind index N is out of range.") and
  /// names must name a parameter, prefix included ("Invalid bind() parameter name: a").
  pub fn bind_strict(&mut self, params: &Params) -> Result<(), Error> {
    use crate::protocol::SCRIPT_ERROR;
    let count = self.parameter_count();
    match params {
      Params::None => Ok(()),
      Params::Positional(values) => {
        for (i, value) in values.iter().enumerate() {
          let index = i as c_int + 1;
          if index > count {
            return Err(Error::sqlite(
              SCRIPT_ERROR,
              format!("Bind index {index} is out of range."),
            ));
          }
          self.bind_one(index, value)?;
        }
        Ok(())
      }
      Params::Named(pairs) => {
        for (key, value) in pairs {
          let index = self.parameter_index(key);
          if index < 1 || index > count {
            let shown = match key {
              ParamKey::Index(i) => i.to_string(),
              ParamKey::Name(name) => name.clone(),
            };
            return Err(Error::sqlite(
              SCRIPT_ERROR,
              format!("Invalid bind() parameter name: {shown}"),
            ));
          }
          self.bind_one(index, value)?;
        }
        Ok(())
      }
    }
  }

  /// The SQL text the statement was prepared from.
  pub fn sql(&self) -> String {
    // SAFETY: `raw` is live for the life of `self`.
    let text = unsafe { ffi::sqlite3_sql(self.raw) };
    if text.is_null() {
      return String::new();
    }
    // SAFETY: `text` is non-null and NUL-terminated, and lives as long as the statement; it is
    // copied at once.
    unsafe { std::ffi::CStr::from_ptr(text) }
      .to_string_lossy()
      .into_owned()
  }

  pub fn step(&mut self) -> c_int {
    // SAFETY: `raw` is live for the life of `self`. Stepping it runs the connection's hooks, whose
    // contexts the connection keeps alive (see `set_hooks`).
    let rc = unsafe { ffi::sqlite3_step(self.raw) };
    self.done = rc == ffi::SQLITE_DONE;
    self.status = rc;
    rc
  }

  /// Steps once; `Ok(true)` when a row is ready.
  pub fn advance(&mut self) -> Result<bool, Error> {
    match self.step() {
      ffi::SQLITE_ROW => Ok(true),
      ffi::SQLITE_DONE => Ok(false),
      rc => {
        // The step's code is the precise one; reset so the statement is reusable.
        let e = self.error(rc);
        // SAFETY: `raw` is live for the life of `self`.
        unsafe { ffi::sqlite3_reset(self.raw) };
        Err(e)
      }
    }
  }

  pub fn reset(&mut self) {
    // SAFETY: `raw` is live for the life of `self`.
    unsafe { ffi::sqlite3_reset(self.raw) };
    self.done = false;
    self.status = ffi::SQLITE_OK;
  }

  pub fn clear_bindings(&mut self) {
    // SAFETY: `raw` is live for the life of `self`.
    unsafe { ffi::sqlite3_clear_bindings(self.raw) };
  }

  /// Rebinds from scratch (reset, clear, bind) when parameters are given; keeps the existing
  /// bindings when they are not.
  pub fn bind(&mut self, params: &Params) -> Result<(), Error> {
    match params {
      Params::None => Ok(()),
      Params::Positional(values) => {
        self.reset();
        self.clear_bindings();
        for (i, value) in values.iter().enumerate() {
          self.bind_one(i as c_int + 1, value)?;
        }
        Ok(())
      }
      Params::Named(pairs) => {
        self.reset();
        self.clear_bindings();
        for (key, value) in pairs {
          let index = self.parameter_index(key);
          self.bind_one(index, value)?;
        }
        Ok(())
      }
    }
  }

  fn bind_one(&mut self, index: c_int, value: &Bind) -> Result<(), Error> {
    let value = match value {
      Bind::Skip => return Ok(()),
      Bind::Value(v) => v,
    };
    // SAFETY: `raw` is live for the life of `self`. `SQLITE_TRANSIENT` makes SQLite copy text and
    // blobs before returning, so the borrowed pointers need only outlive the call; `s` is UTF-8 and
    // passed with its exact length. An empty blob passes a one-byte array (alive until the end of
    // this statement), since a null pointer would bind NULL, not an empty blob.
    let rc = unsafe {
      match value {
        Value::Null => ffi::sqlite3_bind_null(self.raw, index),
        Value::Integer(i) => ffi::sqlite3_bind_int64(self.raw, index, *i),
        Value::Real(f) => ffi::sqlite3_bind_double(self.raw, index, *f),
        Value::Text(s) => ffi::sqlite3_bind_text64(
          self.raw,
          index,
          s.as_ptr().cast(),
          s.len() as u64,
          ffi::SQLITE_TRANSIENT(),
          ffi::SQLITE_UTF8 as u8,
        ),
        Value::Blob(b) => ffi::sqlite3_bind_blob64(
          self.raw,
          index,
          if b.is_empty() {
            [0u8; 1].as_ptr().cast()
          } else {
            b.as_ptr().cast()
          },
          b.len() as u64,
          ffi::SQLITE_TRANSIENT(),
        ),
      }
    };
    match rc {
      ffi::SQLITE_OK => Ok(()),
      ffi::SQLITE_RANGE => Err(Error::sqlite(ffi::SQLITE_RANGE, "column index out of range")),
      rc => Err(self.error(rc)),
    }
  }

  /// The column names, computed once per statement (and again if the column count changes
  /// after a schema change).
  pub fn shape(&mut self) -> Arc<Shape> {
    // SAFETY: `raw` is live for the life of `self`.
    let count = unsafe { ffi::sqlite3_column_count(self.raw) } as usize;
    if let Some(shape) = &self.shape {
      if shape.columns.len() == count {
        return shape.clone();
      }
    }
    let columns = (0..count)
      .map(|i| {
        // SAFETY: `raw` is live for the life of `self`. `i` is below its column count.
        let name = unsafe { ffi::sqlite3_column_name(self.raw, i as c_int) };
        if name.is_null() {
          String::new()
        } else {
          // SAFETY: `name` is non-null and NUL-terminated, valid until the statement is re-prepared
          // or asked again; it is copied at once.
          unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned()
        }
      })
      .collect();
    let shape = Arc::new(Shape {
      id: NEXT_SHAPE.fetch_add(1, Ordering::Relaxed) & !APART | self.shape_bit,
      columns,
    });
    self.shape = Some(shape.clone());
    shape
  }

  /// Appends the current row's values to `out`.
  pub fn read_row(&self, columns: usize, out: &mut Vec<Value>) {
    for i in 0..columns as c_int {
      // SAFETY: the engine reads a row right after `advance()` returned one, with the width
      // `shape()` gave. SQLite documents a read with no current row or past the last column as
      // undefined; its implementation (`columnMem`) checks both and reads NULL, which is what a
      // stale width (the statement re-prepared with fewer columns by that step) would get.
      out.push(unsafe { self.column(i) });
    }
  }

  /// # Safety
  ///
  /// The statement must have a current row (its last step returned `SQLITE_ROW`, and it was not
  /// reset since) and `i` must be below its column count: SQLite documents anything else as
  /// undefined.
  unsafe fn column(&self, i: c_int) -> Value {
    // SAFETY: `raw` is live for the life of `self`. There is a row and `i` is in range (this
    // function's contract). `sqlite3_column_text`/`_blob` come before `sqlite3_column_bytes`, as
    // SQLite advises, and their buffers (valid until the next step, reset or type conversion) are
    // copied before returning.
    unsafe {
      match ffi::sqlite3_column_type(self.raw, i) {
        ffi::SQLITE_INTEGER => Value::Integer(ffi::sqlite3_column_int64(self.raw, i)),
        ffi::SQLITE_FLOAT => Value::Real(ffi::sqlite3_column_double(self.raw, i)),
        ffi::SQLITE_TEXT => {
          let p = ffi::sqlite3_column_text(self.raw, i);
          let n = ffi::sqlite3_column_bytes(self.raw, i) as usize;
          let bytes = if p.is_null() {
            &[][..]
          } else {
            std::slice::from_raw_parts(p, n)
          };
          Value::Text(match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
          })
        }
        ffi::SQLITE_BLOB => {
          let p = ffi::sqlite3_column_blob(self.raw, i) as *const u8;
          let n = ffi::sqlite3_column_bytes(self.raw, i) as usize;
          Value::Blob(if p.is_null() {
            Vec::new()
          } else {
            std::slice::from_raw_parts(p, n).to_vec()
          })
        }
        _ => Value::Null,
      }
    }
  }
}

impl Drop for Statement {
  fn drop(&mut self) {
    // SAFETY: `raw` is live and finalized exactly once, here, while its connection is still open:
    // the engine drops every statement before the connection (see `Connection::drop`).
    unsafe { ffi::sqlite3_finalize(self.raw) };
  }
}
