//! The promises every backend keeps (see `super`), tested against each implementation: this
//! process's engine (`Local`) and a client of a master reached over a real Unix socket
//! (`OverSocket`). A new backend gets a fixture here and must pass the same tests.
//!
//! The helpers (`Client`, `ChannelSink`, …) also serve the engine's own tests of what only the
//! engine does (guarding a closing master's sessions, flow control, a replaced file, keys).

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Backend;
use crate::cluster::node::{Intent, Membership, NodeOptions};
use crate::cluster::server::{Server, ServerConfig};
use crate::engine::{Engine, SessionHandle, Sink};
use crate::protocol::{Mode, OpenOptions, Outgoing, Request, Response, Role};
use crate::value::{Bind, Params, Value};

pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Passes what a session receives to a channel the test reads.
pub(crate) struct ChannelSink(pub(crate) Mutex<Sender<Outgoing>>);

impl Sink for ChannelSink {
  fn send(&self, message: Outgoing) {
    let _ = self.0.lock().unwrap().send(message);
  }
}

impl ChannelSink {
  pub(crate) fn new() -> (Arc<ChannelSink>, Receiver<Outgoing>) {
    let (tx, rx) = channel();
    (Arc::new(ChannelSink(Mutex::new(tx))), rx)
  }
}

/// One session, driven the way `NativeSession` drives it, and what it received.
pub(crate) struct Client<B: Backend = Box<dyn Backend>> {
  pub(crate) backend: B,
  pub(crate) inbox: Receiver<Outgoing>,
}

impl<B: Backend> Client<B> {
  /// Sends `Open` and returns the client with the answer to it.
  pub(crate) fn opened(backend: B, inbox: Receiver<Outgoing>, options: OpenOptions) -> (Client<B>, Response) {
    let client = Client { backend, inbox };
    client.send(0, Request::Open(options));
    let response = client.reply(0);
    (client, response)
  }

  pub(crate) fn send(&self, id: u32, request: Request) {
    self.backend.send(id, request);
    self.backend.flush();
  }

  /// Acknowledges one chunk of an `each()` stream.
  pub(crate) fn resume(&self) {
    self.backend.resume();
    self.backend.flush();
  }

  pub(crate) fn query(&self, id: u32, sql: &str, mode: Mode) {
    self.send(
      id,
      Request::Query {
        sql: sql.into(),
        params: Params::None,
        mode,
      },
    );
  }

  /// The next message that is neither a transaction-state change nor a role event.
  pub(crate) fn next_message(&self) -> Outgoing {
    loop {
      match self.inbox.recv_timeout(WAIT).expect("a message") {
        Outgoing::Txn(_) | Outgoing::Role { .. } => continue,
        other => return other,
      }
    }
  }

  /// The next reply; it must be for request `id`.
  pub(crate) fn reply(&self, id: u32) -> Response {
    match self.next_message() {
      Outgoing::Reply { id: got, response } => {
        assert_eq!(got, id, "replies come in request order");
        response
      }
      other => panic!("unexpected message {other:?}"),
    }
  }

  pub(crate) fn prepare(&self, id: u32, stmt: u32, sql: &str) -> Response {
    self.send(
      id,
      Request::Prepare {
        stmt,
        sql: sql.into(),
      },
    );
    self.reply(id)
  }

  /// Runs prepared statement `stmt` with the bindings it has.
  pub(crate) fn execute(&self, id: u32, stmt: u32, mode: Mode) {
    self.send(
      id,
      Request::Execute {
        stmt,
        params: Params::None,
        mode,
      },
    );
  }

  pub(crate) fn call(&self, id: u32, sql: &str, mode: Mode) -> Response {
    self.query(id, sql, mode);
    self.reply(id)
  }

  /// Every message received until the reply to `last`, role events aside.
  pub(crate) fn messages_until(&self, last: u32) -> Vec<Outgoing> {
    let mut out = Vec::new();
    loop {
      let message = self.inbox.recv_timeout(WAIT).expect("a message");
      if let Outgoing::Role { .. } = message {
        continue;
      }
      let done = matches!(message, Outgoing::Reply { id, .. } if id == last);
      out.push(message);
      if done {
        return out;
      }
    }
  }
}

impl Client<SessionHandle> {
  /// A session of `engine`, opened with `options`.
  pub(crate) fn open(engine: &Arc<Engine>, options: OpenOptions) -> (Client<SessionHandle>, Response) {
    let (sink, inbox) = ChannelSink::new();
    Client::opened(engine.attach(sink), inbox, options)
  }
}

