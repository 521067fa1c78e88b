//! A client's own read connections (docs/sessions.md#client-read-connections).
//!
//! A read sent to the master crosses the socket and two threads of the master before SQLite
//! runs it. A client on the master's machine can open the file itself, so a Database's read
//! outside a transaction runs on a read connection of the client's process instead, which costs
//! about what a node-sqlite3 read costs. Everything else (writes, transactions, prepared
//! statements, `each()`) still goes to the master.
//!
//! A read runs here only when it returns what it would return on the master:
//! - the master said which file may be read, and that it may be now, and that this Database
//!   may (`Outgoing::ClientReads`: WAL mode, nothing local to the write connection, the session
//!   open, keyed, not aborted, without `trace`/`profile`), and the path here names that file;
//! - the Database is outside a transaction and has nothing unanswered at the master: a read sent
//!   after the answer to a write sees that write, since the master answers a write once it is
//!   committed;
//! - it is a one-shot `get` or `all` whose SQL is a query (the reader checks
//!   `sqlite3_stmt_readonly` too, and gives back what writes), and no prepared statement of the
//!   Database is left stepping a write (`get()` on an `INSERT … RETURNING`), which only the
//!   master's connection sees.
//!
//! While a Database's reads run here, its next requests wait in order (`Held`), so its answers
//! keep the order of its calls.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;

use crate::engine::{is_query, GivenBack, Identity, OwnReader, Settings, Sink};
use crate::protocol::{ClientReads, Key, Mode, OpenOptions, Request};

/// Reads of one Database a reader takes at once, at most.
const BATCH: usize = 32;

/// How a reader reports a batch done: (reader index, session, the reads it gave back).
pub type Done = Arc<dyn Fn(usize, u32, Option<GivenBack>) + Send + Sync>;

/// The read connections of one node of a client process, and what the master said of them.
pub struct OwnReads {
  /// The file the master last said reads may run on here (device, inode).
  file: Option<Identity>,
  /// A file whose reads a reader here gave back (it could not open or read it): reads go to
  /// the master until it names another file.
  unreadable: Option<Identity>,
  /// SQL that looked like a query but writes: it goes to the master directly.
  writes: HashSet<String>,
  readers: Vec<Slot>,
  done: Done,
}

struct Slot {
  jobs: Sender<Job>,
  /// The session whose reads it runs now.
  running: Option<u32>,
  interrupted: Arc<AtomicBool>,
}

struct Job {
  session: u32,
  reads: Vec<(u32, Request)>,
  source: Source,
  settings: Settings,
  sink: Arc<dyn Sink>,
}

/// What a reader opens: a Database's file, flags and key, and the file the master named.
#[derive(Clone, PartialEq)]
struct Source {
  options: OpenOptions,
  key: Option<Key>,
  file: Identity,
}

/// One Database's part: what the master said of it, and its requests waiting behind its reads.
#[derive(Default)]
pub struct MemberReads {
  /// Its per-Database pragmas, once the master said it may read here; `None` before that and
  /// whenever it may not (and after its link ended: the next master tells it again).
  settings: Option<Settings>,
  /// Its reads run on reader `n` now.
  away: Option<usize>,
  /// Its requests sent since, in order.
  held: VecDeque<(u32, Request)>,
  /// Its requests sent to the master and not answered yet (counted under the node's lock, as
  /// answers are delivered, so that a read it runs here never overtakes one).
  unanswered: u32,
  /// Its prepared statements that may have a write left stepping (`get()` or `each()` of a
  /// statement that is not a query), until reset, finalized or run to its end.
  stepping: BTreeSet<u32>,
}

/// What a Database is, for its reads, when one comes.
pub struct Asker<'a> {
  pub session: u32,
  pub reads: &'a mut MemberReads,
  pub open: Option<&'a OpenOptions>,
  /// The key a reader must use: the member's, when the master's file is encrypted.
  pub key: Result<Option<&'a Key>, ()>,
  pub in_txn: bool,
  pub sink: Arc<dyn Sink>,
}

