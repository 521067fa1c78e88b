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
  OpenOptions::for_tests(filename)
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

  fn prepare(&self, id: u32, stmt: u32, sql: &str) -> Response {
    self.handle.send(
      id,
      Request::Prepare {
        stmt,
        sql: sql.into(),
      },
    );
    self.reply(id)
  }

  /// Runs prepared statement `stmt` with the bindings it has.
  fn execute(&self, id: u32, stmt: u32, mode: Mode) {
    self.handle.send(
      id,
      Request::Execute {
        stmt,
        params: Params::None,
        mode,
      },
    );
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

/// Reads an `each()` stream to its end, acknowledging every chunk: its rows must be the
/// integers from `next` on, in order, and it must end without error. Returns the one after the last.
fn read_stream(client: &Client, mut next: i64) -> i64 {
  loop {
    match client.inbox.recv_timeout(WAIT).expect("stream continues") {
      Outgoing::Reply {
        response: Response::Chunk(rows),
        ..
      } => {
        for v in rows.values {
          assert_eq!(v, Value::Integer(next));
          next += 1;
        }
        client.handle.resume();
      }
      Outgoing::Reply {
        response: Response::EachEnd { error },
        ..
      } => {
        assert_eq!(error, None);
        return next;
      }
      Outgoing::Txn(_) => {}
      other => panic!("unexpected {other:?}"),
    }
  }
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
  let next = 1 + chunks as i64 * 512;
  for _ in 0..chunks {
    c.handle.resume();
  }
  assert_eq!(read_stream(&c, next), 100001);
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

/// Every message a session received, until the reply to `last`.
fn messages_until(client: &Client, last: u32) -> Vec<Outgoing> {
  let mut out = Vec::new();
  loop {
    let message = client.inbox.recv_timeout(WAIT).expect("a message");
    let done = matches!(message, Outgoing::Reply { id, .. } if id == last);
    out.push(message);
    if done {
      return out;
    }
  }
}

#[test]
fn queries_grouped_in_one_read_transaction_change_nothing_a_session_can_see() {
  let path = temp_db("read-group");
  let engine = Engine::for_file(&path);
  let (a, _) = Client::open(&engine, options(&path));
  let (b, _) = Client::open(&engine, options(&path));
  let (c, _) = Client::open(&engine, options(&path));
  a.call(1, "CREATE TABLE t(x)", Mode::Run);
  // All sent at once: a's reads queue up behind each other, so the engine groups them, while
  // b writes (alone, then in a transaction of its own) and c, whose transaction was lost,
  // rolls back in the middle of a group.
  c.handle.send(1, Request::Abort);
  for id in 2..40 {
    a.query(id, "SELECT count(*) FROM t", Mode::All);
  }
  let writes = [
    "INSERT INTO t VALUES (1)",
    "BEGIN",
    "INSERT INTO t VALUES (2)",
    "COMMIT",
  ];
  for (i, sql) in writes.iter().enumerate() {
    b.query(i as u32 + 1, sql, Mode::Run);
  }
  c.query(2, "ROLLBACK", Mode::Run);
  c.query(3, "SELECT count(*) FROM t", Mode::All);
  for id in 40..60 {
    a.query(id, "/* after */ SELECT count(*) FROM t", Mode::All);
  }

  for (i, message) in messages_until(&b, writes.len() as u32).into_iter().enumerate() {
    if let Outgoing::Reply { response, .. } = message {
      assert!(
        matches!(response, Response::Run { .. }),
        "b's statement {i}: {response:?}"
      );
    }
  }
  assert_eq!(c.reply(1), Response::Done);
  assert!(matches!(c.reply(2), Response::Run { changes: 0, .. }));
  assert!(matches!(c.reply(3), Response::Rows(_)));
  // a never hears of a transaction, and what it counts only grows, up to both rows.
  let mut counts = Vec::new();
  for message in messages_until(&a, 59) {
    match message {
      Outgoing::Reply { response, .. } => counts.push(int_rows(response)[0]),
      other => panic!("a got {other:?}"),
    }
  }
  assert_eq!(counts.len(), 58);
  assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
  assert_eq!(counts.last(), Some(&2));

  // The engine is idle now: no group holds the file, so another process can write at once.
  let other = rusqlite::Connection::open(&path).unwrap();
  other.busy_timeout(Duration::from_millis(2000)).unwrap();
  other.execute("INSERT INTO t VALUES (3)", []).unwrap();
  assert_eq!(int_rows(a.call(60, "SELECT count(*) FROM t", Mode::All)), vec![3]);
}

#[test]
fn a_query_sent_after_a_group_began_sees_what_another_process_committed_before() {
  let path = temp_db("read-group-horizon");
  let engine = Engine::for_file(&path);
  let (a, _) = Client::open(&engine, options(&path));
  let (c, _) = Client::open(&engine, options(&path));
  a.call(1, "PRAGMA journal_mode = WAL", Mode::All);
  a.call(2, "CREATE TABLE t(x)", Mode::Run);
  // A slow query and one behind it: the engine opens a group whose snapshot has no rows.
  // (It reads t first: in WAL mode the snapshot is taken at the first read of a table.)
  a.query(
    3,
    "WITH RECURSIVE n(i) AS (SELECT (SELECT count(*) FROM t) UNION ALL SELECT i + 1 FROM n WHERE i < 5000000) \
     SELECT count(*) FROM n",
    Mode::All,
  );
  a.query(4, "SELECT count(*) FROM t", Mode::All);
  std::thread::sleep(Duration::from_millis(100));
  // Meanwhile another process commits a row (WAL lets it write beside the reader)...
  let other = rusqlite::Connection::open(&path).unwrap();
  other.busy_timeout(Duration::from_millis(2000)).unwrap();
  other.execute("INSERT INTO t VALUES (1)", []).unwrap();
  // ...and only then c asks: it must see the row, whatever group is open.
  assert_eq!(int_rows(c.call(1, "SELECT count(*) FROM t", Mode::All)), vec![1]);
  assert_eq!(int_rows(a.reply(3)), vec![5_000_001]);
  a.reply(4); // 0 or 1: either is a snapshot taken after it was sent
}

#[test]
fn read_groups_leave_open_cursors_and_streams_of_other_sessions_intact() {
  let path = temp_db("read-group-cursors");
  let engine = Engine::for_file(&path);
  let (a, _) = Client::open(&engine, options(&path));
  let (b, _) = Client::open(&engine, options(&path));
  let (c, _) = Client::open(&engine, options(&path));
  a.call(1, "CREATE TABLE t(x)", Mode::Run);
  a.call(
    2,
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) INSERT INTO t SELECT i FROM n",
    Mode::Run,
  );
  // a: a prepared statement stepped once with get(), its cursor left open on row 1.
  assert_eq!(a.prepare(3, 1, "SELECT x FROM t ORDER BY x"), Response::Done);
  let get = |id| {
    a.execute(id, 1, Mode::Get);
    match a.reply(id) {
      Response::Row(Some(row)) => row.values[0].clone(),
      other => panic!("expected a row, got {other:?}"),
    }
  };
  assert_eq!(get(4), Value::Integer(1));
  // c: an each() over every row, paused after its first chunks (no acknowledgements yet).
  c.query(1, "SELECT x FROM t ORDER BY x", Mode::Each);
  // b: queries in a burst, grouped around both.
  for id in 1..=100 {
    b.query(id, "SELECT count(*) FROM t", Mode::All);
  }
  for id in 1..=100 {
    assert_eq!(int_rows(b.reply(id)), vec![5000]);
  }
  // The cursor goes on where it was, and the stream delivers every row once, in order.
  assert_eq!(get(5), Value::Integer(2));
  // Prepared queries sent in a burst group too, beside b's: the cursor still steps row by row.
  for id in 6..16 {
    a.execute(id, 1, Mode::Get);
    b.query(100 + id, "SELECT count(*) FROM t", Mode::All);
  }
  for id in 6..16 {
    match a.reply(id) {
      Response::Row(Some(row)) => assert_eq!(row.values[0], Value::Integer(i64::from(id) - 3)),
      other => panic!("expected a row, got {other:?}"),
    }
    assert_eq!(int_rows(b.reply(100 + id)), vec![5000]);
  }
  assert_eq!(read_stream(&c, 1), 5001);
}

#[test]
fn an_interrupt_stops_only_the_statement_running_then_even_beside_an_open_cursor() {
  let path = temp_db("interrupt-cursor");
  let engine = Engine::for_file(&path);
  let (a, _) = Client::open(&engine, options(&path));
  let (b, _) = Client::open(&engine, options(&path));
  a.call(1, "CREATE TABLE t(x)", Mode::Run);
  a.call(2, "INSERT INTO t VALUES (1), (2), (3), (4), (5)", Mode::Run);
  // a keeps a cursor open (sqlite3_interrupt's flag would stay up while it is).
  assert_eq!(a.prepare(3, 1, "SELECT x FROM t ORDER BY x"), Response::Done);
  let get = |id| {
    a.execute(id, 1, Mode::Get);
    a.reply(id)
  };
  assert!(matches!(get(4), Response::Row(Some(_))));
  b.query(
    1,
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
    Mode::All,
  );
  std::thread::sleep(Duration::from_millis(100));
  b.handle.interrupt();
  match b.reply(1) {
    Response::Error(e) => assert_eq!(e.display(), "SQLITE_INTERRUPT: interrupted"),
    other => panic!("expected SQLITE_INTERRUPT, got {other:?}"),
  }
  // Nothing after it is interrupted: not b's next statement, not a's cursor, not grouped reads.
  assert_eq!(int_rows(b.call(2, "SELECT count(*) FROM t", Mode::All)), vec![5]);
  assert!(matches!(get(5), Response::Row(Some(_))));
  for id in 3..20 {
    b.query(id, "SELECT count(*) FROM t", Mode::All);
  }
  for id in 3..20 {
    assert_eq!(int_rows(b.reply(id)), vec![5]);
  }
  assert!(matches!(
    b.call(20, "INSERT INTO t VALUES (4)", Mode::Run),
    Response::Run { changes: 1, .. }
  ));
}

#[test]
fn a_write_left_active_by_get_is_never_rolled_back_by_a_read_group() {
  let path = temp_db("read-group-returning");
  let engine = Engine::for_file(&path);
  let (a, _) = Client::open(&engine, options(&path));
  let (b, _) = Client::open(&engine, options(&path));
  a.call(1, "CREATE TABLE t(x)", Mode::Run);
  // get() on INSERT … RETURNING: the insert ran and answered, but the statement stays active
  // (and its write uncommitted) until it is reset.
  assert_eq!(
    a.prepare(2, 1, "INSERT INTO t VALUES (7) RETURNING x"),
    Response::Done
  );
  a.execute(3, 1, Mode::Get);
  assert!(matches!(a.reply(3), Response::Row(Some(_))));
  for id in 1..=20 {
    b.query(id, "SELECT count(*) FROM t", Mode::All);
  }
  for id in 1..=20 {
    assert!(matches!(b.reply(id), Response::Rows(_)));
  }
  a.handle.send(4, Request::Finalize { stmt: 1 });
  assert_eq!(a.reply(4), Response::Done);
  assert_eq!(int_rows(b.call(21, "SELECT count(*) FROM t", Mode::All)), vec![1]);
}

/// The next message that is not a transaction-state change.
fn next_message(client: &Client) -> Outgoing {
  loop {
    match client.inbox.recv_timeout(WAIT).expect("a message") {
      Outgoing::Txn(_) => continue,
      other => return other,
    }
  }
}

#[test]
fn a_guarded_session_finishes_its_transaction_here_and_leaves_the_rest_unrun() {
  let path = temp_db("guard");
  let engine = Engine::for_file(&path);
  let (a, _) = Client::open(&engine, options(&path));
  let (b, _) = Client::open(&engine, options(&path));
  a.call(1, "CREATE TABLE t(x)", Mode::Run);
  a.call(2, "BEGIN", Mode::Run);
  a.call(3, "INSERT INTO t VALUES (1)", Mode::Run);
  // A master starts closing: what comes next runs only inside a transaction already open.
  a.handle.guard();
  b.handle.guard();
  b.query(1, "SELECT count(*) FROM t", Mode::All);
  a.query(4, "INSERT INTO t VALUES (2)", Mode::Run);
  a.query(5, "COMMIT", Mode::Run);
  a.query(6, "SELECT count(*) FROM t", Mode::All);
  assert!(matches!(
    next_message(&a),
    Outgoing::Reply {
      id: 4,
      response: Response::Run { .. }
    }
  ));
  assert!(matches!(
    next_message(&a),
    Outgoing::Reply {
      id: 5,
      response: Response::Run { .. }
    }
  ));
  assert_eq!(
    next_message(&a),
    Outgoing::NotRun { id: 6 },
    "outside its transaction now"
  );
  assert_eq!(next_message(&b), Outgoing::NotRun { id: 1 });
  let (c, _) = Client::open(&engine, options(&path));
  assert_eq!(int_rows(c.call(1, "SELECT count(*) FROM t", Mode::All)), vec![2]);
}

/// A sink that takes answers only while `ready`.
struct GatedSink {
  out: Mutex<Sender<Outgoing>>,
  ready: std::sync::atomic::AtomicBool,
}

impl Sink for GatedSink {
  fn send(&self, message: Outgoing) {
    let _ = self.out.lock().unwrap().send(message);
  }

  fn ready(&self) -> bool {
    self.ready.load(std::sync::atomic::Ordering::Acquire)
  }
}

#[test]
fn a_session_whose_answers_are_not_taken_runs_nothing_and_others_go_on() {
  let path = temp_db("ready");
  let engine = Engine::for_file(&path);
  let (b, _) = Client::open(&engine, options(&path));
  b.call(1, "CREATE TABLE t(x)", Mode::Run);
  let (tx, rx) = channel();
  let sink = Arc::new(GatedSink {
    out: Mutex::new(tx),
    ready: std::sync::atomic::AtomicBool::new(true),
  });
  let a = Client {
    handle: engine.attach(sink.clone()),
    inbox: rx,
  };
  a.handle.send(0, Request::Open(options(&path)));
  assert_eq!(a.reply(0), Response::Done);
  sink.ready.store(false, std::sync::atomic::Ordering::Release);
  a.query(1, "INSERT INTO t VALUES (1)", Mode::Run);
  assert!(
    a.inbox.recv_timeout(Duration::from_millis(200)).is_err(),
    "ran for a session whose sink is backed up"
  );
  assert_eq!(int_rows(b.call(2, "SELECT count(*) FROM t", Mode::All)), vec![0]);
  sink.ready.store(true, std::sync::atomic::Ordering::Release);
  engine.wake();
  assert!(matches!(a.reply(1), Response::Run { .. }));
}

#[test]
fn a_file_replaced_under_the_engine_is_opened_in_its_place_and_a_deleted_one_fails() {
  let path = temp_db("replaced");
  let engine = Engine::for_file(&path);
  let (a, _) = Client::open(&engine, options(&path));
  a.call(1, "CREATE TABLE t(v)", Mode::Run);
  a.call(2, "INSERT INTO t VALUES ('old')", Mode::Run);
  let prepared = a.prepare(3, 1, "SELECT v FROM t");
  assert_eq!(prepared, Response::Done);
  let other = format!("{path}.new");
  {
    let db = rusqlite::Connection::open(&other).unwrap();
    db.execute_batch("CREATE TABLE t(v); INSERT INTO t VALUES ('new');")
      .unwrap();
  }
  std::fs::rename(&other, &path).unwrap();
  let read = |id: u32| match a.call(id, "SELECT v FROM t", Mode::All) {
    Response::Rows(rows) => rows.values,
    other => panic!("unexpected {other:?}"),
  };
  let started = std::time::Instant::now();
  let mut id = 10;
  while read(id) != vec![Value::Text("new".into())] {
    assert!(
      started.elapsed() < Duration::from_secs(5),
      "still reading the old file"
    );
    std::thread::sleep(Duration::from_millis(50));
    id += 1;
  }
  // Its prepared statement was prepared again on the new file.
  a.handle.send(
    100,
    Request::Execute {
      stmt: 1,
      params: Params::None,
      mode: Mode::All,
    },
  );
  match a.reply(100) {
    Response::Rows(rows) => assert_eq!(rows.values, vec![Value::Text("new".into())]),
    other => panic!("unexpected {other:?}"),
  }
  std::fs::remove_file(&path).unwrap();
  let started = std::time::Instant::now();
  loop {
    id += 1;
    match a.call(id, "SELECT v FROM t", Mode::All) {
      Response::Error(e) => {
        assert_eq!(e.errno(), rusqlite::ffi::SQLITE_CANTOPEN);
        assert!(e.message().contains("was deleted while open"), "{}", e.message());
        break;
      }
      _ => assert!(
        started.elapsed() < Duration::from_secs(5),
        "stale reads of a deleted file"
      ),
    }
    std::thread::sleep(Duration::from_millis(50));
  }
}

#[test]
fn statements_are_recognised_the_same_way_after_comments() {
  assert!(super::is_rollback("ROLLBACK"));
  assert!(super::is_rollback(" rollback transaction ;"));
  assert!(super::is_rollback("/* undo */ ROLLBACK -- all of it"));
  assert!(!super::is_rollback("ROLLBACK TO sp"));
  assert!(!super::is_rollback("ROLLBACK TRANSACTION TO SAVEPOINT sp"));
  assert!(super::begins_transaction("-- start\nBEGIN IMMEDIATE"));
  assert!(super::begins_transaction("/* nested */ SAVEPOINT a"));
  assert!(super::is_query("/* q */ WITH x AS (SELECT 1) SELECT * FROM x"));
  assert!(!super::is_query("PRAGMA user_version"));
  assert_eq!(
    super::per_database_pragma("-- on\nPRAGMA foreign_keys = ON"),
    Some("foreign_keys")
  );
}
