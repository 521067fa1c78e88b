//! The master's side of the socket: accepts clients, checks who they are, and turns each
//! client session into a session of the engine. Runs on the cluster runtime's threads only;
//! SQL runs on the engine thread; the master's JavaScript thread is never involved.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch, Semaphore};

use super::handshake::{self, Admission, HANDSHAKE_TIMEOUT};
use super::wire::{
  self, Down, FrameReader, FrameWriter, Framed, Up, WireError, BACKLOG_LIMIT, MARK, MAX_OUTSTANDING,
  MAX_SESSIONS, WRITE_BATCH,
};
use super::{auth, descriptors};
use crate::engine::{Engine, SessionHandle, Sink};
use crate::error::{ClusterCode, Error};
use crate::protocol::{Outgoing, Request, Response};

/// The longest a graceful close waits for a connection: to answer what it read before the
/// close, and for transactions still open to finish. It normally takes milliseconds; an idle
/// transaction ends sooner, at the master's `transactionTimeout`.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// How long a graceful close waits for a session to answer what it had sent before the close.
const MARK_LIMIT: Duration = Duration::from_secs(10);

pub struct ServerConfig {
  pub engine: Arc<Engine>,
  pub secret: Option<Arc<[u8]>>,
  /// The database is encrypted (clients without a key must not take over).
  pub keyed: bool,
  /// The socket, for what the master logs.
  pub sock: std::path::PathBuf,
}

/// A running listener. `shutdown` hands over gracefully; dropping it without that leaves the
/// connections to end with the process.
pub struct Server {
  closing: watch::Sender<bool>,
  live: Arc<AtomicUsize>,
  accepting: tokio::task::JoinHandle<()>,
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
    let accepting = runtime.spawn(accept(listener, Arc::new(config), watcher, live.clone()));
    Ok(Server {
      closing,
      live,
      accepting,
    })
  }

  /// Stops accepting, lets every connection answer the requests it has read and finish the
  /// transactions still open (`drain`), tells the clients, and waits for the connections to end.
  pub async fn shutdown(self) {
    let _ = self.closing.send(true);
    // A client accepted just now is counted once the accept loop has stopped.
    let _ = self.accepting.await;
    let deadline = tokio::time::Instant::now() + DRAIN_LIMIT + Duration::from_secs(1);
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
          if let Some(why) = descriptors::short() {
            descriptors::log_once(&config.sock, &why);
            tokio::spawn(refuse(stream, config.clone(), why));
            continue;
          }
          live.fetch_add(1, Ordering::AcqRel);
          let (config, closing, live) = (config.clone(), closing.clone(), live.clone());
          tokio::spawn(async move {
            connection(stream, config, closing).await;
            live.fetch_sub(1, Ordering::AcqRel);
          });
        }
        // Out of file descriptors, most likely: try again shortly.
        Err(e) => {
          descriptors::log_once(&config.sock, &e.to_string());
          tokio::time::sleep(Duration::from_millis(20)).await
        }
      },
      _ = closing.changed() => return,
    }
  }
}

/// What a session's sink tells a graceful close (see `drain`).
enum Drained {
  /// The marker was answered: everything read before the close has been answered.
  Marked,
  /// The session's transaction ended (committed, rolled back or expired).
  TxnEnded,
}

/// Messages for a connection's writer, with the bytes they count in its `Backlog` (counted once,
/// when the engine sends them; the writer takes them off once written).
struct Batch {
  downs: Vec<Down>,
  bytes: usize,
}

impl Batch {
  fn of(down: Down, bytes: usize) -> Batch {
    Batch {
      downs: vec![down],
      bytes,
    }
  }
}

/// Delivers one remote session's messages to its connection's writer, a burst at a time (the
/// engine flushes before it waits): one wake-up of the socket thread per burst.
struct ConnSink {
  session: u32,
  tx: mpsc::UnboundedSender<Batch>,
  buffer: std::sync::Mutex<Batch>,
  drained: mpsc::UnboundedSender<(u32, Drained)>,
  in_txn: AtomicBool,
  /// A graceful close is under way: report the end of the transaction.
  draining: AtomicBool,
  txn_ended: AtomicBool,
  backlog: Arc<Backlog>,
}

