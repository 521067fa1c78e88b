//! The engine without JavaScript: sessions, ordering, transactions, streaming and keys,
//! observed through a sink that records what each session receives.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Engine, SessionHandle, Sink};
use crate::error::Error;
use crate::protocol::{Key, Mode, OpenOptions, Outgoing, Request, Response};
use crate::value::{Bind, Params, Value};

struct ChannelSink(Mutex<Sender<Outgoing>>);

impl Sink for ChannelSink {
  fn send(&self, message: Outgoing) {
    let _ = self.0.lock().unwrap().send(message);
  }
}

struct Client {
  handle: SessionHandle,
  inbox: Receiver<Outgoing>,
}

const WAIT: Duration = Duration::from_secs(10);

fn options(filename: &str) -> OpenOptions {
  OpenOptions {
    filename: filename.into(),
    flags: 2 | 4,
    key: None,
    deferred_key: false,
    verbose: false,
    busy_timeout_ms: 1000,
    transaction_timeout_ms: 0,
  }
}

impl Client {
  fn open(engine: &Arc<Engine>, options: OpenOptions) -> (Client, Response) {
    let (tx, rx) = channel();
    let handle = engine.attach(Arc::new(ChannelSink(Mutex::new(tx))));
    let client = Client { handle, inbox: rx };
    client.handle.send(0, Request::Open(options));
    let response = client.reply(0);
    (client, response)
  }

  fn query(&self, id: u32, sql: &str, mode: Mode) {
    self.handle.send(
      id,
      Request::Query {
        sql: sql.into(),
        params: Params::None,
        mode,
      },
    );
  }

  /// The next reply; it must be for request `id`.
  fn reply(&self, id: u32) -> Response {
    loop {
      match self.inbox.recv_timeout(WAIT).expect("a reply") {
        Outgoing::Reply { id: got, response } => {
          assert_eq!(got, id, "replies come in request order");
          return response;
        }
        Outgoing::Txn(_) => continue,
        other => panic!("unexpected message {other:?}"),
      }
    }
  }

  fn call(&self, id: u32, sql: &str, mode: Mode) -> Response {
    self.query(id, sql, mode);
    self.reply(id)
  }
}

fn temp_db(name: &str) -> String {
  let dir = std::env::temp_dir().join(format!("sqlite3-cluster-engine-{}-{name}", std::process::id()));
  let _ = std::fs::remove_dir_all(&dir);
  std::fs::create_dir_all(&dir).unwrap();
  dir.join("test.db").to_string_lossy().into_owned()
}

fn int_rows(response: Response) -> Vec<i64> {
  match response {
    Response::Rows(rows) => rows
      .values
      .iter()
      .map(|v| match v {
        Value::Integer(i) => *i,
        other => panic!("not an integer: {other:?}"),
      })
      .collect(),
    other => panic!("expected rows, got {other:?}"),
  }
}

#[test]
fn a_session_runs_its_requests_in_order_and_reports_last_id_and_changes() {
  let engine = Engine::for_file(":memory:");
  let (c, opened) = Client::open(&engine, options(":memory:"));
  assert_eq!(opened, Response::Done);
  assert_eq!(
    c.call(1, "CREATE TABLE t(x)", Mode::Run),
    Response::Run {
      last_id: 0,
      changes: 0
    }
  );
  c.handle.send(
    2,
    Request::Query {
      sql: "INSERT INTO t VALUES (?)".into(),
      params: Params::Positional(vec![Bind::Value(Value::Integer(7))]),
      mode: Mode::Run,
    },
  );
  assert_eq!(
    c.reply(2),
    Response::Run {
      last_id: 1,
      changes: 1
    }
  );
  assert_eq!(int_rows(c.call(3, "SELECT x FROM t", Mode::All)), vec![7]);
}

#[test]
fn sessions_of_one_file_share_one_connection() {
  let path = temp_db("share");
  let (a, _) = Client::open(&Engine::for_file(&path), options(&path));
  let (b, _) = Client::open(&Engine::for_file(&path), options(&path));
  a.call(1, "CREATE TABLE t(x)", Mode::Run);
  a.call(2, "INSERT INTO t VALUES (1)", Mode::Run);
  assert_eq!(int_rows(b.call(1, "SELECT x FROM t", Mode::All)), vec![1]);
}

#[test]
fn another_session_never_runs_inside_a_transaction() {
  let path = temp_db("isolation");
  let (a, _) = Client::open(&Engine::for_file(&path), options(&path));
  let (b, _) = Client::open(&Engine::for_file(&path), options(&path));
  a.call(1, "CREATE TABLE t(x)", Mode::Run);
  a.call(2, "BEGIN", Mode::Run);
  a.call(3, "INSERT INTO t VALUES (1)", Mode::Run);
  // b's read must wait until a's transaction ends, so it can never see the uncommitted row
  // and then lose it to a rollback.
  b.query(1, "SELECT count(*) FROM t", Mode::All);
  assert!(
    b.inbox.recv_timeout(Duration::from_millis(200)).is_err(),
    "b ran inside a's transaction"
  );
  a.call(4, "ROLLBACK", Mode::Run);
  assert_eq!(int_rows(b.reply(1)), vec![0]);
}

