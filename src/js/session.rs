//! `NativeSession`: one session of the engine of a database file, driven by `lib/session.js`.
//!
//! Every method queues a request and returns at once; the answers come back through the
//! dispatcher given to the constructor, as flat batches (see `convert::Writer`).

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::{sys, JsValue};
use napi_derive::napi;

use super::convert;
use super::outbox::Outbox;
use crate::engine::{Engine, SessionHandle};
use crate::protocol::{Mode, OpenOptions, Request, Setting};

fn type_error(message: String) -> napi::Error {
  napi::Error::new(Status::InvalidArg, message)
}

fn mode(m: u32) -> Result<Mode> {
  Ok(match m {
    0 => Mode::Run,
    1 => Mode::Get,
    2 => Mode::All,
    3 => Mode::Each,
    _ => return Err(type_error(format!("unknown execution mode {m}"))),
  })
}

#[napi]
pub struct NativeSession {
  handle: Option<SessionHandle>,
  outbox: Arc<Outbox>,
}

#[napi]
impl NativeSession {
  /// A new session of the engine of `filename` (shared with every other session of the same
  /// file in this process). `dispatch(batch, resetShapes)` receives its answers.
  #[napi(constructor)]
  pub fn new(env: Env, filename: String, dispatch: Unknown) -> Result<Self> {
    let outbox = unsafe { Outbox::new(env.raw(), dispatch.raw()) }.map_err(type_error)?;
    let handle = Engine::for_file(&filename).attach(outbox.clone());
    Ok(NativeSession {
      handle: Some(handle),
      outbox,
    })
  }

  fn send(&self, id: u32, request: Request) {
    if let Some(handle) = &self.handle {
      handle.send(id, request);
    }
  }

  #[napi]
  #[allow(clippy::too_many_arguments)]
  pub fn open(
    &self,
    env: Env,
    id: u32,
    filename: String,
    flags: i32,
    key: Unknown,
    deferred_key: bool,
    verbose: bool,
    busy_timeout: i32,
  ) -> Result<()> {
    let key = unsafe { convert::key(env.raw(), key.raw()) }.map_err(type_error)?;
    let options = OpenOptions {
      filename,
      flags,
      key,
      deferred_key,
      verbose,
      busy_timeout_ms: busy_timeout,
    };
    self.send(id, Request::Open(options));
    Ok(())
  }

  #[napi]
  pub fn query(
    &self,
    env: Env,
    id: u32,
    mode: u32,
    sql: String,
    values: Unknown,
    names: Unknown,
  ) -> Result<()> {
    let params = unsafe { convert::params(env.raw(), values.raw(), names.raw()) }.map_err(type_error)?;
    self.send(
      id,
      Request::Query {
        sql,
        params,
        mode: self::mode(mode)?,
      },
    );
    Ok(())
  }

  #[napi]
  pub fn prepare(&self, id: u32, stmt: u32, sql: String) {
    self.send(id, Request::Prepare { stmt, sql });
  }

  #[napi]
  pub fn bind(&self, env: Env, id: u32, stmt: u32, values: Unknown, names: Unknown) -> Result<()> {
    let params = unsafe { convert::params(env.raw(), values.raw(), names.raw()) }.map_err(type_error)?;
    self.send(id, Request::Bind { stmt, params });
    Ok(())
  }

  #[napi]
  pub fn execute(
    &self,
    env: Env,
    id: u32,
    stmt: u32,
    mode: u32,
    values: Unknown,
    names: Unknown,
  ) -> Result<()> {
    let params = unsafe { convert::params(env.raw(), values.raw(), names.raw()) }.map_err(type_error)?;
    self.send(
      id,
      Request::Execute {
        stmt,
        params,
        mode: self::mode(mode)?,
      },
    );
    Ok(())
  }

  #[napi]
  pub fn reset(&self, id: u32, stmt: u32) {
    self.send(id, Request::Reset { stmt });
  }

  #[napi]
  pub fn finalize(&self, id: u32, stmt: u32) {
    self.send(id, Request::Finalize { stmt });
  }

  #[napi]
  pub fn exec(&self, id: u32, sql: String) {
    self.send(id, Request::Exec { sql });
  }

  /// `option` is `busyTimeout`, `limit`, `trace`, `profile` or `change`.
  #[napi]
  pub fn configure(&self, id: u32, option: String, a: i32, b: i32) -> Result<()> {
    let setting = match option.as_str() {
      "busyTimeout" => Setting::BusyTimeout(a),
      "limit" => Setting::Limit { id: a, value: b },
      "trace" => Setting::Trace(a != 0),
      "profile" => Setting::Profile(a != 0),
      "change" => Setting::Change(a != 0),
      _ => {
        return Err(type_error(format!(
          "{option} is not a valid configuration option"
        )))
      }
    };
    self.send(id, Request::Configure(setting));
    Ok(())
  }

  #[napi]
  pub fn key(&self, env: Env, id: u32, key: Unknown) -> Result<()> {
    match unsafe { convert::key(env.raw(), key.raw()) }.map_err(type_error)? {
      Some(key) => self.send(id, Request::Key(key)),
      None => return Err(type_error("key must be a non-empty string or a Buffer".into())),
    }
    Ok(())
  }

  #[napi]
  pub fn load_extension(&self, id: u32, path: String) {
    self.send(id, Request::LoadExtension { path });
  }

  #[napi]
  pub fn wait(&self, id: u32) {
    self.send(id, Request::Wait);
  }

  #[napi]
  pub fn close(&self, id: u32) {
    self.send(id, Request::Close);
  }

  /// Acknowledges one `each()` chunk.
  #[napi]
  pub fn resume(&self) {
    if let Some(handle) = &self.handle {
      handle.resume();
    }
  }

  /// Interrupts this session's running statement, if any.
  #[napi]
  pub fn interrupt(&self) {
    if let Some(handle) = &self.handle {
      handle.interrupt();
    }
  }

  /// Keep the process alive while requests are in flight (`true`), or not (`false`).
  #[napi(js_name = "setBusy")]
  pub fn set_busy(&self, env: Env, busy: bool) {
    unsafe { self.outbox.set_referenced(env.raw() as sys::napi_env, busy) };
  }

  /// Ends the session: nothing more is delivered, the engine forgets it.
  #[napi]
  pub fn dispose(&mut self) {
    self.outbox.dispose();
    self.handle = None;
  }
}

impl Drop for NativeSession {
  fn drop(&mut self) {
    self.outbox.dispose();
  }
}