/// A fresh folder for one test's files.
pub(crate) fn temp_dir(name: &str) -> PathBuf {
  let dir = std::env::temp_dir().join(format!("sqlite3-cluster-test-{}-{name}", std::process::id()));
  let _ = std::fs::remove_dir_all(&dir);
  std::fs::create_dir_all(&dir).unwrap();
  dir
}

/// Reads an `each()` stream to its end, acknowledging every chunk: its rows must be the
/// integers from `next` on, in order, and it must end without error. Returns the one after the last.
pub(crate) fn read_stream<B: Backend>(client: &Client<B>, mut next: i64) -> i64 {
  loop {
    match client.next_message() {
      Outgoing::Reply {
        response: Response::Chunk(rows),
        ..
      } => {
        for v in rows.values {
          assert_eq!(v, Value::Integer(next));
          next += 1;
        }
        client.resume();
      }
      Outgoing::Reply {
        response: Response::EachEnd { error },
        ..
      } => {
        assert_eq!(error, None);
        return next;
      }
      other => panic!("unexpected {other:?}"),
    }
  }
}

pub(crate) fn int_rows(response: Response) -> Vec<i64> {
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

/// One database file and a way to open sessions of it through one kind of backend.
pub(crate) trait Fixture {
  /// The database file.
  fn path(&self) -> &str;

  /// A new session, sent `Open` with `options`; with it, the answer to that.
  fn open(&self, options: OpenOptions) -> (Client, Response);

  /// The options a test opens its sessions with.
  fn options(&self) -> OpenOptions {
    OpenOptions::for_tests(self.path())
  }
}

/// Standalone: sessions of this process's engine of the file.
pub(crate) struct Local {
  path: String,
}

impl Local {
  pub(crate) fn new(name: &str) -> Local {
    let path = temp_dir(name).join("test.db");
    Local {
      path: path.to_string_lossy().into_owned(),
    }
  }
}

impl Fixture for Local {
  fn path(&self) -> &str {
    &self.path
  }

  fn open(&self, options: OpenOptions) -> (Client, Response) {
    let (sink, inbox) = ChannelSink::new();
    let backend: Box<dyn Backend> = Box::new(Engine::for_file(&self.path).attach(sink));
    Client::opened(backend, inbox, options)
  }
}

/// Cluster clients: every session is a member of this process's node of a socket, which reaches
/// a master over the socket (the master here serves from this process too, but its clients
/// only ever talk to it through the socket: `Intent::Connect` never takes the master's role).
pub(crate) struct OverSocket {
  path: String,
  sock: PathBuf,
  server: Option<Server>,
  /// The master's own session: it opened the connection its clients join.
  _own: SessionHandle,
}

/// The master's own session hears nothing the test needs.
struct Quiet;

impl Sink for Quiet {
  fn send(&self, _: Outgoing) {}
}

impl OverSocket {
  /// `_name` says which test this is; the folder is numbered instead, since a socket's path
  /// must fit `sun_path` (108 bytes).
  pub(crate) fn new(_name: &str) -> OverSocket {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = temp_dir(&format!(
      "s{}",
      NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let path = dir.join("test.db").to_string_lossy().into_owned();
    let sock = dir.join("sock");
    let listener = UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let engine = Engine::for_file(&path);
    let own = engine.attach(Arc::new(Quiet));
    own.send(0, Request::Open(OpenOptions::for_tests(&path)));
    let config = ServerConfig {
      engine,
      secret: None,
      keyed: false,
      sock: sock.clone(),
    };
    OverSocket {
      server: Some(Server::start(listener, config).unwrap()),
      path,
      sock,
      _own: own,
    }
  }
}

impl Fixture for OverSocket {
  fn path(&self) -> &str {
    &self.path
  }

  fn open(&self, options: OpenOptions) -> (Client, Response) {
    let (sink, inbox) = ChannelSink::new();
    let node = NodeOptions {
      filename: self.path.clone(),
      sock: self.sock.clone(),
      intent: Intent::Connect,
      secret: None,
      connect_timeout: Duration::from_secs(5),
    };
    let backend: Box<dyn Backend> = Box::new(Membership::join(node, sink).expect("joins the socket's node"));
    backend.send(0, Request::Open(options));
    backend.flush();
    // The member learns its role when its link is up: it must be a client of the master.
    let mut role = None;
    let opened = loop {
      match inbox.recv_timeout(WAIT).expect("the answer to Open") {
        Outgoing::Role { role: r, master_pid } => role = Some((r, master_pid)),
        Outgoing::Reply { id: 0, response } => break response,
        Outgoing::Txn(_) => {}
        other => panic!("unexpected {other:?}"),
      }
    };
    assert_eq!(role, Some((Role::Client, std::process::id())));
    (Client { backend, inbox }, opened)
  }
}

impl Drop for OverSocket {
  /// The master closes gracefully once the test's clients are gone (they were declared after
  /// the fixture, so they are dropped first).
  fn drop(&mut self) {
    if let Some(server) = self.server.take() {
      let _ = crate::cluster::runtime()
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), server.shutdown()).await });
    }
  }
}