impl MemberReads {
  /// Whether its next requests wait for reads running here.
  pub fn is_away(&self) -> bool {
    self.away.is_some()
  }

  /// Keeps `request` until its reads here are answered.
  pub fn hold(&mut self, id: u32, request: Request) {
    self.held.push_back((id, request));
  }

  /// The master said what this Database may read here.
  pub fn told(&mut self, settings: Option<Settings>) {
    self.settings = settings;
  }

  /// The master answered one of its requests.
  pub fn answered(&mut self) {
    self.unanswered = self.unanswered.saturating_sub(1);
  }

  /// Its link ended: what it had unanswered is settled by the failover policy (and counted
  /// again if sent again), and the next master tells it what it may read.
  pub fn link_ended(&mut self) {
    self.settings = None;
    self.unanswered = 0;
  }

  /// Notes `request`, about to go to the master: it is unanswered, and what it may leave
  /// stepping (`sql`: its prepared statement's SQL).
  pub fn sent(&mut self, request: &Request, sql: Option<&str>) {
    self.unanswered += 1;
    match request {
      Request::Execute { stmt, mode, .. } => {
        let stops = matches!(mode, Mode::Run | Mode::All) || sql.is_some_and(is_query);
        if stops {
          self.stepping.remove(stmt);
        } else {
          self.stepping.insert(*stmt);
        }
      }
      Request::Reset { stmt } | Request::Finalize { stmt } => {
        self.stepping.remove(stmt);
      }
      _ => {}
    }
  }

  /// Its reads are answered (`given_back`, the reads the reader did not run, come first): what
  /// it sent since, in order.
  fn back(&mut self, given_back: Vec<(u32, Request)>) -> Vec<(u32, Request)> {
    self.away = None;
    let mut requests = given_back;
    requests.extend(self.held.drain(..));
    requests
  }
}

impl OwnReads {
  pub fn new(done: Done) -> OwnReads {
    OwnReads {
      file: None,
      unreadable: None,
      writes: HashSet::new(),
      readers: Vec::new(),
      done,
    }
  }

  /// The master's word for one of its sessions (`Outgoing::ClientReads`): the file is the
  /// same for every session, the last word counts.
  pub fn told(&mut self, reads: &ClientReads, member: &mut MemberReads) {
    self.file = reads.file;
    member.told(reads.session);
  }

  /// Runs `request` of `asker` here if it may (see the module's comment); gives it back if not.
  pub fn try_run(&mut self, asker: Asker<'_>, id: u32, request: Request) -> Option<Request> {
    let mut one = VecDeque::from([(id, request)]);
    if self.take(asker, &mut one) {
      return None;
    }
    one.pop_front().map(|(_, request)| request)
  }

  /// Runs the reads at the front of `requests` here, as one batch (up to `BATCH`), if the
  /// first may run here; whether it took any. The reader runs a batch's reads in one read
  /// transaction: they were all sent before the batch began, so its snapshot holds every write
  /// answered before any of them was sent.
  pub fn take(&mut self, asker: Asker<'_>, requests: &mut VecDeque<(u32, Request)>) -> bool {
    let Some(source) = requests.front().and_then(|(_, r)| self.source_for(&asker, r)) else {
      return false;
    };
    let count = requests
      .iter()
      .take(BATCH)
      .take_while(|(_, r)| self.source_for(&asker, r).as_ref() == Some(&source))
      .count();
    let Some(index) = self.free_reader() else {
      return false;
    };
    let job = Job {
      session: asker.session,
      reads: requests.drain(..count).collect(),
      source,
      settings: asker.reads.settings.unwrap_or_default(),
      sink: asker.sink,
    };
    let slot = &mut self.readers[index];
    if let Err(mpsc::SendError(job)) = slot.jobs.send(job) {
      // The thread is gone (it cannot be, short of a panic): the reads go to the master.
      for read in job.reads.into_iter().rev() {
        requests.push_front(read);
      }
      return false;
    }
    slot.running = Some(asker.session);
    asker.reads.away = Some(index);
    true
  }

