//! The master's side of the socket: accepts clients, checks who they are, and turns each
//! client session into a session of the engine. Runs on the cluster runtime's threads only;
//! SQL runs on the engine thread; the master's JavaScript thread is never involved.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch, Semaphore};

use super::auth;
use super::wire::{self, Challenge, Down, FrameReader, Hello, Proof, Up, Verdict, WireError};
use crate::engine::{Engine, SessionHandle, Sink};
use crate::error::{ClusterCode, Error};
use crate::protocol::{Outgoing, Request, Response};

/// A client must finish the handshake within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests a connection may have unanswered; past this the master stops reading from it
/// (the client's writes then wait), so a client that never reads cannot grow the master.
const MAX_OUTSTANDING: usize = 8192;
/// Sessions (Databases) per client connection.
const MAX_SESSIONS: usize = 4096;
/// How long a graceful close waits for a connection to answer what it has read.
const GRACE: Duration = Duration::from_secs(3);
/// Request id of the marker a graceful close sends through each session.
const MARK: u32 = u32::MAX - 1;
/// Writes are coalesced up to this many bytes.
const WRITE_BATCH: usize = 1 << 20;

pub struct ServerConfig {
  pub engine: Arc<Engine>,
  pub secret: Option<Arc<[u8]>>,
  /// The database is encrypted (clients without a key must not take over).
  pub keyed: bool,
}

/// A running listener. `shutdown` hands over gracefully; dropping it without that leaves the
/// connections to end with the process.
pub struct Server {
  closing: watch::Sender<bool>,
  live: Arc<AtomicUsize>,
}

impl Server {
  pub fn start(listener: std::os::unix::net::UnixListener, config: ServerConfig) -> Result<Server, Error> {
    let runtime = super::runtime();
    let _entered = runtime.enter();
    let listener = UnixListener::from_std(listener).map_err(|e| Error::Cluster {
      code: ClusterCode::Protocol,
      message: format!("cannot listen on the cluster socket: {e}"),
    })?;
    let (closing, watcher) = watch::channel(false);
    let live = Arc::new(AtomicUsize::new(0));
    runtime.spawn(accept(listener, Arc::new(config), watcher, live.clone()));
    Ok(Server { closing, live })
  }

  /// Stops accepting, lets every connection answer the requests it has read (rolling back
  /// transactions left open), tells the clients, and waits for the connections to end.
  pub async fn shutdown(self) {
    let _ = self.closing.send(true);
    let deadline = tokio::time::Instant::now() + GRACE + Duration::from_secs(1);
    while self.live.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
      tokio::time::sleep(Duration::from_millis(2)).await;
    }
  }
}

async fn accept(
  listener: UnixListener,
  config: Arc<ServerConfig>,
  mut closing: watch::Receiver<bool>,
  live: Arc<AtomicUsize>,
) {
  loop {
    tokio::select! {
      accepted = listener.accept() => match accepted {
        Ok((stream, _)) => {
          live.fetch_add(1, Ordering::AcqRel);
          let (config, closing, live) = (config.clone(), closing.clone(), live.clone());
          tokio::spawn(async move {
            connection(stream, config, closing).await;
            live.fetch_sub(1, Ordering::AcqRel);
          });
        }
        // Out of file descriptors, most likely: try again shortly.
        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
      },
      _ = closing.changed() => return,
    }
  }
}

/// Delivers one remote session's messages to its connection's writer, a burst at a time (the
/// engine flushes before it waits): one wake-up of the socket thread per burst.
struct ConnSink {
  session: u32,
  tx: mpsc::UnboundedSender<Vec<Down>>,
  buffer: std::sync::Mutex<Vec<Down>>,
  marks: mpsc::UnboundedSender<u32>,
  in_txn: AtomicBool,
}

impl ConnSink {
  fn new(session: u32, tx: mpsc::UnboundedSender<Vec<Down>>, marks: mpsc::UnboundedSender<u32>) -> Self {
    ConnSink {
      session,
      tx,
      buffer: std::sync::Mutex::new(Vec::new()),
      marks,
      in_txn: AtomicBool::new(false),
    }
  }
}