/// Runs each test against every fixture, as `<fixture>::<test>`.
macro_rules! conformance {
  ($($test:ident),* $(,)?) => {
    mod local {
      $(#[test]
      fn $test() {
        super::$test(&super::Local::new(concat!("local-", stringify!($test))));
      })*
    }
    mod over_socket {
      $(#[test]
      fn $test() {
        super::$test(&super::OverSocket::new(concat!("socket-", stringify!($test))));
      })*
    }
  };
}

conformance!(
  a_session_runs_its_requests_in_order_and_reports_last_id_and_changes,
  sessions_of_one_file_share_one_connection,
  another_session_reads_the_last_commit_beside_a_transaction,
  a_session_reads_its_own_writes_at_once,
  connection_local_state_keeps_its_meaning_for_every_session,
  an_each_on_a_read_connection_holds_up_neither_writes_nor_reads,
  a_session_that_leaves_inside_a_transaction_is_rolled_back,
  each_pauses_when_the_receiver_stops_acknowledging,
  a_read_only_session_cannot_write_but_others_can,
  queries_grouped_in_one_read_transaction_change_nothing_a_session_can_see,
  a_query_sent_after_a_group_began_sees_what_another_process_committed_before,
  read_groups_leave_open_cursors_and_streams_of_other_sessions_intact,
  an_interrupt_stops_only_the_statement_running_then_even_beside_an_open_cursor,
  a_write_left_active_by_get_is_never_rolled_back_by_a_read_group,
);

