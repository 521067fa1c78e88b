//! JavaScript values ↔ SQL values and responses, with raw N-API calls (this is the hot path).
//!
//! `lib/values.js` has already reduced exotic objects (Date, RegExp, typed arrays, …) to
//! strings, numbers and Buffers; what arrives here is a primitive or a Buffer.
//!
//! # Safety
//!
//! Every `unsafe fn` here has one contract, for its caller to keep: it runs on the JavaScript
//! thread of `env`, during a call from JavaScript (a `#[napi]` method, or the outbox's `call_js`),
//! so `env` is live and a handle scope is open; and every `napi_value` it is given is a handle from
//! that scope. N-API checks each value's type itself: a value of the wrong type is an error status
//! (returned as `Err`), not undefined behaviour.

use std::ffi::c_char;
use std::ptr;

use napi::sys;

use crate::error::Error;
use crate::protocol::{Event, Key, Outgoing, Response, Rows, ScriptResult, SCRIPT_ERROR};
use crate::value::{Bind, ParamKey, Params, Value};

pub type JsResult<T> = Result<T, String>;

macro_rules! call {
  ($e:expr) => {{
    let status = $e;
    if status != sys::Status::napi_ok {
      return Err(format!("N-API call failed with status {status}"));
    }
  }};
}

/// # Safety
///
/// `env` and the values given must meet this module's N-API contract (module docs).
pub unsafe fn type_of(env: sys::napi_env, v: sys::napi_value) -> JsResult<sys::napi_valuetype> {
  let mut t = 0;
  // SAFETY: the module's N-API contract; `t` is a local the call writes.
  call!(unsafe { sys::napi_typeof(env, v, &mut t) });
  Ok(t)
}

