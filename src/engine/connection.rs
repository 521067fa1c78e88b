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
}

// SAFETY: a Connection is created on one thread and then moved to the engine thread, which is
// the only one that uses it (other threads stop statements through the `interrupted` flag, never
// through the handle). SQLite is built threadsafe, so moving the handle between threads is
// allowed; it is never used from two threads at once.
unsafe impl Send for Connection {}

impl Connection {
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
    let rc = unsafe { ffi::sqlite3_open_v2(c_name.as_ptr(), &mut db, flags, ptr::null()) };
    if rc != ffi::SQLITE_OK {
      let error = if db.is_null() {
        Error::sqlite(rc, errstr(rc))
      } else {
        let e = Error::sqlite(rc, errmsg(db));
        unsafe { ffi::sqlite3_close(db) };
        e
      };
      return Err(error);
    }
    unsafe {
      ffi::sqlite3_extended_result_codes(db, 1);
      ffi::sqlite3_busy_timeout(db, busy_timeout_ms);
    }
    Ok(Connection {
      db,
      hook_events: Box::new(Vec::new()),
      hooked: false,
      interrupted: None,
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
      Some(Statement::new(raw))
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
    unsafe { ffi::sqlite3_last_insert_rowid(self.db) }
  }

  pub fn total_changes(&self) -> i64 {
    unsafe { ffi::sqlite3_total_changes64(self.db) }
  }

  /// The database image of schema `main` (`sqlite3_serialize`).
  pub fn serialize(&self) -> Result<Vec<u8>, Error> {
    let mut size: ffi::sqlite3_int64 = 0;
    let data = unsafe { ffi::sqlite3_serialize(self.db, c"main".as_ptr(), &mut size, 0) };
    if data.is_null() {
      return Err(Error::sqlite(
        ffi::SQLITE_NOMEM,
        "the database could not be serialized",
      ));
    }
    let bytes = unsafe { std::slice::from_raw_parts(data as *const u8, size as usize) }.to_vec();
    unsafe { ffi::sqlite3_free(data.cast()) };
    Ok(bytes)
  }

  pub fn changes(&self) -> i64 {
    unsafe { ffi::sqlite3_changes64(self.db) }
  }

  pub fn is_autocommit(&self) -> bool {
    unsafe { ffi::sqlite3_get_autocommit(self.db) != 0 }
  }

  pub fn set_busy_timeout(&self, ms: i32) {
    unsafe { ffi::sqlite3_busy_timeout(self.db, ms) };
  }

  pub fn set_limit(&self, id: i32, value: i32) {
    unsafe { ffi::sqlite3_limit(self.db, id, value) };
  }

  /// Applies a SQLCipher key and proves it by reading the schema: a wrong key is
  /// `SQLITE_NOTADB` here, never on a later query.
  pub fn apply_key(&self, key: &Key) -> Result<(), Error> {
    self.set_key(key)?;
    self.verify_readable(true)
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
      let m = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
      unsafe { ffi::sqlite3_free(err.cast()) };
      m
    };
    Err(Error::sqlite(rc, message))
  }

  /// Stops the running statement (`SQLITE_INTERRUPT`) while `flag` is set. Unlike
  /// `sqlite3_interrupt`, whose flag stays up until no statement of the connection is active
  /// (an open cursor of another session keeps it up), this stops only what runs while the flag
  /// is set, and the engine lowers it when the running session's turn ends.
  pub fn watch_interrupts(&mut self, flag: Arc<AtomicBool>) {
    let ctx = Arc::as_ptr(&flag) as *mut c_void;
    self.interrupted = Some(flag);
    unsafe { ffi::sqlite3_progress_handler(self.db, PROGRESS_OPS, Some(progress_cb), ctx) };
  }

  /// Whether a statement that writes is still active (stepped, not reset; an `INSERT …
  /// RETURNING` read with `get()`, say): its write ends only with that statement.
  pub fn writing(&self) -> bool {
    let mut stmt = unsafe { ffi::sqlite3_next_stmt(self.db, ptr::null_mut()) };
    while !stmt.is_null() {
      if unsafe { ffi::sqlite3_stmt_busy(stmt) != 0 && ffi::sqlite3_stmt_readonly(stmt) == 0 } {
        return true;
      }
      stmt = unsafe { ffi::sqlite3_next_stmt(self.db, stmt) };
    }
    false
  }

