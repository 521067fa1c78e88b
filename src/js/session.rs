//! `NativeSession`: one session of the engine of a database file, driven by `lib/session.js`.
//!
//! Every method queues a request and returns at once; the answers come back through the
//! dispatcher given to the constructor, as flat batches (see `convert::Writer`).

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::{sys, JsValue};
use napi_derive::napi;

use super::convert;
use super::event_loop::EventLoop;
use super::outbox::Outbox;
use crate::backend::{Backend, Unavailable};
use crate::cluster::node::{Intent, Membership, NodeOptions};
use crate::dqlite::session::DqliteSession;
use crate::engine::{Engine, Sink};
use crate::protocol::{
  BackupOp, FirstResult, Key, LegacyKey, Mode, OpenOptions, Outgoing, PragmaKey, Request, Response, Script,
  Setting,
};

/// Throws `message` as a JavaScript `TypeError` (node-sqlite3 reports bad arguments so) and
/// returns the error that tells napi-rs an exception is already pending. napi-rs would throw a
/// plain `Error` for any status of its own.
fn type_error(env: &Env, message: String) -> napi::Error {
  match env.throw_type_error(&message, None) {
    Ok(()) => napi::Error::new(Status::PendingException, message),
    // No exception could be thrown (the environment is shutting down): the message as an Error.
    Err(_) => napi::Error::new(Status::InvalidArg, message),
  }
}

fn mode(m: u32) -> std::result::Result<Mode, String> {
  Ok(match m {
    0 => Mode::Run,
    1 => Mode::Get,
    2 => Mode::All,
    3 => Mode::Each,
    _ => return Err(format!("unknown execution mode {m}")),
  })
}

/// How a Database reaches its database file in cluster mode (`create()` without `standalone`).
#[napi(object)]
pub struct ClusterOptions {
  /// Path of the Unix socket.
  pub sock: String,
  /// `serve`, `connect` or `auto`.
  pub intent: String,
  pub secret: Option<Buffer>,
  pub connect_timeout: u32,
}

/// How sqlite3-cluster 1.x keyed the file (`PRAGMA KEY = "<pass>"`, AES-`bits`-CBC), given by
/// `lib/` when the app passed its key the 1.x way (a string).
#[napi(object)]
pub struct LegacyKeyOptions {
  pub pass: String,
  pub bits: u32,
}

impl LegacyKeyOptions {
  fn into_key(self) -> LegacyKey {
    LegacyKey {
      pass: self.pass,
      bits: u16::try_from(self.bits).unwrap_or(0),
    }
  }
}

#[napi]
pub struct NativeSession {
  /// Where the requests go (see `crate::backend`); `None` once disposed.
  backend: Option<Box<dyn Backend>>,
  outbox: Arc<Outbox>,
}

#[napi]
impl NativeSession {
  /// A new session of the engine of `filename` (shared with every other session of the same
  /// file in this process). `dispatch(batch, resetShapes)` receives its answers.
  /// With `cluster`, the session joins the cluster of `cluster.sock` instead; a `dqlite://`
  /// filename makes it a session on that dqlite cluster.
  #[napi(constructor)]
  pub fn new(env: Env, filename: String, dispatch: Unknown, cluster: Option<ClusterOptions>) -> Result<Self> {
    // SAFETY: the constructor runs on the JavaScript thread, inside the call from JavaScript, so
    // `env` is live and `dispatch` is a handle of this call's scope: `Outbox::new`'s contract.
    let outbox = unsafe { Outbox::new(env.raw(), dispatch.raw()) }.map_err(|e| type_error(&env, e))?;
    let backend: Box<dyn Backend> = match cluster {
      // A database on a dqlite cluster (docs/dqlite.md): no engine of this process.
      None if filename.starts_with("dqlite://") => {
        // SAFETY: a `#[napi]` constructor runs on the JavaScript thread, with `env` live.
        let event_loop = unsafe { EventLoop::of(env.raw()) };
        Box::new(DqliteSession::start(outbox.clone(), event_loop))
      }
      None => Box::new(Engine::for_file(&filename).attach(outbox.clone())),
      Some(cluster) => {
        let intent = match cluster.intent.as_str() {
          "serve" => Intent::Serve,
          "connect" => Intent::Connect,
          "auto" => Intent::Auto,
          other => return Err(type_error(&env, format!("unknown cluster intent {other:?}"))),
        };
        let options = NodeOptions {
          filename,
          sock: cluster.sock.into(),
          intent,
          secret: cluster.secret.map(|s| Arc::from(s.as_ref())),
          connect_timeout: std::time::Duration::from_millis(cluster.connect_timeout.into()),
        };
        match Membership::join(options, outbox.clone()) {
          Ok(membership) => Box::new(membership),
          Err(e) => Box::new(Unavailable::new(e, outbox.clone())),
        }
      }
    };
    Ok(NativeSession {
      backend: Some(backend),
      outbox,
    })
  }

