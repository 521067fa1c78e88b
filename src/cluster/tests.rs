//! The master's side of the socket against a client written out by hand: the handshake (right
//! and wrong secret, another protocol version, an oversized frame), the heartbeat, and a
//! graceful close that lets an open transaction finish and leaves the rest unanswered.

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use super::auth;
use super::server::{Server, ServerConfig};
use super::wire::{self, Challenge, Down, FrameReader, Hello, Proof, Up, Verdict};
use crate::engine::{Engine, SessionHandle, Sink};
use crate::protocol::{Mode, OpenOptions, Outgoing, Request, Response};
use crate::value::Params;

const SECRET: &[u8] = b"shared secret";

fn temp_dir(name: &str) -> PathBuf {
  let dir = std::env::temp_dir().join(format!("sqlite3-cluster-server-{}-{name}", std::process::id()));
  let _ = std::fs::remove_dir_all(&dir);
  std::fs::create_dir_all(&dir).unwrap();
  dir
}

/// The master's own session: it opens the connection its clients join.
struct Quiet;

impl Sink for Quiet {
  fn send(&self, _: Outgoing) {}
}

/// A master serving `dir/test.db` on `dir/sock`, with `secret`; its own session opened first.
fn serve(dir: &std::path::Path, secret: Option<&[u8]>) -> (Server, PathBuf, SessionHandle) {
  let sock = dir.join("sock");
  let listener = UnixListener::bind(&sock).unwrap();
  listener.set_nonblocking(true).unwrap();
  let engine = Engine::for_file(dir.join("test.db").to_str().unwrap());
  let own = engine.attach(Arc::new(Quiet));
  own.send(0, open(dir));
  let config = ServerConfig {
    engine: engine.clone(),
    secret: secret.map(Arc::from),
    keyed: false,
    sock: sock.clone(),
  };
  (Server::start(listener, config).unwrap(), sock, own)
}

struct Client {
  reader: FrameReader<OwnedReadHalf>,
  write: OwnedWriteHalf,
}

impl Client {
  async fn send<T: serde::Serialize>(&mut self, message: &T) {
    self.try_send(message).await.unwrap();
  }

  async fn try_send<T: serde::Serialize>(&mut self, message: &T) -> std::io::Result<()> {
    let mut out = Vec::new();
    wire::encode(message, &mut out).unwrap();
    self.write.write_all(&out).await
  }

  /// Connects and runs the client's half of the handshake with `secret` and `version`: the
  /// master's challenge, its verdict, and whether its proof of the secret checks out.
  async fn handshake(
    sock: &std::path::Path,
    secret: Option<&[u8]>,
    version: u32,
  ) -> (Client, Challenge, Option<Verdict>, bool) {
    let (read, write) = UnixStream::connect(sock).await.unwrap().into_split();
    let mut client = Client {
      reader: FrameReader::new(read, wire::HANDSHAKE_LIMIT),
      write,
    };
    let nonce = auth::nonce().unwrap();
    client
      .send(&Hello {
        magic: wire::MAGIC,
        version,
        pid: std::process::id(),
        nonce,
      })
      .await;
    let challenge: Challenge = client.reader.next().await.unwrap().expect("a challenge");
    let master_proved = auth::verify(
      secret,
      auth::MASTER,
      &nonce,
      &challenge.nonce,
      challenge.proof.as_ref(),
    );
    let proof = Proof {
      proof: secret.map(|s| auth::prove(s, auth::CLIENT, &challenge.nonce, &nonce)),
    };
    // A master that refused our version has closed its end already.
    let _ = client.try_send(&proof).await;
    let verdict = client.reader.next::<Verdict>().await.ok().flatten();
    client.reader.set_limit(wire::FRAME_LIMIT);
    (client, challenge, verdict, master_proved)
  }

  async fn request(&mut self, id: u32, request: Request) {
    self
      .send(&Up::Request {
        session: 1,
        id,
        request,
      })
      .await;
  }

  async fn query(&mut self, id: u32, sql: &str) {
    let request = Request::Query {
      sql: sql.into(),
      params: Params::None,
      mode: Mode::Run,
    };
    self.request(id, request).await;
  }

  /// The next frame that is not a change of the session's transaction state or of what it
  /// may read itself, within `wait`.
  async fn next(&mut self, wait: Duration) -> Option<Down> {
    loop {
      let frame = tokio::time::timeout(wait, self.reader.next::<Down>())
        .await
        .ok()?
        .ok()??;
      if !matches!(
        frame,
        Down::Message {
          message: Outgoing::Txn(_) | Outgoing::ClientReads(_),
          ..
        }
      ) {
        return Some(frame);
      }
    }
  }
}

fn open(dir: &std::path::Path) -> Request {
  Request::Open(OpenOptions::for_tests(&dir.join("test.db").to_string_lossy()))
}

