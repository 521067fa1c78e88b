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