  fn send(&self, id: u32, request: Request) {
    if let Some(backend) = &self.backend {
      backend.send(id, request);
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
    legacy: Option<LegacyKeyOptions>,
    strict_key: bool,
    verbose: bool,
    busy_timeout: i32,
    transaction_timeout: u32,
    journal_mode: Option<String>,
    read_connections: Option<u32>,
  ) -> Result<()> {
    // SAFETY: a `#[napi]` method runs on the JavaScript thread, inside the call from JavaScript, so
    // `env` is live and the `Unknown` arguments are handles of this call's scope: `convert`'s
    // contract.
    let key = unsafe { convert::key(env.raw(), key.raw()) }.map_err(|e| type_error(&env, e))?;
    let options = OpenOptions {
      filename,
      flags,
      key,
      legacy: legacy.map(LegacyKeyOptions::into_key),
      strict_key,
      deferred_key,
      verbose,
      busy_timeout_ms: busy_timeout,
      transaction_timeout_ms: transaction_timeout,
      journal_mode,
      read_connections,
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
    // SAFETY: as in `open`.
    let params =
      unsafe { convert::params(env.raw(), values.raw(), names.raw()) }.map_err(|e| type_error(&env, e))?;
    self.send(
      id,
      Request::Query {
        sql,
        params,
        mode: self::mode(mode).map_err(|e| type_error(&env, e))?,
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
    // SAFETY: as in `open`.
    let params =
      unsafe { convert::params(env.raw(), values.raw(), names.raw()) }.map_err(|e| type_error(&env, e))?;
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
    // SAFETY: as in `open`.
    let params =
      unsafe { convert::params(env.raw(), values.raw(), names.raw()) }.map_err(|e| type_error(&env, e))?;
    self.send(
      id,
      Request::Execute {
        stmt,
        params,
        mode: self::mode(mode).map_err(|e| type_error(&env, e))?,
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
  pub fn configure(&self, env: Env, id: u32, option: String, a: i32, b: i32) -> Result<()> {
    let setting = match option.as_str() {
      "busyTimeout" => Setting::BusyTimeout(a),
      "limit" => Setting::Limit { id: a, value: b },
      "trace" => Setting::Trace(a != 0),
      "profile" => Setting::Profile(a != 0),
      "change" => Setting::Change(a != 0),
      _ => {
        return Err(type_error(
          &env,
          format!("{option} is not a valid configuration option"),
        ))
      }
    };
    self.send(id, Request::Configure(setting));
    Ok(())
  }

  #[napi]
  pub fn key(&self, env: Env, id: u32, key: Unknown, legacy: Option<LegacyKeyOptions>) -> Result<()> {
    // SAFETY: as in `open`.
    match unsafe { convert::key(env.raw(), key.raw()) }.map_err(|e| type_error(&env, e))? {
      Some(key) => self.send(id, Request::Key(key, legacy.map(LegacyKeyOptions::into_key))),
      None => {
        return Err(type_error(
          &env,
          "key must be a non-empty string or a Buffer".into(),
        ))
      }
    }
    Ok(())
  }

  /// `db.backup()`: starts backup `backup` between this session's database and `filename`.
  #[napi]
  pub fn backup_start(
    &self,
    id: u32,
    backup: u32,
    filename: String,
    source_name: String,
    dest_name: String,
    filename_is_dest: bool,
  ) {
    self.send(
      id,
      Request::Backup(BackupOp::Start {
        backup,
        filename,
        source_name,
        dest_name,
        filename_is_dest,
      }),
    );
  }

  #[napi]
  pub fn backup_step(&self, id: u32, backup: u32, pages: i32, retry: Vec<i32>) {
    self.send(id, Request::Backup(BackupOp::Step { backup, pages, retry }));
  }

  #[napi]
  pub fn backup_finish(&self, id: u32, backup: u32) {
    self.send(id, Request::Backup(BackupOp::Finish { backup }));
  }

  /// `PRAGMA key = <text>` run as a statement; `text` is the pragma's value as SQLCipher reads
  /// it (`x'<64 or 96 hex digits>'` is a raw key, anything else a passphrase).
  #[napi]
  pub fn pragma_key(&self, id: u32, text: String) {
    self.send(id, Request::PragmaKey(PragmaKey::Given(Key::from_pragma(text))));
  }

  /// Worker1's `exec`. `first`: 0 step the first result statement once, 1 read its rows,
  /// 2 only report its column names.
  #[napi]
  pub fn script(
    &self,
    env: Env,
    id: u32,
    sql: String,
    values: Unknown,
    names: Unknown,
    first: u32,
  ) -> Result<()> {
    // SAFETY: as in `open`.
    let bind = unsafe { convert::params_as(env.raw(), values.raw(), names.raw(), true) }
      .map_err(|e| type_error(&env, e))?;
    let first = match first {
      0 => FirstResult::Step,
      1 => FirstResult::Read,
      _ => FirstResult::Describe,
    };
    self.send(id, Request::Script(Script { sql, bind, first }));
    Ok(())
  }

  /// Worker1's `export`: the database image.
  #[napi]
  pub fn export(&self, id: u32) {
    self.send(id, Request::Export);
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

  /// Sends what was queued since the last flush (cluster clients queue the calls of one
  /// JavaScript turn and send them in one write).
  #[napi]
  pub fn flush(&self) {
    if let Some(backend) = &self.backend {
      backend.flush();
    }
  }

  /// Acknowledges one `each()` chunk.
  #[napi]
  pub fn resume(&self) {
    if let Some(backend) = &self.backend {
      backend.resume();
    }
  }

  /// Interrupts this session's running statement, if any.
  #[napi]
  pub fn interrupt(&self) {
    if let Some(backend) = &self.backend {
      backend.interrupt();
    }
  }

  /// Leaves the cluster after a successful close; request `id` is answered when that is done
  /// (a master's last Database first hands over to the clients). Standalone: answered at once.
  #[napi]
  pub fn leave(&mut self, id: u32) {
    let outbox = self.outbox.clone();
    let done = Box::new(move || {
      outbox.send(Outgoing::Reply {
        id,
        response: Response::Done,
      })
    });
    match self.backend.as_mut() {
      Some(backend) => backend.leave(done),
      None => done(),
    }
  }

  /// Keep the process alive while requests are in flight (`true`), or not (`false`).
  #[napi(js_name = "setBusy")]
  pub fn set_busy(&self, env: Env, busy: bool) {
    // SAFETY: a `#[napi]` method runs on the JavaScript thread, inside the call from JavaScript:
    // `env` is live, and this is the thread `set_referenced` requires.
    unsafe { self.outbox.set_referenced(env.raw() as sys::napi_env, busy) };
  }

  /// Ends the session: nothing more is delivered, the engine forgets it.
  #[napi]
  pub fn dispose(&mut self) {
    self.outbox.dispose();
    self.backend = None;
  }
}

impl Drop for NativeSession {
  // The object is collected only after `dispose` (the threadsafe function holds the dispatcher,
  // which holds the session) or when its environment shuts down, when Node deletes the
  // threadsafe function itself: releasing it here would touch a function being torn down.
  fn drop(&mut self) {
    self.backend = None;
  }
}
