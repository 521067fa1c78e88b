//! A client process's connection to its master: one socket that carries every member's session
//! (docs/protocol.md). `connect` checks who serves the socket and runs the client's half of the
//! handshake; then three tasks run on the cluster thread: the writer (what members staged, in
//! one write per burst), the reader (answers, handed to the node), and the heartbeat (a frozen
//! master is given up). The connection tracks what it wrote and has not seen answered, so that
//! the node can settle those requests when the link ends (`failover`). It decides nothing about
//! them itself, and never touches a member.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::auth;
use super::failover::{Loss, Pending};
use super::handshake::{self, Attempt, HANDSHAKE_AT_LEAST, HANDSHAKE_TIMEOUT};
use super::wire::{self, Challenge, Down, FrameReader, FrameWriter, Framed, Up};
use crate::error::{ClusterCode, Error};
use crate::protocol::Request;

/// What a connection tells the node it serves.
pub trait Owner: Send + Sync + 'static {
  /// Delivers what the master sent, or the answers given here in its place.
  fn deliver(&self, frames: &mut Vec<Down>);
  /// The connection of `generation` ended (`Graceful`, `Dropped`) or is given up
  /// (`Unresponsive`).
  fn lost(self: Arc<Self>, generation: u64, loss: Loss);
}

/// One multiplexed connection to the master.
pub struct Conn {
  /// Which link of the node this is: a task of an older link reports nothing that counts.
  pub generation: u64,
  pub master_pid: u32,
  queue: Mutex<ConnQueue>,
  wake: Notify,
  /// Stops the reader when the link is given up while the master still holds the socket open
  /// (a frozen master).
  stop: Notify,
}

/// A request written to the master and not answered yet, by `(session, id)`: its place in the
/// order of writes, and the request itself (for the failover policy).
pub type Written = HashMap<(u32, u32), (u64, Request)>;

#[derive(Default)]
struct ConnQueue {
  /// Frames not yet taken by the writer.
  frames: Vec<Up>,
  written: Written,
  sequence: u64,
  /// The link is gone: the writer stops.
  dead: bool,
  /// The process is leaving: the writer flushes and stops.
  closing: bool,
  /// When the master was last heard from, and since when a request has waited for it (`None`
  /// while nothing is written and unanswered): the heartbeat's clock.
  heard: Option<Instant>,
  waiting_since: Option<Instant>,
}

impl Conn {
  pub fn new(generation: u64, master_pid: u32) -> Arc<Conn> {
    Arc::new(Conn {
      generation,
      master_pid,
      queue: Mutex::new(ConnQueue::default()),
      wake: Notify::new(),
      stop: Notify::new(),
    })
  }

  fn lock(&self) -> MutexGuard<'_, ConnQueue> {
    self.queue.lock().unwrap_or_else(|e| e.into_inner())
  }

  /// Queues a frame and wakes the writer.
  pub fn push(&self, up: Up) {
    self.lock().frames.push(up);
    self.wake.notify_one();
  }

  /// Queues without waking the writer: the caller flushes after a burst (see `Node::flush`).
  pub fn stage(&self, up: Up) {
    self.lock().frames.push(up);
  }

  /// Writes what was staged.
  pub fn flush(&self) {
    self.wake.notify_one();
  }

  /// The process leaves: the writer sends what is queued, then closes its end.
  pub fn close(&self) {
    self.lock().closing = true;
    self.wake.notify_one();
  }

  /// The link is given up: its tasks stop, and what it had not written, and what it wrote and
  /// saw unanswered (in the order written), go to the failover policy.
  pub fn give_up(&self) -> (Vec<Up>, Vec<Pending>) {
    let (unsent, written) = {
      let mut queue = self.lock();
      queue.dead = true;
      (
        std::mem::take(&mut queue.frames),
        std::mem::take(&mut queue.written),
      )
    };
    self.wake.notify_one();
    self.stop.notify_one();
    let mut written: Vec<_> = written.into_iter().collect();
    written.sort_by_key(|(_, (sequence, _))| *sequence);
    let written = written
      .into_iter()
      .map(|((session, id), (_, request))| (session, id, request))
      .collect();
    (unsent, written)
  }
}

fn refused_by(sock: &Path, e: impl std::fmt::Display) -> Attempt {
  Attempt::Fatal(Error::sqlite(
    rusqlite::ffi::SQLITE_CANTOPEN,
    format!("cannot connect to the cluster socket {}: {e}", sock.display()),
  ))
}

/// Connects and authenticates (both ways) to the master at `sock`, if one answers before
/// `deadline`.
pub async fn connect(
  sock: &Path,
  secret: Option<&[u8]>,
  deadline: Instant,
) -> Result<(FrameReader<OwnedReadHalf>, FrameWriter<OwnedWriteHalf>, Challenge), Attempt> {
  use std::io::ErrorKind;
  let stream = match UnixStream::connect(sock).await {
    Ok(stream) => stream,
    // Anything but a refusal to let us in is passing (no socket, nobody listening while a
    // master starts or closes, a full backlog, a reset while it closes): look again.
    Err(e) if e.kind() != ErrorKind::PermissionDenied => return Err(Attempt::Retry),
    Err(e) => return Err(refused_by(sock, e)),
  };
  match stream.peer_cred() {
    Ok(cred) if cred.uid() == auth::euid() => {}
    Ok(cred) => {
      return Err(Attempt::Fatal(Error::Cluster {
        code: ClusterCode::Auth,
        message: format!(
          "the process serving {} runs as uid {}, not as this process's uid {}: refusing to talk to it",
          sock.display(),
          cred.uid(),
          auth::euid()
        ),
      }))
    }
    Err(_) => return Err(Attempt::Retry),
  }
  let (read, write) = stream.into_split();
  let mut framed = Framed::new(read, write);
  let within = deadline
    .saturating_duration_since(Instant::now())
    .clamp(HANDSHAKE_AT_LEAST, HANDSHAKE_TIMEOUT);
  let challenge = handshake::as_client(&mut framed, secret, sock, within).await?;
  let (reader, write) = framed.into_parts();
  Ok((reader, write, challenge))
}