fn a_session_runs_its_requests_in_order_and_reports_last_id_and_changes(db: &dyn Fixture) {
  let (c, opened) = db.open(db.options());
  assert_eq!(opened, Response::Done);
  assert_eq!(
    c.call(1, "CREATE TABLE t(x)", Mode::Run),
    Response::Run {
      last_id: 0,
      changes: 0
    }
  );
  c.send(
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

fn sessions_of_one_file_share_one_connection(db: &dyn Fixture) {
  let (a, _) = db.open(db.options());
  let (b, _) = db.open(db.options());
  a.call(1, "CREATE TABLE t(x)", Mode::Run);
  a.call(2, "INSERT INTO t VALUES (1)", Mode::Run);
  assert_eq!(int_rows(b.call(1, "SELECT x FROM t", Mode::All)), vec![1]);
}

fn another_session_reads_the_last_commit_beside_a_transaction(db: &dyn Fixture) {
  let (a, _) = db.open(db.options());
  let (b, _) = db.open(db.options());
  a.call(1, "CREATE TABLE t(x)", Mode::Run);
  a.call(2, "INSERT INTO t VALUES (1)", Mode::Run);
  a.call(3, "BEGIN", Mode::Run);
  a.call(4, "INSERT INTO t VALUES (2)", Mode::Run);
  // b's reads run on a read connection while a's transaction holds the write connection: they
  // answer now, and never see the uncommitted row (which a rollback could take back).
  assert_eq!(int_rows(b.call(1, "SELECT count(*) FROM t", Mode::All)), vec![1]);
  match b.call(2, "SELECT max(x) FROM t", Mode::Get) {
    Response::Row(Some(rows)) => assert_eq!(rows.values, vec![Value::Integer(1)]),
    other => panic!("expected a row, got {other:?}"),
  }
  b.query(3, "SELECT x FROM t ORDER BY x", Mode::Each);
  assert_eq!(read_stream(&b, 1), 2, "the each() sees the committed row only");
  // a, inside its transaction, sees its own row.
  assert_eq!(int_rows(a.call(5, "SELECT count(*) FROM t", Mode::All)), vec![2]);
  a.call(6, "COMMIT", Mode::Run);
  // A read sent once the COMMIT was answered sees it.
  assert_eq!(int_rows(b.call(4, "SELECT count(*) FROM t", Mode::All)), vec![2]);
}

fn a_session_reads_its_own_writes_at_once(db: &dyn Fixture) {
  let (a, _) = db.open(db.options());
  let (b, _) = db.open(db.options());
  a.call(1, "CREATE TABLE t(x)", Mode::Run);
  // Sent back to back without waiting: the read goes to a read connection only after the write
  // before it was answered, so it always sees it.
  for i in 0..100u32 {
    b.query(2 * i + 1, "INSERT INTO t VALUES (1)", Mode::Run);
    b.query(2 * i + 2, "SELECT count(*) FROM t", Mode::All);
  }
  for i in 0..100u32 {
    assert!(matches!(b.reply(2 * i + 1), Response::Run { changes: 1, .. }));
    assert_eq!(int_rows(b.reply(2 * i + 2)), vec![i64::from(i) + 1]);
  }
  // And a write of another session, answered before a read was sent, is seen by that read.
  a.call(2, "INSERT INTO t VALUES (1)", Mode::Run);
  assert_eq!(
    int_rows(b.call(201, "SELECT count(*) FROM t", Mode::All)),
    vec![101]
  );
}

fn connection_local_state_keeps_its_meaning_for_every_session(db: &dyn Fixture) {
  let (a, _) = db.open(db.options());
  let (b, _) = db.open(db.options());
  let (c, _) = db.open(db.options());
  a.call(1, "CREATE TABLE t(x)", Mode::Run);
  a.call(2, "INSERT INTO t VALUES (1)", Mode::Run);
  // The sessions share the write connection: a temp table of one shadows main.t for all of them,
  // as before read connections (which do not have it) existed.
  a.call(3, "CREATE TEMP TABLE t(x)", Mode::Run);
  a.call(4, "INSERT INTO t VALUES (99)", Mode::Run);
  assert_eq!(int_rows(b.call(1, "SELECT x FROM t", Mode::All)), vec![99]);
  a.call(5, "DROP TABLE temp.t", Mode::Run);
  assert_eq!(int_rows(b.call(2, "SELECT x FROM t", Mode::All)), vec![1]);
  // An attached database is read by its schema name from any session.
  let other = std::path::Path::new(db.path()).with_file_name("attached.db");
  let attach = format!("ATTACH '{}' AS other", other.display());
  assert!(matches!(a.call(6, &attach, Mode::Run), Response::Run { .. }));
  a.call(7, "CREATE TABLE other.u(y)", Mode::Run);
  a.call(8, "INSERT INTO other.u VALUES (5)", Mode::Run);
  assert_eq!(int_rows(b.call(3, "SELECT y FROM other.u", Mode::All)), vec![5]);
  a.call(9, "DETACH other", Mode::Run);
  // Nothing local is left: reads go to read connections again, beside a transaction.
  c.call(1, "BEGIN", Mode::Run);
  c.call(2, "INSERT INTO t VALUES (2)", Mode::Run);
  assert_eq!(int_rows(b.call(4, "SELECT count(*) FROM t", Mode::All)), vec![1]);
  c.call(3, "COMMIT", Mode::Run);
  // A pragma that changes what reads return stays on the write connection, and so do the reads.
  a.call(10, "PRAGMA full_column_names = 1", Mode::Run);
  c.call(4, "BEGIN", Mode::Run);
  c.call(5, "INSERT INTO t VALUES (3)", Mode::Run);
  b.query(5, "SELECT count(*) FROM t", Mode::All);
  assert!(
    b.inbox.recv_timeout(Duration::from_millis(200)).is_err(),
    "b read on a connection without the pragma"
  );
  c.call(6, "ROLLBACK", Mode::Run);
  assert_eq!(int_rows(b.reply(5)), vec![2]);
}

fn an_each_on_a_read_connection_holds_up_neither_writes_nor_reads(db: &dyn Fixture) {
  let (a, _) = db.open(db.options());
  let (b, _) = db.open(db.options());
  let (c, _) = db.open(db.options());
  a.call(
    1,
    "CREATE TABLE t AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) SELECT i FROM n",
    Mode::Run,
  );
  // b starts an each() and does not acknowledge its chunks: the stream pauses on its reader.
  b.query(1, "SELECT i FROM t ORDER BY i", Mode::Each);
  let mut chunks = 0;
  while let Ok(Outgoing::Reply {
    response: Response::Chunk(_),
    ..
  }) = b.inbox.recv_timeout(Duration::from_millis(300))
  {
    chunks += 1;
  }
  assert!((1..=4).contains(&chunks));
  // Writes and other reads go on meanwhile, in and out of transactions.
  assert!(matches!(
    a.call(2, "INSERT INTO t VALUES (100001)", Mode::Run),
    Response::Run { changes: 1, .. }
  ));
  a.call(3, "BEGIN IMMEDIATE", Mode::Run);
  a.call(4, "INSERT INTO t VALUES (100002)", Mode::Run);
  assert_eq!(
    int_rows(c.call(1, "SELECT count(*) FROM t", Mode::All)),
    vec![100001]
  );
  a.call(5, "COMMIT", Mode::Run);
  assert_eq!(
    int_rows(c.call(2, "SELECT count(*) FROM t", Mode::All)),
    vec![100002]
  );
  // The stream reads the snapshot it began with, to its end.
  for _ in 0..chunks {
    b.resume();
  }
  let mut next = 1 + chunks as i64 * 512;
  while let Outgoing::Reply { response, .. } = b.next_message() {
    match response {
      Response::Chunk(rows) => {
        for v in rows.values {
          assert_eq!(v, Value::Integer(next));
          next += 1;
        }
        b.resume();
      }
      Response::EachEnd { error: None } => break,
      other => panic!("unexpected {other:?}"),
    }
  }
  assert_eq!(
    next, 100001,
    "the rows of the snapshot, and none written after it"
  );
}

fn a_session_that_leaves_inside_a_transaction_is_rolled_back(db: &dyn Fixture) {
  let (a, _) = db.open(db.options());
  let (b, _) = db.open(db.options());
  a.call(1, "CREATE TABLE t(x)", Mode::Run);
  a.call(2, "BEGIN", Mode::Run);
  a.call(3, "INSERT INTO t VALUES (1)", Mode::Run);
  drop(a);
  assert_eq!(int_rows(b.call(1, "SELECT count(*) FROM t", Mode::All)), vec![0]);
  // The connection is free again: b can open a transaction of its own.
  assert!(matches!(b.call(2, "BEGIN", Mode::Run), Response::Run { .. }));
  assert!(matches!(b.call(3, "COMMIT", Mode::Run), Response::Run { .. }));
}

fn each_pauses_when_the_receiver_stops_acknowledging(db: &dyn Fixture) {
  let (c, _) = db.open(db.options());
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
    c.resume();
  }
  assert_eq!(read_stream(&c, next), 100001);
}

fn a_read_only_session_cannot_write_but_others_can(db: &dyn Fixture) {
  let (writer, _) = db.open(db.options());
  let (reader, _) = db.open(OpenOptions {
    flags: 1,
    ..db.options()
  });
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

fn queries_grouped_in_one_read_transaction_change_nothing_a_session_can_see(db: &dyn Fixture) {
  let (a, _) = db.open(db.options());
  let (b, _) = db.open(db.options());
  let (c, _) = db.open(db.options());
  a.call(1, "CREATE TABLE t(x)", Mode::Run);
  // All sent at once: a's reads queue up behind each other, so the engine groups them, while
  // b writes (alone, then in a transaction of its own) and c, whose transaction was lost,
  // rolls back in the middle of a group.
  c.send(1, Request::Abort);
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

  for (i, message) in b.messages_until(writes.len() as u32).into_iter().enumerate() {
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
  for message in a.messages_until(59) {
    match message {
      Outgoing::Reply { response, .. } => counts.push(int_rows(response)[0]),
      other => panic!("a got {other:?}"),
    }
  }
  assert_eq!(counts.len(), 58);
  assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
  assert!(counts.iter().all(|n| (0..=2).contains(n)), "{counts:?}");
  // b's writes were all answered by now: a read sent now sees both rows. (One sent before
  // that may run on a read connection beside b's transaction and see fewer.)
  assert_eq!(int_rows(a.call(60, "SELECT count(*) FROM t", Mode::All)), vec![2]);

  // The engine is idle now: no group holds the file, so another process can write at once.
  let other = rusqlite::Connection::open(db.path()).unwrap();
  other.busy_timeout(Duration::from_millis(2000)).unwrap();
  other.execute("INSERT INTO t VALUES (3)", []).unwrap();
  assert_eq!(int_rows(a.call(61, "SELECT count(*) FROM t", Mode::All)), vec![3]);
}

fn a_query_sent_after_a_group_began_sees_what_another_process_committed_before(db: &dyn Fixture) {
  let (a, _) = db.open(db.options());
  let (c, _) = db.open(db.options());
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
  let other = rusqlite::Connection::open(db.path()).unwrap();
  other.busy_timeout(Duration::from_millis(2000)).unwrap();
  other.execute("INSERT INTO t VALUES (1)", []).unwrap();
  // ...and only then c asks: it must see the row, whatever group is open.
  assert_eq!(int_rows(c.call(1, "SELECT count(*) FROM t", Mode::All)), vec![1]);
  assert_eq!(int_rows(a.reply(3)), vec![5_000_001]);
  a.reply(4); // 0 or 1: either is a snapshot taken after it was sent
}

fn read_groups_leave_open_cursors_and_streams_of_other_sessions_intact(db: &dyn Fixture) {
  let (a, _) = db.open(db.options());
  let (b, _) = db.open(db.options());
  let (c, _) = db.open(db.options());
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

fn an_interrupt_stops_only_the_statement_running_then_even_beside_an_open_cursor(db: &dyn Fixture) {
  let (a, _) = db.open(db.options());
  let (b, _) = db.open(db.options());
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
  b.backend.interrupt();
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

fn a_write_left_active_by_get_is_never_rolled_back_by_a_read_group(db: &dyn Fixture) {
  let (a, _) = db.open(db.options());
  let (b, _) = db.open(db.options());
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
  a.send(4, Request::Finalize { stmt: 1 });
  assert_eq!(a.reply(4), Response::Done);
  assert_eq!(int_rows(b.call(21, "SELECT count(*) FROM t", Mode::All)), vec![1]);
}

/// A client's reads outside transactions run on its own read connections (`cluster::own_reads`):
/// only over a socket, where the reading Database lives in a client.
mod own_reads {
  use super::*;

  /// A statement that never ends by itself: it holds the master's write connection (and its
  /// engine thread, `run` never goes to a reader) until it is interrupted.
  const ENDLESS: &str =
    "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c";

  #[test]
  fn a_client_reads_while_the_masters_engine_thread_is_busy() {
    let db = OverSocket::new("own-reads-busy");
    let (a, _) = db.open(db.options());
    let (b, _) = db.open(db.options());
    a.call(1, "CREATE TABLE t(x)", Mode::Run);
    a.call(2, "INSERT INTO t VALUES (42)", Mode::Run);
    a.query(3, ENDLESS, Mode::Run);
    // The master cannot answer b now: only b's own read connection can.
    match b.call(1, "SELECT x FROM t", Mode::Get) {
      Response::Row(Some(row)) => assert_eq!(row.values, vec![Value::Integer(42)]),
      other => panic!("expected the row, got {other:?}"),
    }
    assert_eq!(int_rows(b.call(2, "SELECT x FROM t", Mode::All)), vec![42]);
    // What b cannot run itself waits for the master, in order behind nothing of b's.
    b.query(3, "INSERT INTO t VALUES (43)", Mode::Run);
    assert!(b.inbox.recv_timeout(Duration::from_millis(200)).is_err());
    a.backend.interrupt();
    match a.reply(3) {
      Response::Error(e) => assert_eq!(e.errno(), rusqlite::ffi::SQLITE_INTERRUPT),
      other => panic!("expected SQLITE_INTERRUPT, got {other:?}"),
    }
    assert!(matches!(b.reply(3), Response::Run { changes: 1, .. }));
  }

  #[test]
  fn an_interrupt_reaches_a_read_on_the_clients_own_connection() {
    let db = OverSocket::new("own-reads-interrupt");
    let (a, _) = db.open(db.options());
    let (b, _) = db.open(db.options());
    a.call(1, "CREATE TABLE t(x)", Mode::Run);
    // b holds the master's engine thread: a's read runs on a's own connection or not at all.
    b.query(1, ENDLESS, Mode::Run);
    a.query(2, ENDLESS, Mode::Get);
    // An interrupt is for the statement running when it comes: it is sent until the read ran.
    let answer = loop {
      a.backend.interrupt();
      if let Ok(answer) = a.inbox.recv_timeout(Duration::from_millis(50)) {
        break answer;
      }
    };
    match answer {
      Outgoing::Reply {
        id: 2,
        response: Response::Error(e),
      } => assert_eq!(e.errno(), rusqlite::ffi::SQLITE_INTERRUPT),
      other => panic!("expected SQLITE_INTERRUPT, got {other:?}"),
    }
    assert_eq!(int_rows(a.call(3, "SELECT count(*) FROM t", Mode::All)), vec![0]);
    b.backend.interrupt();
    assert!(matches!(b.reply(1), Response::Error(_)));
  }
}
