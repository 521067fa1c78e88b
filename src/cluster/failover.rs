//! What a member keeps to survive the loss of its master, and what becomes of its requests when
//! that happens (docs/failover.md). Pure policy: it knows requests, replies and the way a link
//! ended, not sockets, locks or how the next master is chosen, so that it can be tested alone.
//!
//! - requests not yet written to the socket go to the next master;
//! - requests written and unanswered fail with `CLUSTER_MASTER_LOST` (never re-sent blindly),
//!   or `CLUSTER_MASTER_UNRESPONSIVE` when the master froze;
//! - a member whose transaction was lost is marked aborted on the next master;
//! - after a graceful `Closing`, unanswered requests were never run and are re-sent.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use super::wire::REPLAY;
use crate::engine::begins_transaction;
use crate::error::{ClusterCode, Error};
use crate::protocol::{Key, LegacyKey, OpenOptions, PragmaKey, Request, Response, Setting};
use crate::value::Params;

/// A request waiting for the next master: `(session, id, request)`.
pub type Pending = (u32, u32, Request);

/// What re-creates a member's session on another master.
#[derive(Default)]
pub struct Replay {
  pub open: Option<OpenOptions>,
  key: Option<(Key, Option<LegacyKey>)>,
  /// Its `PRAGMA key`, applied again on the next master (proved again when that is another
  /// process: the key itself stays here).
  pragma_key: Option<Key>,
  /// Prepared statements: their SQL and last bound parameters.
  statements: BTreeMap<u32, (String, Params)>,
  settings: Vec<Setting>,
  /// The last statement that set each per-Database pragma (`foreign_keys`…), by name.
  pragmas: BTreeMap<&'static str, String>,
  /// Its transaction was lost: the next master marks the session aborted.
  lost_txn: bool,
}

impl Replay {
  /// Notes what `request` changes in the session, before it is sent.
  pub fn record(&mut self, request: &Request) {
    match request {
      Request::Open(options) => self.open = Some(options.clone()),
      Request::Key(key, legacy) => self.key = Some((key.clone(), legacy.clone())),
      Request::PragmaKey(PragmaKey::Given(key)) => self.pragma_key = Some(key.clone()),
      Request::Query { sql, .. } | Request::Exec { sql } => {
        if let Some(name) = crate::engine::per_database_pragma(sql) {
          self.pragmas.insert(name, sql.clone());
        }
      }
      Request::Prepare { stmt, sql } => {
        self.statements.insert(*stmt, (sql.clone(), Params::None));
      }
      Request::Bind { stmt, params } | Request::Execute { stmt, params, .. } if !params.is_none() => {
        if let Some(entry) = self.statements.get_mut(stmt) {
          entry.1 = params.clone();
        }
      }
      Request::Finalize { stmt } => {
        self.statements.remove(stmt);
      }
      Request::Configure(setting) => {
        let same = |s: &Setting| match (s, setting) {
          (Setting::Limit { id: a, .. }, Setting::Limit { id: b, .. }) => a == b,
          _ => std::mem::discriminant(s) == std::mem::discriminant(setting),
        };
        self.settings.retain(|s| !same(s));
        self.settings.push(*setting);
      }
      _ => {}
    }
  }

  /// The member gave a key (with its open, `init`, or `PRAGMA key`).
  pub fn has_key(&self) -> bool {
    self.key.is_some() || self.pragma_key.is_some() || self.open.as_ref().is_some_and(|o| o.key.is_some())
  }

  /// The key a read connection of the member's own must use on an encrypted file: the one it
  /// gave with its open, `init` or `PRAGMA key` (the master proved it against the file).
  pub fn reader_key(&self) -> Option<&Key> {
    let given = self.open.as_ref().and_then(|o| o.key.as_ref());
    given
      .or(self.key.as_ref().map(|(key, _)| key))
      .or(self.pragma_key.as_ref())
  }

  /// The SQL of prepared statement `stmt`.
  pub fn statement_sql(&self, stmt: u32) -> Option<&str> {
    self.statements.get(&stmt).map(|(sql, _)| sql.as_str())
  }

  /// The member's link ended; `in_txn`: its transaction was open on that master, and is lost.
  pub fn link_ended(&mut self, in_txn: bool) {
    self.lost_txn |= in_txn;
  }

  /// The member has prepared statements that are not finalized.
  pub fn has_statements(&self) -> bool {
    !self.statements.is_empty()
  }