  fn source_for(&self, asker: &Asker<'_>, request: &Request) -> Option<Source> {
    let Request::Query { sql, mode, .. } = request else {
      return None;
    };
    let file = self.file.filter(|f| self.unreadable != Some(*f))?;
    let may = asker.reads.settings.is_some()
      && asker.reads.stepping.is_empty()
      && !asker.in_txn
      && asker.reads.unanswered == 0
      && matches!(mode, Mode::Get | Mode::All)
      && is_query(sql)
      && !self.writes.contains(sql);
    let options = asker.open.filter(|o| o.read_connections != Some(0))?;
    let key = asker.key.ok()?;
    may.then(|| Source {
      options: options.clone(),
      key: key.cloned(),
      file,
    })
  }

  /// A reader that runs nothing now, started if there are fewer than the engine's default
  /// number of read connections.
  fn free_reader(&mut self) -> Option<usize> {
    if let Some(index) = self.readers.iter().position(|r| r.running.is_none()) {
      return Some(index);
    }
    if self.readers.len() >= crate::engine::default_read_connections() {
      return None;
    }
    let index = self.readers.len();
    let (jobs, receive) = mpsc::channel::<Job>();
    let interrupted = Arc::new(AtomicBool::new(false));
    let done = self.done.clone();
    let flag = interrupted.clone();
    std::thread::Builder::new()
      .name("sqlite3-cluster own reader".into())
      .spawn(move || serve(index, receive, flag, done))
      .ok()?;
    self.readers.push(Slot {
      jobs,
      running: None,
      interrupted,
    });
    Some(index)
  }

  /// Reader `index` answered the reads of `member`: what the member sent since (and what the
  /// reader gave back, first) goes on, in order.
  pub fn finished(
    &mut self,
    index: usize,
    member: &mut MemberReads,
    given_back: Option<GivenBack>,
  ) -> Vec<(u32, Request)> {
    if let Some(slot) = self.readers.get_mut(index) {
      slot.running = None;
    }
    let given_back = match given_back {
      None => Vec::new(),
      Some(GivenBack { requests, writes }) => {
        match writes {
          Some(sql) => {
            self.writes.insert(sql);
          }
          None => self.unreadable = self.file,
        }
        requests
      }
    };
    member.back(given_back)
  }

  /// Stops the read `session` runs here, if it runs one.
  pub fn interrupt(&self, session: u32) {
    for slot in &self.readers {
      if slot.running == Some(session) {
        slot.interrupted.store(true, Ordering::Relaxed);
      }
    }
  }

  /// This process is the master now: its engine has readers of its own, and none runs here
  /// until a master says so again. (The threads stay, idle, for a later link as a client.)
  pub fn stop(&mut self) {
    self.file = None;
  }
}

/// A reader thread: opens its connection for the first job, again when a job names another
/// source, and runs one job at a time.
fn serve(index: usize, jobs: mpsc::Receiver<Job>, interrupted: Arc<AtomicBool>, done: Done) {
  let mut reader: Option<(Source, OwnReader)> = None;
  while let Ok(job) = jobs.recv() {
    if reader.as_ref().map(|(source, _)| source) != Some(&job.source) {
      let own = OwnReader::open(
        job.source.options.clone(),
        job.source.key.clone(),
        job.source.file,
        interrupted.clone(),
      );
      reader = Some((job.source.clone(), own));
    }
    let Some((_, own)) = reader.as_mut() else {
      continue;
    };
    let given_back = own.run(job.reads, job.settings, job.sink);
    if given_back.as_ref().is_some_and(|g| g.writes.is_none()) {
      reader = None; // it could not read the file: a later job opens again
    }
    done(index, job.session, given_back);
  }
}