impl ConnSink {
  fn new(
    session: u32,
    tx: mpsc::UnboundedSender<Batch>,
    drained: mpsc::UnboundedSender<(u32, Drained)>,
    backlog: Arc<Backlog>,
  ) -> Self {
    ConnSink {
      session,
      tx,
      buffer: std::sync::Mutex::new(Batch {
        downs: Vec::new(),
        bytes: 0,
      }),
      drained,
      in_txn: AtomicBool::new(false),
      draining: AtomicBool::new(false),
      txn_ended: AtomicBool::new(false),
      backlog,
    }
  }
}

impl Sink for ConnSink {
  fn send(&self, message: Outgoing) {
    match message {
      // A marker left unrun by a master that has lost its connection counts as answered too.
      Outgoing::Reply { id: MARK, .. } | Outgoing::NotRun { id: MARK } => {
        // Everything answered before the marker must be on its way before the close goes on.
        self.flush();
        let _ = self.drained.send((self.session, Drained::Marked));
      }
      // Left unanswered: the client sends it to the next master once told `Closing`.
      Outgoing::NotRun { .. } | Outgoing::Role { .. } => {}
      message => {
        if let Outgoing::Txn(on) = message {
          self.in_txn.store(on, Ordering::Release);
          if !on && self.draining.load(Ordering::Acquire) {
            // Reported once the reply that ended it (sent next) is on its way: `Closing` must
            // not overtake the answer to a `COMMIT`.
            self.txn_ended.store(true, Ordering::Release);
          }
        }
        let size = message.size();
        self.backlog.bytes.fetch_add(size, Ordering::AcqRel);
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        buffer.bytes += size;
        buffer.downs.push(Down::Message {
          session: self.session,
          message,
        });
      }
    }
  }

  fn ready(&self) -> bool {
    self.backlog.bytes.load(Ordering::Acquire) < BACKLOG_LIMIT
  }

  fn flush(&self) {
    let batch = {
      let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
      Batch {
        downs: std::mem::take(&mut buffer.downs),
        bytes: std::mem::take(&mut buffer.bytes),
      }
    };
    if !batch.downs.is_empty() {
      let _ = self.tx.send(batch);
    }
    if self.txn_ended.swap(false, Ordering::AcqRel) {
      let _ = self.drained.send((self.session, Drained::TxnEnded));
    }
  }
}

/// Tells a client that this master takes no more clients now (`Verdict::Full`); it looks again.
async fn refuse(stream: UnixStream, config: Arc<ServerConfig>, why: String) {
  if !stream.peer_cred().is_ok_and(|cred| cred.uid() == auth::euid()) {
    return; // only processes of our own user hear anything from us
  }
  let (read, write) = stream.into_split();
  let admission = Admission {
    secret: config.secret.as_deref(),
    keyed: config.keyed,
    full: Some(why),
  };
  let _ = handshake::as_master(&mut Framed::new(read, write), &admission, HANDSHAKE_TIMEOUT).await;
}

async fn connection(stream: UnixStream, config: Arc<ServerConfig>, closing: watch::Receiver<bool>) {
  // Only processes of our own user may connect (docs/security.md#peer-credentials).
  match stream.peer_cred() {
    Ok(cred) if cred.uid() == auth::euid() => {}
    _ => return,
  }
  let (read, write) = stream.into_split();
  let mut framed = Framed::new(read, write);
  let admission = Admission {
    secret: config.secret.as_deref(),
    keyed: config.keyed,
    full: None,
  };
  if !matches!(
    handshake::as_master(&mut framed, &admission, HANDSHAKE_TIMEOUT).await,
    Ok(true)
  ) {
    return;
  }
  let (mut reader, write) = framed.into_parts();

  let (tx, rx) = mpsc::unbounded_channel();
  let (drained_tx, drained) = mpsc::unbounded_channel();
  let budget = Arc::new(Semaphore::new(MAX_OUTSTANDING));
  let backlog = Arc::new(Backlog::default());
  let writer = tokio::spawn(write_loop(
    write,
    rx,
    budget.clone(),
    backlog.clone(),
    config.engine.clone(),
  ));
  let mut served = Served {
    engine: config.engine.clone(),
    sessions: HashMap::new(),
    tx,
    drained_tx,
    backlog,
    guarded: false,
  };

  if serve(&mut reader, &mut served, &budget, closing).await && drain(&mut reader, &mut served, drained).await
  {
    let _ = served.tx.send(Batch::of(Down::Closing, 0));
  }
  let Served { sessions, tx, .. } = served;
  drop(sessions); // the engine rolls back what they left open
  drop(tx);
  let _ = writer.await;
}

