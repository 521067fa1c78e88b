//! What only the engine does, observed through a sink that records what each session
//! receives: guarding a closing master's sessions, flow control, a file replaced under it, keys
//! and the SQL it recognises. What every backend does is in `crate::backend::conformance`.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Engine, Sink};
use crate::backend::conformance::{int_rows, temp_dir, Client};
use crate::error::Error;
use crate::protocol::{Key, LegacyKey, Mode, OpenOptions, Outgoing, Request, Response};
use crate::value::{Params, Value};

fn temp_db(name: &str) -> String {
  temp_dir(&format!("engine-{name}"))
    .join("test.db")
    .to_string_lossy()
    .into_owned()
}

fn options(filename: &str) -> OpenOptions {
  OpenOptions::for_tests(filename)
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
  a.backend.guard();
  b.backend.guard();
  b.query(1, "SELECT count(*) FROM t", Mode::All);
  a.query(4, "INSERT INTO t VALUES (2)", Mode::Run);
  a.query(5, "COMMIT", Mode::Run);
  a.query(6, "SELECT count(*) FROM t", Mode::All);
  assert!(matches!(
    a.next_message(),
    Outgoing::Reply {
      id: 4,
      response: Response::Run { .. }
    }
  ));
  assert!(matches!(
    a.next_message(),
    Outgoing::Reply {
      id: 5,
      response: Response::Run { .. }
    }
  ));
  assert_eq!(
    a.next_message(),
    Outgoing::NotRun { id: 6 },
    "outside its transaction now"
  );
  assert_eq!(b.next_message(), Outgoing::NotRun { id: 1 });
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
  let (a, opened) = Client::opened(engine.attach(sink.clone()), rx, options(&path));
  assert_eq!(opened, Response::Done);
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
  a.send(
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

#[test]
fn without_read_connections_another_session_waits_for_the_transaction() {
  let path = temp_db("no-readers");
  let engine = Engine::for_file(&path);
  let opts = OpenOptions {
    read_connections: Some(0),
    ..options(&path)
  };
  let (a, _) = Client::open(&engine, opts.clone());
  let (b, _) = Client::open(&engine, opts);
  a.call(1, "CREATE TABLE t(x)", Mode::Run);
  a.call(2, "BEGIN", Mode::Run);
  a.call(3, "INSERT INTO t VALUES (1)", Mode::Run);
  // With one connection, b's read waits until a's transaction ends, so it can never see the
  // uncommitted row and then lose it to a rollback.
  b.query(1, "SELECT count(*) FROM t", Mode::All);
  assert!(
    b.inbox.recv_timeout(Duration::from_millis(200)).is_err(),
    "b ran inside a's transaction"
  );
  a.call(4, "ROLLBACK", Mode::Run);
  assert_eq!(int_rows(b.reply(1)), vec![0]);
}

#[test]
fn a_statement_that_looks_like_a_query_but_writes_runs_on_the_write_connection() {
  let path = temp_db("cte-write");
  let engine = Engine::for_file(&path);
  let (a, _) = Client::open(&engine, options(&path));
  a.call(1, "CREATE TABLE t(x)", Mode::Run);
  // A read connection finds it writes (sqlite3_stmt_readonly) and sends it back, with the read
  // sent after it, which must see its row.
  a.query(
    2,
    "WITH v(x) AS (VALUES (7)) INSERT INTO t SELECT x FROM v RETURNING x",
    Mode::All,
  );
  a.query(3, "SELECT x FROM t", Mode::All);
  assert_eq!(int_rows(a.reply(2)), vec![7]);
  assert_eq!(int_rows(a.reply(3)), vec![7]);
}

#[test]
fn read_connections_of_an_encrypted_file_are_keyed_like_the_write_connection() {
  let path = temp_db("keyed-readers");
  let engine = Engine::for_file(&path);
  let keyed = OpenOptions {
    key: Some(Key::Passphrase("secret".into())),
    ..options(&path)
  };
  let (a, _) = Client::open(&engine, keyed.clone());
  let (b, _) = Client::open(&engine, keyed);
  a.call(1, "CREATE TABLE t(x)", Mode::Run);
  a.call(2, "INSERT INTO t VALUES (1)", Mode::Run);
  a.call(3, "BEGIN", Mode::Run);
  a.call(4, "INSERT INTO t VALUES (2)", Mode::Run);
  // Only a read connection can answer while a's transaction holds the write connection, and it
  // reads the encrypted file only with the key.
  assert_eq!(int_rows(b.call(1, "SELECT count(*) FROM t", Mode::All)), vec![1]);
  a.call(5, "COMMIT", Mode::Run);
  assert_eq!(int_rows(b.call(2, "SELECT count(*) FROM t", Mode::All)), vec![2]);
}

#[test]
fn engines_racing_to_open_one_1x_file_all_open_it_and_one_moves_it() {
  // Each engine stands for a process. Those whose first open fails on the 1.x file while
  // another moves it must open the moved file, not report the 1.x file's SQLITE_NOTADB.
  const KEY: &str = "0123456789abcdef0123456789abcdef";
  let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/__test__/fixtures/v1/aes128.db");
  for round in 0..3 {
    let dir = temp_dir(&format!("engine-v1-race-{round}"));
    let path = dir.join("app.db").to_string_lossy().into_owned();
    std::fs::copy(fixture, &path).unwrap();
    let keyed = OpenOptions {
      key: Some(Key::Passphrase(KEY.into())),
      legacy: Some(LegacyKey {
        pass: format!("x'{KEY}'"),
        bits: 128,
      }),
      ..options(&path)
    };
    // Starts spread over the time a move takes, so that some open while it ends.
    let start = Arc::new(std::sync::Barrier::new(12));
    let openers: Vec<_> = (0..12u64)
      .map(|i| {
        let (start, keyed) = (start.clone(), keyed.clone());
        std::thread::spawn(move || {
          let engine = Engine::start(); // not for_file(): this process's engine is shared
          start.wait();
          std::thread::sleep(Duration::from_millis(i * 20));
          let (c, opened) = Client::open(&engine, keyed);
          assert_eq!(opened, Response::Done, "round {round}");
          int_rows(c.call(1, "SELECT count(*) FROM t", Mode::All))
        })
      })
      .collect();
    for opener in openers {
      assert_eq!(opener.join().unwrap(), vec![305]);
    }
    let backups = std::fs::read_dir(&dir)
      .unwrap()
      .filter(|e| {
        e.as_ref()
          .unwrap()
          .file_name()
          .to_string_lossy()
          .contains(".sqlcipher3")
      })
      .count();
    assert_eq!(backups, 1, "one process moved the file, once");
  }
}