impl Sink for ConnSink {
  fn send(&self, message: Outgoing) {
    match message {
      Outgoing::Reply { id: MARK, .. } => {
        // Everything answered before the marker must be on its way before the close goes on.
        self.flush();
        let _ = self.marks.send(self.session);
      }
      Outgoing::Role { .. } => {}
      message => {
        if let Outgoing::Txn(on) = message {
          self.in_txn.store(on, Ordering::Release);
        }
        self
          .buffer
          .lock()
          .unwrap_or_else(|e| e.into_inner())
          .push(Down::Message {
            session: self.session,
            message,
          });
      }
    }
  }

  fn flush(&self) {
    let batch = std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|e| e.into_inner()));
    if !batch.is_empty() {
      let _ = self.tx.send(batch);
    }
  }
}

async fn handshake<R: tokio::io::AsyncRead + Unpin>(
  reader: &mut FrameReader<R>,
  writer: &mut OwnedWriteHalf,
  config: &ServerConfig,
) -> Result<bool, WireError> {
  let Some(hello): Option<Hello> = reader.next().await? else {
    return Ok(false);
  };
  if hello.magic != wire::MAGIC {
    return Ok(false);
  }
  let nonce = auth::nonce();
  let secret = config.secret.as_deref();
  let challenge = Challenge {
    magic: wire::MAGIC,
    version: wire::VERSION,
    pid: std::process::id(),
    nonce,
    proof: secret.map(|s| auth::prove(s, auth::MASTER, &hello.nonce, &nonce)),
    keyed: config.keyed,
  };
  let mut out = Vec::new();
  wire::encode(&challenge, &mut out)?;
  writer.write_all(&out).await?;
  if hello.version != wire::VERSION {
    return Ok(false); // the client sees our version and explains the mismatch
  }
  let Some(Proof { proof }) = reader.next().await? else {
    return Ok(false);
  };
  let accepted = auth::verify(secret, auth::CLIENT, &nonce, &hello.nonce, proof.as_ref());
  let verdict = if accepted {
    Verdict::Welcome
  } else if secret.is_none() {
    Verdict::Refused("this master has no `secret`, but the client sent one".into())
  } else {
    Verdict::Refused("the client's `secret` does not match the master's".into())
  };
  out.clear();
  wire::encode(&verdict, &mut out)?;
  writer.write_all(&out).await?;
  Ok(accepted)
}

async fn connection(stream: UnixStream, config: Arc<ServerConfig>, mut closing: watch::Receiver<bool>) {
  // Only processes of our own user may connect (DESIGN §6).
  match stream.peer_cred() {
    Ok(cred) if cred.uid() == auth::euid() => {}
    _ => return,
  }
  let (read, mut write) = stream.into_split();
  let mut reader = FrameReader::new(read, wire::HANDSHAKE_LIMIT);
  match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut reader, &mut write, &config)).await {
    Ok(Ok(true)) => {}
    _ => return,
  }
  reader.set_limit(wire::FRAME_LIMIT);

  let (tx, rx) = mpsc::unbounded_channel();
  let (marks_tx, mut marks) = mpsc::unbounded_channel();
  let budget = Arc::new(Semaphore::new(MAX_OUTSTANDING));
  let writer = tokio::spawn(write_loop(write, rx, budget.clone()));
  let mut sessions: HashMap<u32, (SessionHandle, Arc<ConnSink>)> = HashMap::new();
  let mut frames = Vec::new();

  let graceful = loop {
    frames.clear();
    tokio::select! {
      read = reader.batch(&mut frames) => {
        if read.is_err() || frames.is_empty() {
          break false; // closed, or sent something that is not a message: drop the connection
        }
        let mut open = true;
        for up in frames.drain(..) {
          match up {
            Up::Attach { session } => {
              if sessions.len() >= MAX_SESSIONS {
                open = false;
                break;
              }
              sessions.entry(session).or_insert_with(|| {
                let sink = Arc::new(ConnSink::new(session, tx.clone(), marks_tx.clone()));
                (config.engine.attach_remote(sink.clone()), sink)
              });
            }
            Up::Request { session, id, request } => {
              match budget.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_) => { open = false; break }
              }
              match sessions.get(&session) {
                Some((handle, _)) if id != MARK => handle.send(id, request),
                _ => {
                  let error = Error::Cluster { code: ClusterCode::Protocol, message: format!("session {session} is not attached, or request id {id} is reserved") };
                  let _ = tx.send(vec![Down::Message { session, message: Outgoing::Reply { id, response: Response::Error(error) } }]);
                }
              }
            }
            Up::Resume { session } => if let Some((handle, _)) = sessions.get(&session) { handle.resume() },
            Up::Interrupt { session } => if let Some((handle, _)) = sessions.get(&session) { handle.interrupt() },
            Up::Detach { session } => { sessions.remove(&session); }
          }
        }
        if !open {
          break false;
        }
      }
      _ = closing.changed() => break true,
    }
  };

  if graceful && drain(&mut reader, &mut sessions, &mut marks).await {
    let _ = tx.send(vec![Down::Closing]);
  }
  drop(sessions); // the engine rolls back what they left open
  drop(tx);
  let _ = writer.await;
}