  /// The requests that re-create the session, in order. `resent` are the member's requests
  /// that go to the next master anyway (a graceful handover left them unanswered): they were
  /// recorded when first sent, and must not run twice.
  pub fn requests(&mut self, resent: &[&Request]) -> Vec<Request> {
    let mut out = Vec::new();
    let Some(open) = &self.open else { return out };
    if resent.iter().any(|r| matches!(r, Request::Open(_))) {
      return out; // nothing of the session ran yet: the open itself goes again
    }
    out.push(Request::Open(open.clone()));
    if let Some((key, legacy)) = &self.key {
      if !resent.iter().any(|r| matches!(r, Request::Key(..))) {
        out.push(Request::Key(key.clone(), legacy.clone()));
      }
    }
    if let Some(key) = &self.pragma_key {
      if !resent.iter().any(|r| matches!(r, Request::PragmaKey(_))) {
        out.push(Request::PragmaKey(PragmaKey::Given(key.clone())));
      }
    }
    let prepared_again = |stmt: u32| {
      resent
        .iter()
        .any(|r| matches!(r, Request::Prepare { stmt: s, .. } if *s == stmt))
    };
    for (stmt, (sql, params)) in self.statements.iter().filter(|(stmt, _)| !prepared_again(**stmt)) {
      out.push(Request::Prepare {
        stmt: *stmt,
        sql: sql.clone(),
      });
      if !params.is_none() {
        out.push(Request::Bind {
          stmt: *stmt,
          params: params.clone(),
        });
      }
    }
    out.extend(self.settings.iter().map(|s| Request::Configure(*s)));
    out.extend(
      self
        .pragmas
        .values()
        .map(|sql| Request::Exec { sql: sql.clone() }),
    );
    if std::mem::take(&mut self.lost_txn) {
      out.push(Request::Abort);
    }
    out
  }

  /// Whether `request` begins a transaction (a statement, or a prepared one, that does).
  fn begins_transaction(&self, request: &Request) -> bool {
    match request {
      Request::Query { sql, .. } | Request::Exec { sql } => begins_transaction(sql),
      Request::Execute { stmt, .. } => self
        .statements
        .get(stmt)
        .is_some_and(|(sql, _)| begins_transaction(sql)),
      _ => false,
    }
  }
}

/// A key never crosses the socket with `open` (docs/security.md); `init({ key })` does, on an
/// authenticated connection, because the user sent it to the master on purpose. A `PRAGMA key`
/// is tried against the file here, and only the verdict travels.
pub fn for_the_wire(request: Request, open: Option<&OpenOptions>) -> Request {
  match request {
    Request::Open(mut options) => {
      options.key = None;
      Request::Open(options)
    }
    Request::PragmaKey(PragmaKey::Given(key)) => {
      let right = open.is_some_and(|o| crate::engine::prove_key(&o.filename, &key, o.verbose));
      Request::PragmaKey(PragmaKey::Checked(right))
    }
    other => other,
  }
}

/// The requests of `session` waiting for the next master.
pub fn resent_by(pending: &VecDeque<Pending>, session: u32) -> Vec<&Request> {
  pending
    .iter()
    .filter(|(s, _, _)| *s == session)
    .map(|(_, _, request)| request)
    .collect()
}

/// How a client's link to its master ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
  /// The master said `Closing`: what it left unanswered never ran.
  Graceful,
  /// The connection broke.
  Dropped,
  /// The heartbeat heard nothing for this long.
  Unresponsive(Duration),
}

/// What becomes of a request the lost master read (or may have read) and did not answer.
#[derive(Debug, PartialEq)]
pub enum Fate {
  /// A replay: made again from the member's state for the next master.
  Remade,
  /// It never ran: the next master runs it.
  Resent(Request),
  /// Answered here, now.
  Answered(Response),
}

impl Loss {
  /// The fate of request `id` of a member (its `replay`), written to the master of pid
  /// `master_pid` and left unanswered. A lost transaction is noted in `replay`.
  pub fn fate(self, master_pid: u32, id: u32, request: Request, replay: &mut Replay) -> Fate {
    if id == REPLAY {
      return Fate::Remade;
    }
    if self == Loss::Graceful {
      // The master read it but promised it never ran.
      return Fate::Resent(request);
    }
    if let Request::Close = request {
      // Its session went with that master.
      return Fate::Answered(Response::Done);
    }
    if replay.begins_transaction(&request) {
      replay.lost_txn = true;
    }
    let error = match self {
      Loss::Unresponsive(silent) => Error::Cluster {
        code: ClusterCode::MasterUnresponsive,
        message: format!(
          "the master (pid {master_pid}) has not answered for {} ms (stopped or frozen?); the statement may or may not have run, and may still run if the master resumes: check before repeating it",
          silent.as_millis()
        ),
      },
      _ => Error::Cluster {
        code: ClusterCode::MasterLost,
        message: format!(
          "the master (pid {master_pid}) was lost before it answered; the statement may or may not have run, check before repeating it"
        ),
      },
    };
    Fate::Answered(Response::Error(error))
  }