/// Starts the connection's tasks on the cluster runtime; `silence` is how long the master may
/// stay silent while requests wait (`heartbeat_timeout`).
pub fn run<N: Owner>(
  conn: &Arc<Conn>,
  reader: FrameReader<OwnedReadHalf>,
  write: FrameWriter<OwnedWriteHalf>,
  owner: Weak<N>,
  silence: Duration,
) {
  let runtime = super::runtime();
  runtime.spawn(writer(conn.clone(), write, owner.clone()));
  runtime.spawn(heartbeat(conn.clone(), owner.clone(), silence));
  runtime.spawn(reader_task(conn.clone(), reader, owner));
}

/// How long a master may stay silent while requests wait for it: half of `connectTimeout`, so
/// that with the new election that follows, what waits has failed within about `connectTimeout`.
pub fn heartbeat_timeout(connect_timeout: Duration) -> Duration {
  (connect_timeout / 2).max(Duration::from_millis(100))
}

/// Writes what members staged, a burst per write. Each request is encoded while it is taken
/// from the queue and then kept, moved and not copied, among the written-and-unanswered.
async fn writer<N: Owner>(conn: Arc<Conn>, mut write: FrameWriter<OwnedWriteHalf>, owner: Weak<N>) {
  let mut frames = Vec::new();
  let mut refused = Vec::new();
  loop {
    conn.wake.notified().await;
    let buffer = write.pending();
    let closing = {
      let mut queue = conn.lock();
      if queue.dead {
        return;
      }
      std::mem::swap(&mut queue.frames, &mut frames);
      for up in frames.drain(..) {
        let request = up.request();
        if request.is_some() && queue.waiting_since.is_none() {
          queue.waiting_since = Some(Instant::now());
        }
        // Too large to send: answered here instead.
        if let Some(no) = wire::encode_or_refuse(&up, request, buffer, |e| {
          format!("the request cannot be sent to the master: {e}")
        }) {
          refused.push(no.reply());
          continue;
        }
        if let Up::Request { session, id, request } = up {
          queue.sequence += 1;
          let sequence = queue.sequence;
          queue.written.insert((session, id), (sequence, request));
        }
      }
      queue.closing
    };
    if !refused.is_empty() {
      match owner.upgrade() {
        Some(owner) => owner.deliver(&mut refused),
        None => refused.clear(),
      }
    }
    if !buffer.is_empty() && write.write_out().await.is_err() {
      // The master closed its end. The reader tells how: its `Closing` may be waiting to be
      // read, and then what this write carried never ran and goes to the next master.
      return;
    }
    if closing {
      let _ = write.shutdown().await;
      return;
    }
  }
}

async fn reader_task<N: Owner>(conn: Arc<Conn>, mut reader: FrameReader<OwnedReadHalf>, owner: Weak<N>) {
  let mut frames = Vec::new();
  loop {
    frames.clear();
    let result = tokio::select! {
      result = reader.batch::<Down>(&mut frames) => result,
      _ = conn.stop.notified() => return,
    };
    let ended = result.is_err() || frames.is_empty();
    let mut graceful = false;
    {
      let mut queue = conn.lock();
      queue.heard = Some(Instant::now());
      for down in &frames {
        if let Some(key) = down.finishes_request() {
          queue.written.remove(&key);
        }
        graceful |= matches!(down, Down::Closing);
      }
      if queue.written.is_empty() {
        queue.waiting_since = None;
      }
      if queue.closing && ended {
        return; // we left; the master closed its end
      }
    }
    let Some(owner) = owner.upgrade() else { return };
    owner.deliver(&mut frames);
    if graceful || ended {
      owner.lost(
        conn.generation,
        if graceful { Loss::Graceful } else { Loss::Dropped },
      );
      return;
    }
  }
}

/// The client's heartbeat: while requests wait for answers and the master has been silent for
/// a quarter of `timeout`, ask it `Ping`; its socket tasks answer at once, whatever its engine
/// is doing (a long query does not count as silence). Silent for `timeout`: the master is
/// stopped or frozen, and the link is given up (`Loss::Unresponsive`).
async fn heartbeat<N: Owner>(conn: Arc<Conn>, owner: Weak<N>, timeout: Duration) {
  let interval = (timeout / 4).max(Duration::from_millis(10));
  let mut tick = Instant::now();
  // When this process was itself stopped (SIGSTOP, a debugger), the master's silence is ours:
  // it is counted again from the moment we run again.
  let mut awake_since = tick;
  loop {
    tokio::time::sleep(interval).await;
    let now = Instant::now();
    if now - tick > interval * 2 {
      awake_since = now;
    }
    tick = now;
    let silent = {
      let queue = conn.lock();
      if queue.dead || queue.closing {
        return;
      }
      match (queue.waiting_since, queue.heard) {
        (None, _) => continue,
        (Some(waiting), heard) => now - waiting.max(heard.unwrap_or(waiting)).max(awake_since),
      }
    };
    if silent >= timeout {
      if let Some(owner) = owner.upgrade() {
        owner.lost(conn.generation, Loss::Unresponsive(silent));
      }
      return;
    }
    if silent >= interval {
      conn.push(Up::Ping);
    }
  }
}
