//! The read connections of one engine (docs/sessions.md#read-connections): how many there may
//! be, which are free, which hold an `each()` for a session, and starting and stopping their
//! threads (`reader.rs`). Readers are opened when a read first finds none free, up to the pool's
//! capacity, and all are closed with the write connection, whose file and key they share.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use once_cell::sync::Lazy;

use super::reader::{self, Job, Outcome, Source, SourceOf};
use super::{Command, SessionId, Shared};

/// Read connections when the application does not say: one per CPU, at least 2 (one long read
/// must not hold up every other), at most 8 (each keeps its own page cache). Asked once: on
/// Linux the CPU count reads the process's cgroup files, which costs more than a point read.
pub fn default_capacity() -> usize {
  static CAPACITY: Lazy<usize> = Lazy::new(|| {
    std::thread::available_parallelism()
      .map_or(2, |n| n.get())
      .clamp(2, 8)
  });
  *CAPACITY
}

pub(super) struct ReadPool {
  readers: Vec<Slot>,
  /// How the readers open were opened.
  source: Option<Source>,
  /// A reader could not open the file: every read goes to the write connection until the
  /// connection changes.
  broken: bool,
  /// SQL that looked like a query but writes: it goes to the write connection directly.
  writes: HashSet<String>,
  shared: Arc<Shared>,
  /// The readers' way back to the engine thread.
  done: Sender<Command>,
  /// Counts the times the readers were closed: a report of a reader closed since (it finished
  /// while being closed) says nothing of the reader now at its index.
  epoch: u64,
}

struct Slot {
  jobs: Sender<Job>,
  thread: Option<JoinHandle<()>>,
  /// Running a job now.
  busy: bool,
  /// The session whose `each()` it holds between chunks: it runs nothing else meanwhile.
  holding: Option<SessionId>,
}

impl ReadPool {
  pub fn new(shared: Arc<Shared>, done: Sender<Command>) -> ReadPool {
    ReadPool {
      readers: Vec::new(),
      source: None,
      broken: false,
      writes: HashSet::new(),
      shared,
      done,
      epoch: 0,
    }
  }

  /// Whether reads may go to readers at all: the pool may have some, and none failed to open.
  pub fn available(&self, capacity: usize) -> bool {
    capacity > 0 && !self.broken
  }

  /// Whether `sql` turned out to write (see `Outcome::Returned`).
  pub fn known_to_write(&self, sql: &str) -> bool {
    self.writes.contains(sql)
  }

  /// A reader free to take a job now, opened (from `source`, the write connection's file and
  /// key, built only when the pool has none like it) if none is and the pool has fewer than
  /// `capacity`. Readers opened from another source (the key changed) are closed first, once
  /// none is in use.
  pub fn free_reader(&mut self, source: SourceOf<'_>, capacity: usize) -> Option<usize> {
    if !self.source.as_ref().is_some_and(|s| source.is(s)) {
      if !self.is_idle() {
        return None;
      }
      self.close();
      self.source = Some(source.to_owned());
    }
    let source = self.source.clone()?;
    if let Some(i) = self.readers.iter().position(|r| !r.busy && r.holding.is_none()) {
      return Some(i);
    }
    if !self.available(capacity) || self.readers.len() >= capacity {
      return None;
    }
    self.start_reader(source)
  }

  fn start_reader(&mut self, source: Source) -> Option<usize> {
    let index = self.readers.len();
    let (jobs, receive) = mpsc::channel();
    let (shared, done, epoch) = (self.shared.clone(), self.done.clone(), self.epoch);
    let thread = std::thread::Builder::new()
      .name("sqlite3-cluster reader".into())
      .spawn(move || reader::serve((epoch, index), source, shared, receive, done))
      .ok()?;
    self.readers.push(Slot {
      jobs,
      thread: Some(thread),
      busy: false,
      holding: None,
    });
    Some(index)
  }

  /// Asks reader `(epoch, index)`, which holds the session's `each()`, for its next chunk.
  /// False when that reader was closed since (the stream is lost).
  pub fn next_chunk(&mut self, (epoch, index): (u64, usize)) -> bool {
    if epoch != self.epoch || index >= self.readers.len() {
      return false;
    }
    self.send(index, Job::NextChunk);
    true
  }

  /// Gives reader `index` a job (it must be free, or hold the stream a `NextChunk` is for).
  pub fn send(&mut self, index: usize, job: Job) {
    let Some(slot) = self.readers.get_mut(index) else {
      return;
    };
    slot.busy = !matches!(job, Job::DropStream);
    if slot.jobs.send(job).is_err() {
      slot.busy = false;
      self.broken = true;
    }
  }

  /// Reader `index` of `epoch` finished a job for `session` with `outcome`.
  pub fn finished(&mut self, (epoch, index): (u64, usize), session: SessionId, outcome: &Outcome) {
    if epoch != self.epoch {
      return;
    }
    match outcome {
      Outcome::Returned { writes, reads } => {
        if let Some(sql) = writes {
          self.writes.insert(sql.clone());
        } else if !reads.is_empty() {
          self.broken = true;
        }
      }
      Outcome::Answered { .. } => {}
    }
    if let Some(slot) = self.readers.get_mut(index) {
      slot.busy = false;
      slot.holding = match outcome {
        Outcome::Answered { stream: Some(_), .. } => Some(session),
        _ => None,
      };
    }
  }

  /// The session is gone: a stream a reader holds for it ends.
  pub fn forget(&mut self, session: SessionId) {
    for i in 0..self.readers.len() {
      if self.readers[i].holding == Some(session) {
        self.readers[i].holding = None;
        self.send(i, Job::DropStream);
      }
    }
  }

  /// Whether a reader holds an `each()` between chunks.
  pub fn holds_streams(&self) -> bool {
    self.readers.iter().any(|r| r.holding.is_some())
  }

  /// Whether no reader runs a job or holds a stream (the file may be swapped).
  pub fn is_idle(&self) -> bool {
    self.readers.iter().all(|r| !r.busy && r.holding.is_none())
  }

  /// Closes every reader: what runs is interrupted, and each thread is waited for, so that no
  /// read connection outlives the write connection.
  pub fn close(&mut self) {
    if self.readers.is_empty() {
      return;
    }
    {
      let running = self.shared.on_readers.lock().unwrap_or_else(|e| e.into_inner());
      for flag in running.values() {
        flag.store(true, Ordering::Relaxed);
      }
    }
    for mut slot in self.readers.drain(..) {
      drop(slot.jobs);
      if let Some(thread) = slot.thread.take() {
        let _ = thread.join();
      }
    }
    self.epoch += 1;
    self.source = None;
    self.broken = false;
    self.writes.clear();
  }
}