  pub fn hooked(&self) -> bool {
    self.hooked
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
    // Every statement is owned by a `Statement` that the engine drops (finalizes) before the
    // connection, so a plain close succeeds.
    unsafe { ffi::sqlite3_close(self.db) };
  }
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

unsafe extern "C" fn progress_cb(ctx: *mut c_void) -> c_int {
  c_int::from(unsafe { &*(ctx as *const AtomicBool) }.load(Ordering::Relaxed))
}

unsafe extern "C" fn trace_cb(
  kind: std::ffi::c_uint,
  ctx: *mut c_void,
  p: *mut c_void,
  x: *mut c_void,
) -> c_int {
  if ctx.is_null() || p.is_null() {
    return 0;
  }
  let events = unsafe { &mut *(ctx as *mut Vec<Event>) };
  let stmt = p as *mut ffi::sqlite3_stmt;
  let text = |c: *const c_char| {
    if c.is_null() {
      String::new()
    } else {
      unsafe { CStr::from_ptr(c) }.to_string_lossy().into_owned()
    }
  };
  match kind {
    ffi::SQLITE_TRACE_STMT => {
      let raw = x as *const c_char;
      let sql = if !raw.is_null() && unsafe { CStr::from_ptr(raw) }.to_bytes().starts_with(b"--") {
        text(raw)
      } else {
        let expanded = unsafe { ffi::sqlite3_expanded_sql(stmt) };
        let sql = if expanded.is_null() {
          text(raw)
        } else {
          text(expanded)
        };
        unsafe { ffi::sqlite3_free(expanded.cast()) };
        sql
      };
      events.push(Event::Trace(sql));
    }
    ffi::SQLITE_TRACE_PROFILE => {
      let nanos = if x.is_null() {
        0
      } else {
        unsafe { *(x as *const i64) }.max(0) as u64
      };
      events.push(Event::Profile {
        sql: text(unsafe { ffi::sqlite3_sql(stmt) }),
        nanos,
      });
    }
    _ => {}
  }
  0
}

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
      unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
  };
  let events = unsafe { &mut *(ctx as *mut Vec<Event>) };
  events.push(Event::Change {
    kind,
    database: text(database),
    table: text(table),
    rowid,
  });
}

fn errmsg(db: *mut ffi::sqlite3) -> String {
  unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) }
    .to_string_lossy()
    .into_owned()
}

fn errstr(rc: c_int) -> String {
  unsafe { CStr::from_ptr(ffi::sqlite3_errstr(rc)) }
    .to_string_lossy()
    .into_owned()
}

/// A prepared statement with node-sqlite3's cursor state.
pub struct Statement {
  raw: *mut ffi::sqlite3_stmt,
  shape: Option<Arc<Shape>>,
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
}

// SAFETY: as for `Connection`: a statement lives on the engine thread with its connection, and
// is finalized there, before the connection closes.
unsafe impl Send for Statement {}

impl Statement {
  fn new(raw: *mut ffi::sqlite3_stmt) -> Self {
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
      done: false,
      status: ffi::SQLITE_OK,
      query,
      pragma: super::settings::may_set(text),
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
    unsafe { ffi::sqlite3_db_handle(self.raw) }
  }

  fn error(&self, rc: c_int) -> Error {
    Error::sqlite(rc, errmsg(self.db()))
  }

  pub fn readonly(&self) -> bool {
    unsafe { ffi::sqlite3_stmt_readonly(self.raw) != 0 }
  }

  /// The position of a parameter (0 when the statement has no such name).
  fn parameter_index(&self, key: &ParamKey) -> c_int {
    match key {
      ParamKey::Index(i) => *i,
      ParamKey::Name(name) => match CString::new(name.as_str()) {
        Ok(c) => unsafe { ffi::sqlite3_bind_parameter_index(self.raw, c.as_ptr()) },
        Err(_) => 0,
      },
    }
  }

  pub fn parameter_count(&self) -> c_int {
    unsafe { ffi::sqlite3_bind_parameter_count(self.raw) }
  }

  pub fn column_count(&self) -> usize {
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
    let text = unsafe { ffi::sqlite3_sql(self.raw) };
    if text.is_null() {
      return String::new();
    }
    unsafe { std::ffi::CStr::from_ptr(text) }
      .to_string_lossy()
      .into_owned()
  }

  pub fn step(&mut self) -> c_int {
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
        unsafe { ffi::sqlite3_reset(self.raw) };
        Err(e)
      }
    }
  }

  pub fn reset(&mut self) {
    unsafe { ffi::sqlite3_reset(self.raw) };
    self.done = false;
    self.status = ffi::SQLITE_OK;
  }

  pub fn clear_bindings(&mut self) {
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
    let count = unsafe { ffi::sqlite3_column_count(self.raw) } as usize;
    if let Some(shape) = &self.shape {
      if shape.columns.len() == count {
        return shape.clone();
      }
    }
    let columns = (0..count)
      .map(|i| {
        let name = unsafe { ffi::sqlite3_column_name(self.raw, i as c_int) };
        if name.is_null() {
          String::new()
        } else {
          unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned()
        }
      })
      .collect();
    let shape = Arc::new(Shape {
      id: NEXT_SHAPE.fetch_add(1, Ordering::Relaxed),
      columns,
    });
    self.shape = Some(shape.clone());
    shape
  }

  /// Appends the current row's values to `out`.
  pub fn read_row(&self, columns: usize, out: &mut Vec<Value>) {
    for i in 0..columns as c_int {
      out.push(unsafe { self.column(i) });
    }
  }

  unsafe fn column(&self, i: c_int) -> Value {
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
    unsafe { ffi::sqlite3_finalize(self.raw) };
  }
}