/// A graceful close: every session answers what was read before the close (a marker request
/// goes through each), a session idle in a transaction is rolled back (detached) so the others
/// can finish, and `Resume`s keep streams moving. True when everything was answered in time.
async fn drain<R: tokio::io::AsyncRead + Unpin>(
  reader: &mut FrameReader<R>,
  sessions: &mut HashMap<u32, (SessionHandle, Arc<ConnSink>)>,
  marks: &mut mpsc::UnboundedReceiver<u32>,
) -> bool {
  let mut waiting: std::collections::HashSet<u32> = sessions.keys().copied().collect();
  for (handle, _) in sessions.values() {
    handle.send(MARK, Request::Wait);
  }
  let mut frames = Vec::new();
  let work = async {
    while !waiting.is_empty() {
      frames.clear();
      tokio::select! {
        mark = marks.recv() => {
          let Some(session) = mark else { return false };
          waiting.remove(&session);
          if sessions.get(&session).is_some_and(|(_, sink)| sink.in_txn.load(Ordering::Acquire)) {
            sessions.remove(&session);
          }
        }
        read = reader.batch(&mut frames) => {
          if read.is_err() || frames.is_empty() {
            return false;
          }
          for up in frames.drain(..) {
            // Requests read now are not executed: the client sends them to the next master.
            if let Up::Resume { session } = up {
              if let Some((handle, _)) = sessions.get(&session) {
                handle.resume();
              }
            }
          }
        }
      }
    }
    true
  };
  tokio::time::timeout(GRACE, work).await.unwrap_or(false)
}

async fn write_loop(
  mut write: OwnedWriteHalf,
  mut rx: mpsc::UnboundedReceiver<Vec<Down>>,
  budget: Arc<Semaphore>,
) {
  let mut buffer = Vec::with_capacity(64 << 10);
  while let Some(first) = rx.recv().await {
    buffer.clear();
    let mut finished = 0;
    let mut next = Some(first);
    while let Some(batch) = next {
      for down in &batch {
        if down.finishes_request().is_some() {
          finished += 1;
        }
        put(down, &mut buffer);
      }
      next = if buffer.len() < WRITE_BATCH {
        rx.try_recv().ok()
      } else {
        None
      };
    }
    if write.write_all(&buffer).await.is_err() {
      break;
    }
    budget.add_permits(finished);
    if buffer.capacity() > 4 * WRITE_BATCH {
      buffer = Vec::with_capacity(64 << 10);
    }
  }
  // The client is gone or we are done: unblock a reader waiting for budget.
  budget.close();
}

/// Encodes one message; a reply too large for a frame becomes an error reply.
fn put(down: &Down, buffer: &mut Vec<u8>) {
  match wire::encode(down, buffer) {
    Ok(_) => {}
    Err(WireError::TooLarge { size, limit }) => {
      if let Some((session, id)) = down.finishes_request() {
        let error = Error::sqlite(
          rusqlite::ffi::SQLITE_TOOBIG,
          format!(
            "the result is {} MiB, more than one cluster message may carry ({} MiB): read it with each() or in parts",
            size >> 20,
            limit >> 20
          ),
        );
        let reply = Down::Message {
          session,
          message: Outgoing::Reply {
            id,
            response: Response::Error(error),
          },
        };
        let _ = wire::encode(&reply, buffer);
      }
    }
    Err(_) => {}
  }
}