#[test]
fn a_session_that_leaves_inside_a_transaction_is_rolled_back() {
  let path = temp_db("detach");
  let engine = Engine::for_file(&path);
  let (a, _) = Client::open(&engine, options(&path));
  let (b, _) = Client::open(&engine, options(&path));
  a.call(1, "CREATE TABLE t(x)", Mode::Run);
  a.call(2, "BEGIN", Mode::Run);
  a.call(3, "INSERT INTO t VALUES (1)", Mode::Run);
  drop(a);
  assert_eq!(int_rows(b.call(1, "SELECT count(*) FROM t", Mode::All)), vec![0]);
  // The connection is free again: b can open a transaction of its own.
  assert!(matches!(b.call(2, "BEGIN", Mode::Run), Response::Run { .. }));
  assert!(matches!(b.call(3, "COMMIT", Mode::Run), Response::Run { .. }));
}

#[test]
fn each_pauses_when_the_receiver_stops_acknowledging() {
  let engine = Engine::for_file(":memory:");
  let (c, _) = Client::open(&engine, options(":memory:"));
  c.call(
    1,
    "CREATE TABLE t AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) SELECT i FROM n",
    Mode::Run,
  );
  c.query(2, "SELECT i FROM t", Mode::Each);
  let mut chunks = 0;
  while let Ok(Outgoing::Reply {
    response: Response::Chunk(_),
    ..
  }) = c.inbox.recv_timeout(Duration::from_millis(300))
  {
    chunks += 1;
  }
  assert!(
    (1..=4).contains(&chunks),
    "{chunks} chunks sent without acknowledgement"
  );
  // Acknowledge everything; the rest arrives, every row exactly once, in order.
  let mut next = 1 + chunks as i64 * 512;
  for _ in 0..chunks {
    c.handle.resume();
  }
  loop {
    match c.inbox.recv_timeout(WAIT).expect("stream continues") {
      Outgoing::Reply {
        response: Response::Chunk(rows),
        ..
      } => {
        for v in rows.values {
          assert_eq!(v, Value::Integer(next));
          next += 1;
        }
        c.handle.resume();
      }
      Outgoing::Reply {
        response: Response::EachEnd { error },
        ..
      } => {
        assert_eq!(error, None);
        break;
      }
      other => panic!("unexpected {other:?}"),
    }
  }
  assert_eq!(next, 100001);
}

#[test]
fn a_read_only_session_cannot_write_but_others_can() {
  let path = temp_db("readonly");
  let engine = Engine::for_file(&path);
  let (writer, _) = Client::open(&engine, options(&path));
  let (reader, _) = Client::open(
    &engine,
    OpenOptions {
      flags: 1,
      ..options(&path)
    },
  );
  writer.call(1, "CREATE TABLE t(x)", Mode::Run);
  match reader.call(1, "INSERT INTO t VALUES (1)", Mode::Run) {
    Response::Error(e) => assert_eq!(
      e.display(),
      "SQLITE_READONLY: attempt to write a readonly database"
    ),
    other => panic!("expected SQLITE_READONLY, got {other:?}"),
  }
  assert_eq!(
    int_rows(reader.call(2, "SELECT count(*) FROM t", Mode::All)),
    vec![0]
  );
  assert_eq!(
    writer.call(2, "INSERT INTO t VALUES (1)", Mode::Run),
    Response::Run {
      last_id: 1,
      changes: 1
    }
  );
}

#[test]
fn a_wrong_key_fails_at_open_with_notadb() {
  let path = temp_db("key");
  let key = Some(Key::Passphrase("right".into()));
  {
    let (c, opened) = Client::open(
      &Engine::for_file(&path),
      OpenOptions {
        key: key.clone(),
        ..options(&path)
      },
    );
    assert_eq!(opened, Response::Done);
    c.call(1, "CREATE TABLE t(x)", Mode::Run);
  }
  std::thread::sleep(Duration::from_millis(100)); // the engine closes the file after the last session
  let header = std::fs::read(&path).unwrap();
  assert_ne!(&header[..16], b"SQLite format 3\0", "the file is encrypted");
  let wrong = OpenOptions {
    key: Some(Key::Passphrase("wrong".into())),
    ..options(&path)
  };
  match Client::open(&Engine::for_file(&path), wrong).1 {
    Response::Error(Error::Sqlite { code: 26, message }) => {
      assert!(message.contains("key is wrong"), "{message}")
    }
    other => panic!("expected SQLITE_NOTADB, got {other:?}"),
  }
  let (c, opened) = Client::open(
    &Engine::for_file(&path),
    OpenOptions {
      key,
      ..options(&path)
    },
  );
  assert_eq!(opened, Response::Done);
  assert_eq!(int_rows(c.call(1, "SELECT count(*) FROM t", Mode::All)), vec![0]);
}