/// Unsent answers of one connection, in bytes (`Outgoing::size`): its sessions stop running
/// past `BACKLOG_LIMIT` until the client reads (see `Sink::ready`).
#[derive(Default)]
struct Backlog {
  bytes: AtomicUsize,
}

/// The sessions of one client connection, in the engine.
struct Served {
  engine: Arc<Engine>,
  sessions: HashMap<u32, (SessionHandle, Arc<ConnSink>)>,
  tx: mpsc::UnboundedSender<Batch>,
  drained_tx: mpsc::UnboundedSender<(u32, Drained)>,
  backlog: Arc<Backlog>,
  /// The master is closing: new requests run only inside their session's transaction.
  guarded: bool,
}

impl Served {
  /// Takes in one frame; false when the connection must be dropped.
  fn take(&mut self, up: Up) -> bool {
    match up {
      Up::Attach { session } => {
        if self.sessions.len() >= MAX_SESSIONS {
          return false;
        }
        if !self.sessions.contains_key(&session) {
          let sink = Arc::new(ConnSink::new(
            session,
            self.tx.clone(),
            self.drained_tx.clone(),
            self.backlog.clone(),
          ));
          let handle = self.engine.attach_remote(sink.clone());
          if self.guarded {
            sink.draining.store(true, Ordering::Release);
            handle.guard();
          }
          self.sessions.insert(session, (handle, sink));
        }
      }
      Up::Request { session, id, request } => match self.sessions.get(&session) {
        Some((handle, _)) if id != MARK => handle.send(id, request),
        _ => {
          let error = Error::Cluster {
            code: ClusterCode::Protocol,
            message: format!("session {session} is not attached, or request id {id} is reserved"),
          };
          let reply = Outgoing::Reply {
            id,
            response: Response::Error(error),
          };
          let size = reply.size();
          self.backlog.bytes.fetch_add(size, Ordering::AcqRel);
          let _ = self.tx.send(Batch::of(
            Down::Message {
              session,
              message: reply,
            },
            size,
          ));
        }
      },
      Up::Resume { session } => {
        if let Some((handle, _)) = self.sessions.get(&session) {
          handle.resume()
        }
      }
      Up::Interrupt { session } => {
        if let Some((handle, _)) = self.sessions.get(&session) {
          handle.interrupt()
        }
      }
      Up::Detach { session } => {
        self.sessions.remove(&session);
      }
      Up::Ping => {
        let _ = self.tx.send(Batch::of(Down::Pong, 0));
      }
    }
    true
  }
}

/// Serves the connection until the client leaves (false) or the master starts closing (true).
async fn serve<R: tokio::io::AsyncRead + Unpin>(
  reader: &mut FrameReader<R>,
  served: &mut Served,
  budget: &Semaphore,
  mut closing: watch::Receiver<bool>,
) -> bool {
  let mut frames = Vec::new();
  loop {
    frames.clear();
    tokio::select! {
      read = reader.batch(&mut frames) => {
        if read.is_err() || frames.is_empty() {
          return false; // closed, or sent something that is not a message: drop the connection
        }
        for up in frames.drain(..) {
          if matches!(up, Up::Request { .. }) {
            match budget.acquire().await {
              Ok(permit) => permit.forget(),
              Err(_) => return false,
            }
          }
          if !served.take(up) {
            return false;
          }
        }
      }
      _ = closing.changed() => return true,
    }
  }
}