/// # Safety
///
/// `env` and the values given must meet this module's N-API contract (module docs).
pub unsafe fn string(env: sys::napi_env, v: sys::napi_value) -> JsResult<String> {
  let mut len = 0usize;
  // SAFETY: the module's N-API contract; a null buffer asks only for the length in bytes, into the
  // local `len`.
  call!(unsafe { sys::napi_get_value_string_utf8(env, v, ptr::null_mut(), 0, &mut len) });
  let mut buf: Vec<u8> = Vec::with_capacity(len + 1);
  let mut written = 0usize;
  // SAFETY: the module's N-API contract; `buf` has room for `len + 1` bytes, the text and its NUL,
  // and N-API writes no more.
  call!(unsafe { sys::napi_get_value_string_utf8(env, v, buf.as_mut_ptr().cast(), len + 1, &mut written) });
  // SAFETY: N-API initialized the first `written` bytes (the NUL not counted); `written <= len`,
  // within the capacity.
  unsafe { buf.set_len(written) };
  // N-API writes valid UTF-8 (lone surrogates become U+FFFD, as in node-sqlite3).
  Ok(String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// # Safety
///
/// `env` and the values given must meet this module's N-API contract (module docs).
unsafe fn number(env: sys::napi_env, v: sys::napi_value) -> JsResult<f64> {
  let mut n = 0.0;
  // SAFETY: the module's N-API contract; `n` is a local the call writes.
  call!(unsafe { sys::napi_get_value_double(env, v, &mut n) });
  Ok(n)
}

/// The bytes of a Buffer (or any typed array), if `v` is one.
///
/// # Safety
///
/// `env` and the values given must meet this module's N-API contract (module docs).
pub unsafe fn bytes(env: sys::napi_env, v: sys::napi_value) -> JsResult<Option<Vec<u8>>> {
  let mut is_buffer = false;
  // SAFETY: the module's N-API contract; `is_buffer` is a local the call writes.
  call!(unsafe { sys::napi_is_buffer(env, v, &mut is_buffer) });
  if is_buffer {
    let mut data = ptr::null_mut();
    let mut len = 0usize;
    // SAFETY: the module's N-API contract; `v` is a Buffer or typed array (checked above); `data`
    // and `len` are locals.
    call!(unsafe { sys::napi_get_buffer_info(env, v, &mut data, &mut len) });
    let slice = if data.is_null() || len == 0 {
      &[][..]
    } else {
      // SAFETY: `data` points at the `len` bytes of that Buffer, which `v` keeps alive in this
      // scope; no JavaScript runs (so nothing can detach it) before they are copied below.
      unsafe { std::slice::from_raw_parts(data as *const u8, len) }
    };
    return Ok(Some(slice.to_vec()));
  }
  Ok(None)
}

/// One parameter value, by node-sqlite3's rules: int32 → INTEGER, other numbers → REAL,
/// booleans → 1/0, `undefined`/BigInt/Symbol → left unbound.
///
/// # Safety
///
/// `env` and the values given must meet this module's N-API contract (module docs).
pub unsafe fn bind_value(env: sys::napi_env, v: sys::napi_value, exact: bool) -> JsResult<Bind> {
  // SAFETY: this function's contract is its callees', given the same `env` and `v`.
  Ok(Bind::Value(match unsafe { type_of(env, v)? } {
    // SAFETY: as above.
    sys::ValueType::napi_string => Value::Text(unsafe { string(env, v)? }),
    // Worker1 (`exact`): integral numbers and BigInt bind as 64-bit integers.
    sys::ValueType::napi_number if exact => {
      // SAFETY: as above.
      let n = unsafe { number(env, v)? };
      if n.fract() == 0.0 && n.abs() < 9.2e18 {
        Value::Integer(n as i64)
      } else {
        Value::Real(n)
      }
    }
    sys::ValueType::napi_bigint if exact => {
      let (mut i, mut lossless) = (0i64, false);
      // SAFETY: the module's N-API contract; `v` is a BigInt; `i` and `lossless` are locals the
      // call writes.
      call!(unsafe { sys::napi_get_value_bigint_int64(env, v, &mut i, &mut lossless) });
      Value::Integer(i)
    }
    sys::ValueType::napi_number => {
      // SAFETY: as above.
      let n = unsafe { number(env, v)? };
      if n == (n as i32) as f64 {
        Value::Integer(n as i32 as i64)
      } else if n.is_nan() {
        Value::Null
      } else {
        Value::Real(n)
      }
    }
    sys::ValueType::napi_boolean => {
      let mut b = false;
      // SAFETY: the module's N-API contract; `v` is a boolean; `b` is a local the call writes.
      call!(unsafe { sys::napi_get_value_bool(env, v, &mut b) });
      Value::Integer(b as i64)
    }
    sys::ValueType::napi_null => Value::Null,
    sys::ValueType::napi_undefined | sys::ValueType::napi_bigint | sys::ValueType::napi_symbol => {
      return Ok(Bind::Skip)
    }
    // SAFETY: as above.
    _ => match unsafe { bytes(env, v)? } {
      Some(b) => Value::Blob(b),
      None => Value::Text("[object Object]".into()),
    },
  }))
}

/// # Safety
///
/// `env` and the values given must meet this module's N-API contract (module docs).
unsafe fn array_len(env: sys::napi_env, v: sys::napi_value) -> JsResult<u32> {
  let mut len = 0u32;
  // SAFETY: the module's N-API contract; `len` is a local the call writes (a non-array is an error
  // status).
  call!(unsafe { sys::napi_get_array_length(env, v, &mut len) });
  Ok(len)
}

/// # Safety
///
/// `env` and the values given must meet this module's N-API contract (module docs).
unsafe fn element(env: sys::napi_env, v: sys::napi_value, i: u32) -> JsResult<sys::napi_value> {
  let mut out = ptr::null_mut();
  // SAFETY: the module's N-API contract; `out` is a local; the element's handle belongs to the
  // caller's scope.
  call!(unsafe { sys::napi_get_element(env, v, i, &mut out) });
  Ok(out)
}

/// `values` undefined → no parameters; `names` undefined → positional; otherwise `names[i]`
/// (a string with its prefix, or a position) goes with `values[i]`.
///
/// # Safety
///
/// `env` and the values given must meet this module's N-API contract (module docs).
pub unsafe fn params(
  env: sys::napi_env,
  values: sys::napi_value,
  names: sys::napi_value,
) -> JsResult<Params> {
  // SAFETY: this function's contract is `params_as`'s.
  unsafe { params_as(env, values, names, false) }
}

/// `params` with Worker1's value rules when `exact` (see `bind_value`).
///
/// # Safety
///
/// `env` and the values given must meet this module's N-API contract (module docs).
pub unsafe fn params_as(
  env: sys::napi_env,
  values: sys::napi_value,
  names: sys::napi_value,
  exact: bool,
) -> JsResult<Params> {
  // SAFETY: this function's contract is that of the functions it calls, with the same `env`;
  // `values` and `names` are handles of its caller's scope, and so are the elements read from them.
  if unsafe { type_of(env, values)? } != sys::ValueType::napi_object {
    return Ok(Params::None);
  }
  // SAFETY: as above.
  let len = unsafe { array_len(env, values)? };
  if len == 0 && !exact {
    // node-sqlite3 binds nothing for `[]` or `{}`: the statement keeps its values, and a
    // `get()` goes on from its last row.
    return Ok(Params::None);
  }
  let mut binds = Vec::with_capacity(len as usize);
  for i in 0..len {
    // SAFETY: as above.
    binds.push(unsafe { bind_value(env, element(env, values, i)?, exact)? });
  }
  // SAFETY: as above.
  if unsafe { type_of(env, names)? } != sys::ValueType::napi_object {
    return Ok(Params::Positional(binds));
  }
  let mut pairs = Vec::with_capacity(binds.len());
  for (i, bind) in binds.into_iter().enumerate() {
    // SAFETY: as above.
    let name = unsafe { element(env, names, i as u32)? };
    // SAFETY: as above.
    let key = match unsafe { type_of(env, name)? } {
      // SAFETY: as above.
      sys::ValueType::napi_number => ParamKey::Index(unsafe { number(env, name)? } as i32),
      // SAFETY: as above.
      _ => ParamKey::Name(unsafe { string(env, name)? }),
    };
    pairs.push((key, bind));
  }
  Ok(Params::Named(pairs))
}

/// A SQLCipher key: 64 or 96 hex digits or 32 bytes are a raw key, any other string a passphrase.
///
/// # Safety
///
/// `env` and the values given must meet this module's N-API contract (module docs).
pub unsafe fn key(env: sys::napi_env, v: sys::napi_value) -> JsResult<Option<Key>> {
  // SAFETY: this function's contract is its callees', given the same `env` and `v`.
  match unsafe { type_of(env, v)? } {
    sys::ValueType::napi_undefined | sys::ValueType::napi_null => Ok(None),
    sys::ValueType::napi_string => {
      // SAFETY: as above.
      let s = unsafe { string(env, v)? };
      Ok(Some(Key::raw_from_hex(&s).unwrap_or(Key::Passphrase(s))))
    }
    // SAFETY: as above.
    _ => match unsafe { bytes(env, v)? } {
      Some(b) => Ok(Some(Key::Raw(b))),
      None => Err("key must be a string or a Buffer".into()),
    },
  }
}

// ---- engine → JavaScript -------------------------------------------------------------------

/// Message kinds of a delivered batch; `lib/session.js` reads the same numbers.
pub const DONE: u32 = 0;
pub const RUN: u32 = 1;
pub const ROW: u32 = 2;
pub const NO_ROW: u32 = 3;
pub const ROWS: u32 = 4;
pub const CHUNK: u32 = 5;
pub const EACH_END: u32 = 6;
pub const ERROR: u32 = 7;
pub const DROPPED: u32 = 8;
pub const EVENT: u32 = 9;
pub const PREPARE_ERROR: u32 = 10;
/// A Worker1 `exec` result: a = [columns | null, values, statements, changes, lastInsertRowId
/// (BigInt)], b = error message, c = error code (`protocol::SCRIPT_ERROR` for oo1's own).
pub const SCRIPT: u32 = 11;
/// A backup step: a = remaining, b = pageCount, c = 1 when the copy is complete, 0 when not,
/// or `[message, errno, code]` when the step failed.
pub const BACKUP: u32 = 13;
/// a = Buffer.
pub const BYTES: u32 = 12;
/// Fields per message in the flat batch array: id, kind, a, b, c.
pub const STRIDE: u32 = 5;

/// Builds one batch: a flat array of `STRIDE` values per message. Its handles belong to the handle
/// scope it was made in, so it is used only within that scope (see `new`).
pub struct Writer {
  env: sys::napi_env,
  array: sys::napi_value,
  next: u32,
  undefined: sys::napi_value,
  null: sys::napi_value,
}

impl Writer {
  /// # Safety
  ///
  /// This module's N-API contract (module docs); the writer, like every handle it holds, must not
  /// outlive the current handle scope.
  pub unsafe fn new(env: sys::napi_env, messages: usize) -> JsResult<Writer> {
    let mut array = ptr::null_mut();
    // SAFETY: the module's N-API contract; `array` is a local the call writes.
    call!(unsafe { sys::napi_create_array_with_length(env, messages * STRIDE as usize, &mut array) });
    let mut undefined = ptr::null_mut();
    let mut null = ptr::null_mut();
    // SAFETY: as above, with `undefined`.
    call!(unsafe { sys::napi_get_undefined(env, &mut undefined) });
    // SAFETY: as above, with `null`.
    call!(unsafe { sys::napi_get_null(env, &mut null) });
    Ok(Writer {
      env,
      array,
      next: 0,
      undefined,
      null,
    })
  }

  pub fn array(&self) -> sys::napi_value {
    self.array
  }

  /// # Safety
  ///
  /// This module's N-API contract (module docs), within the handle scope the writer was made in.
  unsafe fn push(&mut self, v: sys::napi_value) -> JsResult<()> {
    // SAFETY: the module's N-API contract; `self.array` and `v` are handles of the writer's scope.
    call!(unsafe { sys::napi_set_element(self.env, self.array, self.next, v) });
    self.next += 1;
    Ok(())
  }

  /// # Safety
  ///
  /// This module's N-API contract (module docs), within the handle scope the writer was made in.
  unsafe fn num(&self, n: f64) -> JsResult<sys::napi_value> {
    let mut v = ptr::null_mut();
    // SAFETY: the module's N-API contract; `v` is a local the call writes.
    call!(unsafe { sys::napi_create_double(self.env, n, &mut v) });
    Ok(v)
  }

  /// # Safety
  ///
  /// This module's N-API contract (module docs), within the handle scope the writer was made in.
  unsafe fn str(&self, s: &str) -> JsResult<sys::napi_value> {
    let mut v = ptr::null_mut();
    // SAFETY: the module's N-API contract; `s` is UTF-8, passed with its length in bytes (no NUL
    // needed), and copied by the call.
    call!(unsafe {
      sys::napi_create_string_utf8(self.env, s.as_ptr() as *const c_char, s.len() as isize, &mut v)
    });
    Ok(v)
  }

  /// # Safety
  ///
  /// This module's N-API contract (module docs), within the handle scope the writer was made in.
  unsafe fn value(&self, value: &Value) -> JsResult<sys::napi_value> {
    let mut v = ptr::null_mut();
    match value {
      Value::Null => return Ok(self.null),
      // node-sqlite3 reads every integer as a (possibly lossy) double.
      // SAFETY: this function's contract is that of `num` and `str`.
      Value::Integer(i) => return unsafe { self.num(*i as f64) },
      // SAFETY: as above.
      Value::Real(f) => return unsafe { self.num(*f) },
      // SAFETY: as above.
      Value::Text(s) => return unsafe { self.str(s) },
      Value::Blob(b) => {
        let mut data = ptr::null_mut();
        // SAFETY: the module's N-API contract; the call copies `b.len()` bytes from `b` (none when
        // it is empty); `data` and `v` are locals.
        call!(unsafe {
          sys::napi_create_buffer_copy(self.env, b.len(), b.as_ptr().cast(), &mut data, &mut v)
        });
      }
    }
    Ok(v)
  }

  /// Worker1's mapping: integers beyond ±(2^53 − 1) become BigInt instead of losing precision.
  ///
  /// # Safety
  ///
  /// This module's N-API contract (module docs), within the handle scope the writer was made in.
  unsafe fn exact_value(&self, value: &Value) -> JsResult<sys::napi_value> {
    const SAFE: i64 = (1 << 53) - 1;
    match value {
      Value::Integer(i) if !(-SAFE..=SAFE).contains(i) => {
        let mut v = ptr::null_mut();
        // SAFETY: the module's N-API contract; `v` is a local the call writes.
        call!(unsafe { sys::napi_create_bigint_int64(self.env, *i, &mut v) });
        Ok(v)
      }
      // SAFETY: this function's contract is `value`'s.
      other => unsafe { self.value(other) },
    }
  }

  /// # Safety
  ///
  /// This module's N-API contract (module docs), within the handle scope the writer was made in.
  unsafe fn script(&mut self, id: u32, result: &ScriptResult) -> JsResult<()> {
    // SAFETY: the module's N-API contract; every handle used here was made in the writer's scope
    // just above, and every out-pointer is a local.
    unsafe {
      let columns = match &result.columns {
        Some(names) => self.strings(names)?,
        None => self.null,
      };
      let mut values = ptr::null_mut();
      call!(sys::napi_create_array_with_length(
        self.env,
        result.values.len(),
        &mut values
      ));
      for (i, value) in result.values.iter().enumerate() {
        call!(sys::napi_set_element(
          self.env,
          values,
          i as u32,
          self.exact_value(value)?
        ));
      }
      let statements = self.strings(&result.statements)?;
      let mut last = ptr::null_mut();
      call!(sys::napi_create_bigint_int64(
        self.env,
        result.last_insert_rowid,
        &mut last
      ));
      let fields = [
        columns,
        values,
        statements,
        self.num(result.changes as f64)?,
        last,
      ];
      let mut info = ptr::null_mut();
      call!(sys::napi_create_array_with_length(
        self.env,
        fields.len(),
        &mut info
      ));
      for (i, field) in fields.into_iter().enumerate() {
        call!(sys::napi_set_element(self.env, info, i as u32, field));
      }
      match &result.error {
        None => self.message(id, SCRIPT, info, self.undefined, self.undefined),
        Some(Error::Sqlite { code, message }) => {
          let (m, c) = (self.str(message)?, self.num(*code as f64)?);
          self.message(id, SCRIPT, info, m, c)
        }
        Some(e) => {
          let (m, c) = (self.str(&e.display())?, self.num(SCRIPT_ERROR as f64)?);
          self.message(id, SCRIPT, info, m, c)
        }
      }
    }
  }

  /// # Safety
  ///
  /// This module's N-API contract (module docs), within the handle scope the writer was made in.
  unsafe fn strings(&self, items: &[String]) -> JsResult<sys::napi_value> {
    let mut array = ptr::null_mut();
    // SAFETY: the module's N-API contract; `array` is a local the call writes.
    call!(unsafe { sys::napi_create_array_with_length(self.env, items.len(), &mut array) });
    for (i, item) in items.iter().enumerate() {
      // SAFETY: as above; `array` and each string are handles of this scope.
      call!(unsafe { sys::napi_set_element(self.env, array, i as u32, self.str(item)?) });
    }
    Ok(array)
  }

  /// # Safety
  ///
  /// This module's N-API contract (module docs), within the handle scope the writer was made in.
  unsafe fn values(&self, values: &[Value]) -> JsResult<sys::napi_value> {
    let mut array = ptr::null_mut();
    // SAFETY: the module's N-API contract; `array` is a local the call writes.
    call!(unsafe { sys::napi_create_array_with_length(self.env, values.len(), &mut array) });
    for (i, value) in values.iter().enumerate() {
      // SAFETY: as above; `array` and each value are handles of this scope.
      call!(unsafe { sys::napi_set_element(self.env, array, i as u32, self.value(value)?) });
    }
    Ok(array)
  }

  /// # Safety
  ///
  /// This module's N-API contract (module docs), within the handle scope the writer was made in.
  /// `a`, `b` and `c` must be handles of that scope.
  unsafe fn message(
    &mut self,
    id: u32,
    kind: u32,
    a: sys::napi_value,
    b: sys::napi_value,
    c: sys::napi_value,
  ) -> JsResult<()> {
    // SAFETY: this function's contract is that of `num` and `push`; `a`, `b` and `c` are handles of
    // the writer's scope (the caller's part of it).
    unsafe {
      let id = self.num(id as f64)?;
      self.push(id)?;
      let kind = self.num(kind as f64)?;
      self.push(kind)?;
      self.push(a)?;
      self.push(b)?;
      self.push(c)
    }
  }

  /// Rows: a = shape id, b = flat values, c = column names the first time this receiver sees the shape.
  ///
  /// # Safety
  ///
  /// This module's N-API contract (module docs), within the handle scope the writer was made in.
  unsafe fn rows(&mut self, id: u32, kind: u32, rows: &Rows, new_shape: bool) -> JsResult<()> {
    // SAFETY: the module's N-API contract; every handle used here is made in the writer's scope,
    // and every out-pointer is a local.
    unsafe {
      let shape = self.num(rows.shape.id as f64)?;
      let values = self.values(&rows.values)?;
      let columns = if new_shape {
        let mut array = ptr::null_mut();
        call!(sys::napi_create_array_with_length(
          self.env,
          rows.shape.columns.len(),
          &mut array
        ));
        for (i, name) in rows.shape.columns.iter().enumerate() {
          call!(sys::napi_set_element(self.env, array, i as u32, self.str(name)?));
        }
        array
      } else {
        self.undefined
      };
      self.message(id, kind, shape, values, columns)
    }
  }

  /// # Safety
  ///
  /// This module's N-API contract (module docs), within the handle scope the writer was made in.
  unsafe fn error(&mut self, id: u32, kind: u32, error: &Error) -> JsResult<()> {
    // SAFETY: this function's contract is that of the functions it calls.
    unsafe {
      let message = self.str(&error.display())?;
      let errno = self.num(error.errno() as f64)?;
      let code = self.error_code(error)?;
      self.message(id, kind, message, errno, code)
    }
  }

  /// An error's `code` slot: the code's name, or, for an error that carries data,
  /// `{ code, masterPid }` (`lib/callbacks.js` `errorOf` puts the data on the error object).
  ///
  /// # Safety
  ///
  /// This module's N-API contract (module docs), within the handle scope the writer was made in.
  unsafe fn error_code(&self, error: &Error) -> JsResult<sys::napi_value> {
    let Error::MasterExists { master_pid, .. } = error else {
      // SAFETY: this function's contract.
      return unsafe { self.str(error.code()) };
    };
    // SAFETY: the module's N-API contract; `object` is a local the call writes, and every
    // value set on it is a handle of the writer's scope; the names are NUL-terminated.
    unsafe {
      let mut object = ptr::null_mut();
      call!(sys::napi_create_object(self.env, &mut object));
      let code = self.str(error.code())?;
      call!(sys::napi_set_named_property(
        self.env,
        object,
        c"code".as_ptr(),
        code
      ));
      let pid = match master_pid {
        Some(pid) => self.num(f64::from(*pid))?,
        None => self.null,
      };
      call!(sys::napi_set_named_property(
        self.env,
        object,
        c"masterPid".as_ptr(),
        pid
      ));
      Ok(object)
    }
  }

  /// Writes one message; `known` says whether the receiver already has a shape's names.
  ///
  /// # Safety
  ///
  /// This module's N-API contract (module docs), within the handle scope the writer was made in.
  pub unsafe fn write(&mut self, message: &Outgoing, known: &mut dyn FnMut(u32) -> bool) -> JsResult<()> {
    let u = self.undefined;
    // SAFETY: the module's N-API contract; each arm makes its handles in the writer's scope and
    // hands them to `message`; every out-pointer is a local.
    unsafe {
      match message {
        Outgoing::Reply { id, response } => match response {
          Response::Done => self.message(*id, DONE, u, u, u),
          Response::Run { last_id, changes } => {
            let (l, c) = (self.num(*last_id as f64)?, self.num(*changes as f64)?);
            self.message(*id, RUN, l, c, u)
          }
          Response::Row(Some(rows)) => self.rows(*id, ROW, rows, !known(rows.shape.id)),
          Response::Row(None) => self.message(*id, NO_ROW, u, u, u),
          Response::Rows(rows) => self.rows(*id, ROWS, rows, !known(rows.shape.id)),
          Response::Chunk(rows) => self.rows(*id, CHUNK, rows, !known(rows.shape.id)),
          Response::EachEnd { error: None } => self.message(*id, EACH_END, self.null, u, u),
          Response::EachEnd { error: Some(e) } => self.error(*id, EACH_END, e),
          Response::Error(e) => self.error(*id, ERROR, e),
          Response::PrepareError(e) => self.error(*id, PREPARE_ERROR, e),
          Response::Dropped => self.message(*id, DROPPED, u, u, u),
          Response::Script(result) => self.script(*id, result),
          Response::Bytes(bytes) => {
            let blob = self.value(&Value::Blob(bytes.clone()))?;
            self.message(*id, BYTES, blob, u, u)
          }
          Response::Backup {
            done,
            remaining,
            page_count,
            error,
          } => {
            let (remaining, page_count) = (
              self.num(f64::from(*remaining))?,
              self.num(f64::from(*page_count))?,
            );
            let outcome = match error {
              None => self.num(if *done { 1.0 } else { 0.0 })?,
              Some(e) => {
                let mut array = ptr::null_mut();
                call!(sys::napi_create_array_with_length(self.env, 3, &mut array));
                call!(sys::napi_set_element(self.env, array, 0, self.str(&e.display())?));
                call!(sys::napi_set_element(
                  self.env,
                  array,
                  1,
                  self.num(e.errno() as f64)?
                ));
                call!(sys::napi_set_element(self.env, array, 2, self.error_code(e)?));
                array
              }
            };
            self.message(*id, BACKUP, remaining, page_count, outcome)
          }
        },
        // The outbox never queues these (see `Outbox::send`); a local session is never guarded.
        Outgoing::Txn(_) | Outgoing::NotRun { .. } | Outgoing::ClientReads(_) => Ok(()),
        Outgoing::Role { role, master_pid } => {
          let (name, role, pid) = (
            self.str("role")?,
            self.str(role.as_str())?,
            self.num(*master_pid as f64)?,
          );
          self.message(0, EVENT, name, role, pid)
        }
        Outgoing::Event(event) => match event {
          Event::Trace(sql) => {
            let (name, sql) = (self.str("trace")?, self.str(sql)?);
            self.message(0, EVENT, name, sql, u)
          }
          Event::Leader { address } => {
            let (name, address) = (self.str("leader")?, self.str(address)?);
            self.message(0, EVENT, name, address, u)
          }
          Event::Profile { sql, nanos } => {
            let (name, sql, ms) = (
              self.str("profile")?,
              self.str(sql)?,
              self.num(*nanos as f64 / 1e6)?,
            );
            self.message(0, EVENT, name, sql, ms)
          }
          Event::Change {
            kind,
            database,
            table,
            rowid,
          } => {
            let mut args = ptr::null_mut();
            call!(sys::napi_create_array_with_length(self.env, 4, &mut args));
            call!(sys::napi_set_element(self.env, args, 0, self.str(kind.as_str())?));
            call!(sys::napi_set_element(self.env, args, 1, self.str(database)?));
            call!(sys::napi_set_element(self.env, args, 2, self.str(table)?));
            call!(sys::napi_set_element(self.env, args, 3, self.num(*rowid as f64)?));
            let name = self.str("change")?;
            self.message(0, EVENT, name, args, u)
          }
        },
      }
    }
  }
}