  /// How long the election after this loss may take: after a frozen master, what waits gets
  /// the rest of `connect_timeout` in all.
  pub fn election_within(self, connect_timeout: Duration) -> Duration {
    match self {
      Loss::Unresponsive(silent) => connect_timeout.saturating_sub(silent),
      _ => connect_timeout,
    }
  }
}

/// The fate of a request that was never written: the next master runs it, unless it is a
/// replay (made again from the member's state).
pub fn unsent(id: u32, request: Request) -> Option<Request> {
  (id != REPLAY).then_some(request)
}

/// Waiting `close()`s done in place, taken out of `pending` and returned as `(session, id)`
/// (they are answered `Done`): a close with nothing of its member before it, whose session went
/// with the last master (or never reached one); a process that is leaving does not have to
/// elect a master first. A member with prepared statements still sends its close to the master,
/// which refuses it as node-sqlite3 does. Requests of members that left (`replay_of` is `None`)
/// are dropped.
pub fn close_in_place<'a>(
  pending: &mut VecDeque<Pending>,
  replay_of: impl Fn(u32) -> Option<&'a Replay>,
) -> Vec<(u32, u32)> {
  let mut seen = HashSet::new();
  let mut closed = Vec::new();
  pending.retain(|(session, id, request)| {
    let first = seen.insert(*session);
    let Some(replay) = replay_of(*session) else {
      return false;
    };
    if first && matches!(request, Request::Close) && !replay.has_statements() {
      closed.push((*session, *id));
      return false;
    }
    true
  });
  closed
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::protocol::Mode;

  fn query(sql: &str) -> Request {
    Request::Query {
      sql: sql.into(),
      params: Params::None,
      mode: Mode::Run,
    }
  }

  fn opened() -> Replay {
    let mut replay = Replay::default();
    replay.record(&Request::Open(OpenOptions::for_tests("a.db")));
    replay
  }

  fn code(fate: &Fate) -> Option<ClusterCode> {
    match fate {
      Fate::Answered(Response::Error(Error::Cluster { code, .. })) => Some(*code),
      _ => None,
    }
  }

  #[test]
  fn a_session_is_remade_from_its_open_statements_settings_and_pragmas() {
    let mut replay = opened();
    replay.record(&Request::Prepare {
      stmt: 1,
      sql: "SELECT ?".into(),
    });
    replay.record(&Request::Prepare {
      stmt: 2,
      sql: "SELECT 2".into(),
    });
    replay.record(&Request::Bind {
      stmt: 1,
      params: Params::Positional(vec![crate::value::Bind::Value(crate::value::Value::Integer(7))]),
    });
    replay.record(&Request::Finalize { stmt: 2 });
    replay.record(&query("PRAGMA foreign_keys = ON"));
    replay.record(&query("SELECT 1"));
    let remade = replay.requests(&[]);
    assert!(matches!(&remade[0], Request::Open(o) if o.filename == "a.db"));
    assert!(matches!(&remade[1], Request::Prepare { stmt: 1, sql } if sql == "SELECT ?"));
    assert!(matches!(&remade[2], Request::Bind { stmt: 1, .. }));
    assert!(matches!(&remade[3], Request::Exec { sql } if sql == "PRAGMA foreign_keys = ON"));
    assert_eq!(
      remade.len(),
      4,
      "a finalized statement and plain queries are not replayed"
    );
  }

  #[test]
  fn nothing_resent_runs_twice() {
    let mut replay = opened();
    let prepare = Request::Prepare {
      stmt: 1,
      sql: "SELECT 1".into(),
    };
    replay.record(&prepare);
    assert_eq!(
      replay.requests(&[&prepare]).len(),
      1,
      "only the open: the prepare is resent"
    );
    let open = Request::Open(OpenOptions::for_tests("a.db"));
    assert!(replay.requests(&[&open]).is_empty(), "the open itself is resent");
    assert!(
      Replay::default().requests(&[]).is_empty(),
      "never opened: nothing to remake"
    );
  }

  #[test]
  fn written_and_unanswered_fails_with_master_lost_and_marks_a_lost_transaction() {
    let mut replay = opened();
    let fate = Loss::Dropped.fate(42, 5, query("SELECT 1"), &mut replay);
    assert_eq!(code(&fate), Some(ClusterCode::MasterLost));
    assert!(matches!(&fate, Fate::Answered(Response::Error(e)) if e.message().contains("pid 42")));
    assert!(!replay.lost_txn, "a plain statement loses no transaction");
    let fate = Loss::Dropped.fate(42, 6, query("BEGIN IMMEDIATE"), &mut replay);
    assert_eq!(code(&fate), Some(ClusterCode::MasterLost));
    assert!(replay.lost_txn);
    assert!(
      matches!(replay.requests(&[]).last(), Some(Request::Abort)),
      "the next master marks the session aborted"
    );
    assert!(!replay.lost_txn, "once");
  }

  #[test]
  fn a_prepared_begin_loses_the_transaction_too() {
    let mut replay = opened();
    replay.record(&Request::Prepare {
      stmt: 3,
      sql: "BEGIN".into(),
    });
    let execute = Request::Execute {
      stmt: 3,
      params: Params::None,
      mode: Mode::Run,
    };
    let _ = Loss::Dropped.fate(1, 7, execute, &mut replay);
    assert!(replay.lost_txn);
  }

  #[test]
  fn a_transaction_open_when_the_link_ended_is_marked_aborted_once() {
    let mut replay = opened();
    replay.link_ended(false);
    assert!(!matches!(replay.requests(&[]).last(), Some(Request::Abort)));
    replay.link_ended(true);
    replay.link_ended(false);
    assert!(matches!(replay.requests(&[]).last(), Some(Request::Abort)));
    assert!(!matches!(replay.requests(&[]).last(), Some(Request::Abort)));
  }

  #[test]
  fn a_frozen_master_fails_what_it_holds_as_unresponsive() {
    let mut replay = opened();
    let silent = Duration::from_millis(1500);
    let fate = Loss::Unresponsive(silent).fate(9, 1, query("SELECT 1"), &mut replay);
    assert_eq!(code(&fate), Some(ClusterCode::MasterUnresponsive));
    assert_eq!(
      Loss::Unresponsive(silent).election_within(Duration::from_secs(2)),
      Duration::from_millis(500)
    );
    assert_eq!(
      Loss::Dropped.election_within(Duration::from_secs(2)),
      Duration::from_secs(2)
    );
  }

  #[test]
  fn after_a_graceful_close_unanswered_requests_are_resent() {
    let mut replay = opened();
    let fate = Loss::Graceful.fate(1, 4, query("BEGIN"), &mut replay);
    assert_eq!(fate, Fate::Resent(query("BEGIN")));
    assert!(!replay.lost_txn, "the master promised it never ran");
    assert_eq!(
      Loss::Graceful.fate(1, REPLAY, query("SELECT 1"), &mut replay),
      Fate::Remade
    );
  }

  #[test]
  fn a_close_left_unanswered_is_done_and_replays_are_remade() {
    let mut replay = opened();
    assert_eq!(
      Loss::Dropped.fate(1, 8, Request::Close, &mut replay),
      Fate::Answered(Response::Done)
    );
    assert_eq!(
      Loss::Dropped.fate(1, REPLAY, query("BEGIN"), &mut replay),
      Fate::Remade
    );
    assert!(!replay.lost_txn, "a replay loses nothing the member asked for");
    assert_eq!(unsent(REPLAY, query("SELECT 1")), None);
    assert_eq!(unsent(3, query("SELECT 1")), Some(query("SELECT 1")));
  }

  #[test]
  fn a_waiting_close_with_nothing_before_it_is_done_in_place() {
    let plain = opened();
    let mut with_statement = opened();
    with_statement.record(&Request::Prepare {
      stmt: 1,
      sql: "SELECT 1".into(),
    });
    let replays: BTreeMap<u32, Replay> = [(1, plain), (2, with_statement), (3, opened())].into();
    let mut pending: VecDeque<Pending> = [
      (1, 10, Request::Close),
      (2, 20, Request::Close),
      (3, 30, query("SELECT 1")),
      (3, 31, Request::Close),
      (4, 40, Request::Close),
    ]
    .into();
    let closed = close_in_place(&mut pending, |s| replays.get(&s));
    assert_eq!(closed, vec![(1, 10)]);
    let left: Vec<_> = pending.iter().map(|(s, id, _)| (*s, *id)).collect();
    assert_eq!(
      left,
      vec![(2, 20), (3, 30), (3, 31)],
      "member 4 left: its requests go"
    );
  }

  #[test]
  fn a_key_stays_on_this_side() {
    let mut options = OpenOptions::for_tests("a.db");
    options.key = Some(Key::Passphrase("secret".into()));
    match for_the_wire(Request::Open(options), None) {
      Request::Open(sent) => assert!(sent.key.is_none()),
      other => panic!("{other:?}"),
    }
    let given = Request::PragmaKey(PragmaKey::Given(Key::Passphrase("secret".into())));
    assert_eq!(
      for_the_wire(given, None),
      Request::PragmaKey(PragmaKey::Checked(false)),
      "without an open there is no file to prove it on"
    );
  }

  #[test]
  fn the_requests_of_one_session_are_picked_in_order() {
    let pending: VecDeque<Pending> = [(1, 1, query("a")), (2, 1, query("b")), (1, 2, query("c"))].into();
    assert_eq!(resent_by(&pending, 1), vec![&query("a"), &query("c")]);
  }
}