/// A graceful close. Every session answers what was read before the close (a marker request
/// goes through each) and a transaction still open is waited for: requests read from now on
/// run only inside their session's transaction, so it can finish here, and the others are left
/// unanswered for the next master (`SessionHandle::guard`). True when all of that happened in
/// time; the client is then told `Closing`.
async fn drain<R: tokio::io::AsyncRead + Unpin>(
  reader: &mut FrameReader<R>,
  served: &mut Served,
  mut drained: mpsc::UnboundedReceiver<(u32, Drained)>,
) -> bool {
  served.guarded = true;
  let mut marking: HashSet<u32> = served.sessions.keys().copied().collect();
  let mut in_txn: HashSet<u32> = HashSet::new();
  for (handle, sink) in served.sessions.values() {
    sink.draining.store(true, Ordering::Release);
    handle.send(MARK, Request::Wait);
    handle.guard();
  }
  let mark_deadline = tokio::time::Instant::now() + MARK_LIMIT;
  let mut frames = Vec::new();
  let work = async {
    while !marking.is_empty() || !in_txn.is_empty() {
      frames.clear();
      tokio::select! {
        event = drained.recv() => match event {
          Some((session, Drained::Marked)) => {
            marking.remove(&session);
            if served.sessions.get(&session).is_some_and(|(_, sink)| sink.in_txn.load(Ordering::Acquire)) {
              in_txn.insert(session);
            }
          }
          Some((session, Drained::TxnEnded)) => {
            in_txn.remove(&session);
          }
          None => return false,
        },
        read = reader.batch(&mut frames) => {
          if read.is_err() || frames.is_empty() {
            return false;
          }
          for up in frames.drain(..) {
            if let Up::Detach { session } = up {
              marking.remove(&session);
              in_txn.remove(&session);
            }
            if !served.take(up) {
              return false;
            }
          }
        }
        // A session that cannot even answer what it had sent (its client stopped reading):
        // the close goes on without it.
        _ = tokio::time::sleep_until(mark_deadline), if !marking.is_empty() => return false,
      }
    }
    true
  };
  tokio::time::timeout(DRAIN_LIMIT, work).await.unwrap_or(false)
}

async fn write_loop(
  mut write: FrameWriter<OwnedWriteHalf>,
  mut rx: mpsc::UnboundedReceiver<Batch>,
  budget: Arc<Semaphore>,
  backlog: Arc<Backlog>,
  engine: Arc<Engine>,
) {
  while let Some(first) = rx.recv().await {
    let buffer = write.pending();
    let (mut finished, mut bytes) = (0, 0);
    let mut next = Some(first);
    while let Some(batch) = next {
      bytes += batch.bytes;
      for down in &batch.downs {
        if down.finishes_request().is_some() {
          finished += 1;
        }
        put(down, buffer);
      }
      next = if buffer.len() < WRITE_BATCH {
        rx.try_recv().ok()
      } else {
        None
      };
    }
    if write.write_out().await.is_err() {
      break;
    }
    budget.add_permits(finished);
    let before = backlog.bytes.fetch_sub(bytes, Ordering::AcqRel);
    if before >= BACKLOG_LIMIT && before - bytes < BACKLOG_LIMIT {
      engine.wake(); // its sessions may run again
    }
  }
  // The client is gone or we are done: unblock a reader waiting for budget.
  budget.close();
}

/// Encodes one message; a reply too large for a frame becomes an error reply.
fn put(down: &Down, buffer: &mut Vec<u8>) {
  let refused = wire::encode_or_refuse(down, down.finishes_request(), buffer, |e| {
    match e {
    WireError::TooLarge { size, limit } => format!(
      "the result is {} MiB, more than one cluster message may carry ({} MiB): read it with each() or in parts",
      size >> 20,
      limit >> 20
    ),
    e => format!("the result cannot be sent to the client: {e}"),
  }
  });
  if let Some(refused) = refused {
    let _ = wire::encode(&refused.reply(), buffer);
  }
}
