//! The client's connection against a real 3-node cluster of the package's node program
//! (`dqlite-node/`, built by `npm run build:dqlite-node`; CI builds it). Without the program the
//! tests print why and pass, except in CI (`CI` set), where that is a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::connection::{Connection, Outcome};
use super::wire::{EncodeError, Request, Response, Role};
use crate::value::Value;

const TIMEOUT: Duration = Duration::from_secs(5);

fn program() -> Option<PathBuf> {
  let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dqlite-node/bin/sqlite3-cluster-node");
  if path.exists() {
    return Some(path);
  }
  assert!(
    std::env::var_os("CI").is_none(),
    "{} is missing: CI builds it (npm run build:dqlite-node)",
    path.display()
  );
  eprintln!(
    "skipped: {} is not built (npm run build:dqlite-node)",
    path.display()
  );
  None
}

/// Three nodes on free ports, killed (SIGKILL, by pid) when dropped.
struct Cluster {
  nodes: Vec<(String, Option<Child>)>,
  _dir: PathBuf,
}

impl Cluster {
  fn start(program: &Path, name: &str) -> Cluster {
    let dir = std::env::temp_dir().join(format!("sqlite3-cluster-dqlite-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let addresses: Vec<String> = (0..3)
      .map(|_| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
      })
      .collect();
    let mut nodes = Vec::new();
    for (i, address) in addresses.iter().enumerate() {
      let mut command = Command::new(program);
      command
        .args(["--listen", address, "--latency-ms", "10", "--dir"])
        .arg(dir.join(format!("n{i}")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
      if i > 0 {
        command.args(["--join", &addresses[0]]);
      }
      nodes.push((address.clone(), Some(command.spawn().unwrap())));
      if i == 0 {
        std::thread::sleep(Duration::from_millis(300));
      }
    }
    Cluster { nodes, _dir: dir }
  }

  fn seeds(&self) -> Vec<String> {
    self.nodes.iter().map(|(a, _)| a.clone()).collect()
  }

  fn kill(&mut self, address: &str) {
    for (a, child) in &mut self.nodes {
      if a == address {
        if let Some(mut child) = child.take() {
          let _ = child.kill();
          let _ = child.wait();
        }
      }
    }
  }
}

impl Drop for Cluster {
  fn drop(&mut self) {
    for (_, child) in &mut self.nodes {
      if let Some(child) = child.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
      }
    }
    let _ = std::fs::remove_dir_all(&self._dir);
  }
}

fn open(cluster: &Cluster) -> Connection {
  Connection::open(
    &cluster.seeds(),
    "test",
    TIMEOUT,
    Instant::now() + Duration::from_secs(20),
  )
  .expect("a leader")
}

/// Waits until the leader lists three voters.
fn three_voters(cluster: &Cluster) -> Connection {
  let deadline = Instant::now() + Duration::from_secs(20);
  loop {
    let mut connection = open(cluster);
    if let Outcome::Answered(members) = connection.members() {
      if members.iter().filter(|m| m.role == Some(Role::Voter)).count() == 3 {
        return connection;
      }
    }
    assert!(Instant::now() < deadline, "three voters within 20 s");
    std::thread::sleep(Duration::from_millis(100));
  }
}

fn answered(outcome: Outcome<Response>) -> Response {
  match outcome {
    Outcome::Answered(response) => response,
    other => panic!("expected an answer, got {other:?}"),
  }
}

/// Every part of a query's result.
fn rows(connection: &mut Connection, request: Request<'_>) -> Vec<Vec<Value>> {
  let Response::Rows(mut part) = answered(connection.call(request)) else {
    panic!("rows");
  };
  let mut all = std::mem::take(&mut part.rows);
  while part.more {
    part = connection.next_part().unwrap().expect("a part");
    all.append(&mut part.rows);
  }
  all
}

fn count(connection: &mut Connection) -> i64 {
  let db = connection.db;
  match &rows(
    connection,
    Request::QuerySql {
      db,
      sql: "SELECT count(*) FROM t",
      params: &[],
    },
  )[..]
  {
    [row] => match row[..] {
      [Value::Integer(n)] => n,
      _ => panic!("a count"),
    },
    _ => panic!("one row"),
  }
}

#[test]
fn values_round_trip_results_come_in_parts_and_errors_leave_the_connection_usable() {
  let Some(program) = program() else { return };
  let cluster = Cluster::start(&program, "values");
  let mut c = three_voters(&cluster);
  let db = c.db;
  let exec =
    |c: &mut Connection, sql: &str, params: &[Value]| answered(c.call(Request::ExecSql { db, sql, params }));
  assert!(matches!(
    exec(&mut c, "CREATE TABLE t(a, b, c, d, e)", &[]),
    Response::Result { .. }
  ));
  let values = [
    Value::Integer(i64::MIN),
    Value::Real(-0.5),
    Value::Text("héllo".into()),
    Value::Blob(vec![0, 1, 2, 255]),
    Value::Null,
  ];
  assert_eq!(
    exec(&mut c, "INSERT INTO t VALUES (?, ?, ?, ?, ?)", &values),
    Response::Result {
      last_insert_id: 1,
      changes: 1
    }
  );
  assert_eq!(
    rows(
      &mut c,
      Request::QuerySql {
        db,
        sql: "SELECT * FROM t",
        params: &[]
      }
    ),
    vec![values.to_vec()]
  );

  // 1000 rows come in several parts (about a page each).
  exec(
    &mut c,
    "INSERT INTO t(a) WITH RECURSIVE s(n) AS (SELECT 2 UNION ALL SELECT n + 1 FROM s WHERE n < 1001) SELECT n FROM s",
    &[],
  );
  let started = Instant::now();
  let all = rows(
    &mut c,
    Request::QuerySql {
      db,
      sql: "SELECT a, b, c FROM t ORDER BY rowid",
      params: &[],
    },
  );
  eprintln!(
    "all() of {} rows through the Rust client: {:?}",
    all.len(),
    started.elapsed()
  );
  assert_eq!(all.len(), 1001);
  assert_eq!(all[1000][0], Value::Integer(1001));

  // A failure is an answer; a request that cannot be encoded is never sent; either way the
  // connection goes on.
  match exec(&mut c, "SELEC 1", &[]) {
    Response::Failure { code, message } => assert_eq!((code, message.contains("syntax error")), (1, true)),
    other => panic!("expected a failure, got {other:?}"),
  }
  let nul = [Value::Text("a\0b".into())];
  match c.call(Request::ExecSql {
    db,
    sql: "INSERT INTO t(a) VALUES (?)",
    params: &nul,
  }) {
    Outcome::Refused(refused) => assert_eq!(
      refused.0,
      EncodeError::Nul {
        what: "a text parameter"
      }
    ),
    other => panic!("expected a refusal, got {other:?}"),
  }
  assert_eq!(count(&mut c), 1001);
}

#[test]
fn after_kill_9_of_the_leader_the_connection_is_lost_and_the_seeds_lead_to_the_new_one() {
  let Some(program) = program() else { return };
  let mut cluster = Cluster::start(&program, "failover");
  let mut c = three_voters(&cluster);
  let db = c.db;
  answered(c.call(Request::ExecSql {
    db,
    sql: "CREATE TABLE t(x)",
    params: &[],
  }));
  answered(c.call(Request::ExecSql {
    db,
    sql: "INSERT INTO t VALUES (1)",
    params: &[],
  }));
  let old = c.address.clone();
  cluster.kill(&old);
  assert!(matches!(
    c.call(Request::QuerySql {
      db,
      sql: "SELECT 1",
      params: &[]
    }),
    Outcome::Lost(_)
  ));
  let killed = Instant::now();
  let mut c = open(&cluster);
  assert_ne!(c.address, old);
  let db = c.db;
  answered(c.call(Request::ExecSql {
    db,
    sql: "INSERT INTO t VALUES (2)",
    params: &[],
  }));
  eprintln!(
    "new leader {} found and written to {:?} after kill -9",
    c.address,
    killed.elapsed()
  );
  assert_eq!(count(&mut c), 2);
}

/// A session (`DqliteSession`), driven as `NativeSession` drives a backend.
mod sessions {
  use std::sync::mpsc::Receiver;
  use std::sync::Arc;

  use super::*;
  use crate::backend::conformance::ChannelSink;
  use crate::backend::Backend;
  use crate::dqlite::session::DqliteSession;
  use crate::error::{ClusterCode, Error};
  use crate::protocol::{Mode, OpenOptions, Outgoing, Request as Call, Response as Reply, Setting};
  use crate::value::{Bind, Params};

  struct Db {
    session: DqliteSession,
    inbox: Receiver<Outgoing>,
    next: std::cell::Cell<u32>,
  }

  fn url(cluster: &Cluster) -> String {
    format!("dqlite://{}/app", cluster.seeds().join(","))
  }

  impl Db {
    fn open(filename: &str) -> (Db, Reply) {
      let (sink, inbox) = ChannelSink::new();
      let db = Db {
        session: DqliteSession::start(sink as Arc<_>, None),
        inbox,
        next: std::cell::Cell::new(1),
      };
      let opened = db.call(Call::Open(OpenOptions::for_tests(filename)));
      (db, opened)
    }

    fn send(&self, request: Call) -> u32 {
      let id = self.next.get();
      self.next.set(id + 1);
      self.session.send(id, request);
      id
    }

    fn reply(&self, id: u32) -> Reply {
      loop {
        match self
          .inbox
          .recv_timeout(Duration::from_secs(30))
          .expect("an answer")
        {
          Outgoing::Reply { id: got, response } => {
            assert_eq!(got, id, "answers come in order");
            return response;
          }
          _ => continue,
        }
      }
    }

    fn call(&self, request: Call) -> Reply {
      let id = self.send(request);
      self.reply(id)
    }

    fn sql(&self, sql: &str, params: Vec<Value>, mode: Mode) -> Reply {
      let params = Params::Positional(params.into_iter().map(Bind::Value).collect());
      self.call(Call::Query {
        sql: sql.into(),
        params,
        mode,
      })
    }
  }

  fn values(reply: Reply) -> Vec<Value> {
    match reply {
      Reply::Rows(rows) => rows.values,
      Reply::Row(Some(rows)) => rows.values,
      other => panic!("rows expected, got {other:?}"),
    }
  }

  fn error(reply: Reply) -> Error {
    match reply {
      Reply::Error(e) => e,
      other => panic!("an error expected, got {other:?}"),
    }
  }

  #[test]
  fn statements_run_by_kind_with_node_sqlite3_answers_and_the_guards_hold() {
    let Some(program) = program() else { return };
    let cluster = Cluster::start(&program, "session");
    three_voters(&cluster);
    let (db, opened) = Db::open(&url(&cluster));
    assert_eq!(opened, Reply::Done);
    assert_eq!(
      db.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v)", vec![], Mode::Run),
      Reply::Run {
        last_id: 0,
        changes: 0
      }
    );
    assert_eq!(
      db.sql(
        "INSERT INTO t(v) VALUES (?)",
        vec![Value::Text("a".into())],
        Mode::Run
      ),
      Reply::Run {
        last_id: 1,
        changes: 1
      }
    );
    // all() of a write runs it (through EXEC_SQL) and answers no rows; run() of a query runs it.
    assert_eq!(
      values(db.sql("INSERT INTO t(v) VALUES ('b')", vec![], Mode::All)),
      vec![]
    );
    assert!(matches!(
      db.sql("SELECT * FROM t", vec![], Mode::Run),
      Reply::Run { .. }
    ));
    assert_eq!(
      values(db.sql(
        "SELECT v FROM t WHERE id = :id",
        vec![Value::Integer(2)],
        Mode::Get
      )),
      vec![Value::Text("b".into())]
    );
    assert_eq!(
      db.sql("SELECT v FROM t WHERE id = 99", vec![], Mode::Get),
      Reply::Row(None)
    );
    // each() in chunks of rows delivered while the result's parts arrive, no more than the
    // window ahead of the receiver: unacknowledged, the stream stops (and with it the server,
    // which sends a part only once the last was read); acknowledged, it goes on to its end.
    db.call(Call::Exec {
      sql: "INSERT INTO t(v) WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 2998) SELECT n FROM s".into(),
    });
    let id = db.send(Call::Query {
      sql: "SELECT id, v FROM t ORDER BY id".into(),
      params: Params::None,
      mode: Mode::Each,
    });
    let mut chunks = Vec::new();
    while let Ok(Outgoing::Reply { response, .. }) = db.inbox.recv_timeout(Duration::from_millis(500)) {
      chunks.push(response);
    }
    assert_eq!(
      chunks.len(),
      4,
      "the window's worth of chunks, then nothing until acknowledged"
    );
    assert!(chunks.iter().all(|c| matches!(c, Reply::Chunk(_))));
    let mut seen: usize = chunks
      .iter()
      .map(|c| match c {
        Reply::Chunk(rows) => rows.len(),
        _ => 0,
      })
      .sum();
    for _ in 0..chunks.len() {
      db.session.resume();
    }
    loop {
      match db.reply(id) {
        Reply::Chunk(rows) => {
          seen += rows.len();
          db.session.resume();
        }
        Reply::EachEnd { error: None } => break,
        other => panic!("{other:?}"),
      }
    }
    assert_eq!(seen, 3000);
    // The guards: RETURNING (which would stop a 1.11 leader), a second statement, NUL in text,
    // too many parameters, a position out of range.
    let returning = error(db.sql("INSERT INTO t(v) VALUES (1) RETURNING id", vec![], Mode::All));
    assert!(
      returning.display().contains("RETURNING"),
      "{}",
      returning.display()
    );
    assert!(error(db.sql("SELECT 1; SELECT 2", vec![], Mode::All))
      .display()
      .contains("one statement"));
    assert_eq!(
      error(db.sql("SELECT ?", vec![Value::Text("a\0b".into())], Mode::Get)).errno(),
      20
    );
    let many = error(db.sql(
      &format!("SELECT {}", vec!["?"; 256].join(", ")),
      vec![Value::Null; 256],
      Mode::Get,
    ));
    assert!(many.display().contains("255"), "{}", many.display());
    assert_eq!(
      error(db.sql("SELECT ?", vec![Value::Null, Value::Null], Mode::Get)).errno(),
      25
    );
    // A constraint error keeps SQLite's extended code, and node-sqlite3's errno.
    db.sql("CREATE UNIQUE INDEX u ON t(v)", vec![], Mode::Run);
    let unique = error(db.sql("INSERT INTO t(v) VALUES ('a')", vec![], Mode::Run));
    assert_eq!(unique.errno(), 19);
    // The cluster is still whole after the guarded cases.
    assert_eq!(
      values(db.sql("SELECT count(*) FROM t", vec![], Mode::All)),
      vec![Value::Integer(3000)]
    );
    assert_eq!(db.call(Call::Close), Reply::Done);
  }

  #[test]
  fn concurrent_transactions_queue_on_busy_timeout_instead_of_failing() {
    let Some(program) = program() else { return };
    let cluster = Cluster::start(&program, "busy");
    three_voters(&cluster);
    let (a, _) = Db::open(&url(&cluster));
    let (b, _) = Db::open(&url(&cluster));
    a.sql("CREATE TABLE c(n)", vec![], Mode::Run);
    a.sql("INSERT INTO c VALUES (0)", vec![], Mode::Run);
    b.call(Call::Configure(Setting::BusyTimeout(5000)));
    assert!(matches!(a.sql("BEGIN", vec![], Mode::Run), Reply::Run { .. }));
    a.sql("UPDATE c SET n = n + 1", vec![], Mode::Run);
    // b's BEGIN (sent as BEGIN IMMEDIATE) meets a's write lock: it waits, and runs once a commits.
    let begin = b.send(Call::Query {
      sql: "BEGIN".into(),
      params: Params::None,
      mode: Mode::Run,
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(matches!(a.sql("COMMIT", vec![], Mode::Run), Reply::Run { .. }));
    assert!(matches!(b.reply(begin), Reply::Run { .. }));
    b.sql("UPDATE c SET n = n + 1", vec![], Mode::Run);
    b.sql("COMMIT", vec![], Mode::Run);
    assert_eq!(
      values(a.sql("SELECT n FROM c", vec![], Mode::Get)),
      vec![Value::Integer(2)]
    );
    // Without a busy timeout the second writer is told at once.
    a.sql("BEGIN", vec![], Mode::Run);
    let (c, _) = Db::open(&url(&cluster));
    assert_eq!(error(c.sql("BEGIN", vec![], Mode::Run)).errno(), 5);
    a.sql("ROLLBACK", vec![], Mode::Run);
  }

  #[test]
  fn a_lost_leader_aborts_the_open_transaction_and_other_writes_go_to_the_new_one() {
    let Some(program) = program() else { return };
    let mut cluster = Cluster::start(&program, "session-failover");
    three_voters(&cluster);
    let (a, _) = Db::open(&url(&cluster));
    let (b, _) = Db::open(&url(&cluster));
    a.sql("CREATE TABLE t(x)", vec![], Mode::Run);
    b.sql("INSERT INTO t VALUES (2)", vec![], Mode::Run);
    a.sql("BEGIN", vec![], Mode::Run);
    a.sql("INSERT INTO t VALUES (1)", vec![], Mode::Run);
    let leader = Connection::open(&cluster.seeds(), "app", TIMEOUT, Instant::now() + TIMEOUT)
      .unwrap()
      .address
      .clone();
    cluster.kill(&leader);
    // b was outside a transaction: its next write goes to the new leader.
    assert!(matches!(
      b.sql("INSERT INTO t VALUES (3)", vec![], Mode::Run),
      Reply::Run { changes: 1, .. }
    ));
    // a's transaction is gone: its statements fail until ROLLBACK, COMMIT included.
    let lost = error(a.sql("INSERT INTO t VALUES (4)", vec![], Mode::Run));
    assert!(
      matches!(
        lost,
        Error::Cluster {
          code: ClusterCode::TxnAborted,
          ..
        }
      ),
      "{lost:?}"
    );
    assert!(matches!(
      error(a.sql("COMMIT", vec![], Mode::Run)),
      Error::Cluster {
        code: ClusterCode::TxnAborted,
        ..
      }
    ));
    assert!(matches!(a.sql("ROLLBACK", vec![], Mode::Run), Reply::Run { .. }));
    assert_eq!(
      values(a.sql("SELECT x FROM t ORDER BY x", vec![], Mode::All)),
      vec![Value::Integer(2), Value::Integer(3)]
    );
  }
}