fn answered(frame: Option<Down>, id: u32) -> Response {
  match frame {
    Some(Down::Message {
      message: Outgoing::Reply { id: got, response },
      ..
    }) if got == id => response,
    other => panic!("expected the answer to {id}, got {other:?}"),
  }
}

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn the_handshake_admits_the_secret_and_refuses_the_rest() {
  let dir = temp_dir("handshake");
  let (_server, sock, _engine) = serve(&dir, Some(SECRET));
  super::runtime().block_on(async {
    let (_, _, verdict, master_proved) = Client::handshake(&sock, Some(SECRET), wire::VERSION).await;
    assert!(master_proved, "the master proves it knows the secret too");
    assert_eq!(verdict, Some(Verdict::Welcome));
    let (_, _, verdict, master_proved) = Client::handshake(&sock, Some(b"wrong"), wire::VERSION).await;
    assert!(!master_proved);
    assert!(matches!(verdict, Some(Verdict::Refused(_))), "{verdict:?}");
    let (_, _, verdict, _) = Client::handshake(&sock, None, wire::VERSION).await;
    assert!(matches!(verdict, Some(Verdict::Refused(_))), "{verdict:?}");
    // Another version: the master says its own and stops; the client explains the mismatch.
    let (_, challenge, verdict, _) = Client::handshake(&sock, Some(SECRET), wire::VERSION + 1).await;
    assert_eq!(challenge.version, wire::VERSION);
    assert_eq!(verdict, None);
  });
}

#[test]
fn an_oversized_frame_before_the_handshake_ends_the_connection() {
  let dir = temp_dir("oversized");
  let (_server, sock, _engine) = serve(&dir, None);
  super::runtime().block_on(async {
    let mut stream = UnixStream::connect(&sock).await.unwrap();
    let huge = (wire::HANDSHAKE_LIMIT as u32 + 1).to_le_bytes();
    stream.write_all(&huge).await.unwrap();
    let mut reader = FrameReader::new(stream, wire::HANDSHAKE_LIMIT);
    let next = tokio::time::timeout(WAIT, reader.next::<Challenge>())
      .await
      .expect("closed, not hung");
    assert!(!matches!(next, Ok(Some(_))), "answered an oversized hello");
  });
}

#[test]
fn a_ping_is_answered_while_a_long_query_runs() {
  let dir = temp_dir("ping");
  let (_server, sock, _engine) = serve(&dir, None);
  super::runtime().block_on(async {
    let (mut client, _, verdict, _) = Client::handshake(&sock, None, wire::VERSION).await;
    assert_eq!(verdict, Some(Verdict::Welcome));
    client.send(&Up::Attach { session: 1 }).await;
    client.request(1, open(&dir)).await;
    assert_eq!(answered(client.next(WAIT).await, 1), Response::Done);
    client
      .query(
        2,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000) SELECT count(*) FROM c",
      )
      .await;
    client.send(&Up::Ping).await;
    assert_eq!(client.next(WAIT).await, Some(Down::Pong), "the pong comes before the long answer");
    assert!(matches!(answered(client.next(WAIT * 4).await, 2), Response::Run { .. }));
  });
}

#[test]
fn a_graceful_close_finishes_an_open_transaction_and_leaves_the_rest_unanswered() {
  let dir = temp_dir("drain");
  let (server, sock, own) = serve(&dir, None);
  super::runtime().block_on(async {
    let (mut client, _, _, _) = Client::handshake(&sock, None, wire::VERSION).await;
    client.send(&Up::Attach { session: 1 }).await;
    client.request(1, open(&dir)).await;
    assert_eq!(answered(client.next(WAIT).await, 1), Response::Done);
    client.query(2, "CREATE TABLE t(x)").await;
    client.query(3, "BEGIN").await;
    client.query(4, "INSERT INTO t VALUES (1)").await;
    for id in 2..=4 {
      assert!(matches!(
        answered(client.next(WAIT).await, id),
        Response::Run { .. }
      ));
    }
    let closing = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Sent after the close began: the transaction goes on to its end here…
    client.query(5, "INSERT INTO t VALUES (2)").await;
    client.query(6, "COMMIT").await;
    // …and what follows it is left for the next master.
    client.query(7, "INSERT INTO t VALUES (3)").await;
    assert!(matches!(
      answered(client.next(WAIT).await, 5),
      Response::Run { .. }
    ));
    assert!(matches!(
      answered(client.next(WAIT).await, 6),
      Response::Run { .. }
    ));
    assert_eq!(client.next(WAIT).await, Some(Down::Closing), "7 is not answered");
    closing.await.unwrap();
  });
  drop(own);
  let db = rusqlite::Connection::open(dir.join("test.db")).unwrap();
  let count: i64 = db
    .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
    .unwrap();
  assert_eq!(
    count, 2,
    "the transaction committed, the request after it never ran"
  );
}
