//! `sqlite3-cluster-node`: one node of a dqlite cluster, for the `dqlite://` filenames of
//! sqlite3-cluster (docs/dqlite.md#running-nodes).
//!
//!     sqlite3-cluster-node --listen HOST:PORT --dir DATA [--join HOST:PORT]... [--latency-ms N]
//!
//! The first node of a cluster starts without `--join` and leads alone. Every other node starts
//! with `--join` (any running member): it asks the leader to add it, then to make it a voter.
//! A node keeps its id and membership in DATA; restart it with the same `--listen` and `--dir`
//! (its `--join` is then ignored). SIGTERM or SIGINT stops it gracefully: a leader first hands
//! leadership to another voter, so that clients wait for no election.

mod ffi;
mod peer;
#[path = "../../src/dqlite/wire.rs"]
#[allow(dead_code)] // the codec also encodes what only the addon's client sends
mod wire;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The codec's values (`src/dqlite/wire.rs` names them `crate::value::Value`, as in the addon,
/// which this program must not link: it carries its own SQLite).
mod value {
  #[derive(Debug, Clone, PartialEq)]
  pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
  }
}

/// The id a new cluster's first node takes: it starts as the only voter, and leads.
const BOOTSTRAP_ID: u64 = 1;

/// How long a joining node keeps asking the cluster to take it.
const JOIN_WITHIN: Duration = Duration::from_secs(30);

const USAGE: &str =
  "usage: sqlite3-cluster-node --listen HOST:PORT --dir DATA [--join HOST:PORT]... [--latency-ms N]

  --listen HOST:PORT  where this node serves clients and the other nodes (the address they use)
  --dir DATA          its data: Raft log, snapshots, id (one folder per node)
  --join HOST:PORT    a running member to join through (repeat for several); omit for the first node
  --latency-ms N      the network's round trip in ms (default 20): elections take about 15 x N";

struct Options {
  listen: String,
  dir: PathBuf,
  join: Vec<String>,
  latency_ms: u32,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
  let (mut listen, mut dir, mut join, mut latency_ms) = (None, None, Vec::new(), 20u32);
  let mut args = args.peekable();
  while let Some(arg) = args.next() {
    let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
    match arg.as_str() {
      "--listen" => listen = Some(value("--listen")?),
      "--dir" => dir = Some(PathBuf::from(value("--dir")?)),
      "--join" => join.push(value("--join")?),
      "--latency-ms" => {
        let n = value("--latency-ms")?;
        latency_ms = n
          .parse()
          .ok()
          .filter(|ms| (1..=10_000).contains(ms))
          .ok_or_else(|| format!("--latency-ms takes a number of milliseconds from 1 to 10000, not {n:?}"))?;
      }
      "--help" | "-h" => return Err(String::new()),
      other => return Err(format!("unknown argument {other:?}")),
    }
  }
  Ok(Options {
    listen: listen.ok_or("--listen is required")?,
    dir: dir.ok_or("--dir is required")?,
    join,
    latency_ms,
  })
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
  // Only an atomic store: all a signal handler may do safely.
  STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
  // SAFETY: `signal` with SIG_IGN, or with a handler that only stores to an atomic, is
  // async-signal-safe. SIGPIPE must be ignored: a follower writing to the socket of a leader that
  // just died would otherwise be killed by it, and the cluster would lose its majority.
  unsafe {
    libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    libc::signal(libc::SIGTERM, handler);
    libc::signal(libc::SIGINT, handler);
  }
}

/// The node's id: the one kept in its folder, or a new one (1 for a cluster's first node).
fn node_id(dir: &Path, options: &Options) -> Result<(u64, bool), String> {
  let file = dir.join("sqlite3-cluster-node.id");
  if let Ok(text) = std::fs::read_to_string(&file) {
    let id = text
      .trim()
      .parse()
      .map_err(|_| format!("{} does not hold a node id", file.display()))?;
    return Ok((id, false));
  }
  let id = if options.join.is_empty() {
    BOOTSTRAP_ID
  } else {
    ffi::generate_id(&options.listen)?
  };
  std::fs::write(&file, format!("{id}\n")).map_err(|e| format!("{}: {e}", file.display()))?;
  Ok((id, true))
}

/// Asks the cluster, through the members in `join`, to add node `id` at `address` and make it a
/// voter. Retries (a leader may be being elected) until `JOIN_WITHIN` has passed.
fn join(id: u64, address: &str, through: &[String]) -> Result<(), String> {
  let deadline = Instant::now() + JOIN_WITHIN;
  let mut last_error = String::from("no member answered");
  let mut delay = Duration::from_millis(50);
  while Instant::now() < deadline {
    for member in through {
      match join_through(id, address, member) {
        Ok(()) => return Ok(()),
        Err(e) => last_error = e,
      }
    }
    std::thread::sleep(delay);
    delay = (delay * 2).min(Duration::from_secs(1));
  }
  Err(format!(
    "cannot join the cluster within {} s: {last_error}",
    JOIN_WITHIN.as_secs()
  ))
}

/// One attempt through `member`: what is already done is not asked again, and the answer is
/// the leader's own list of members (a request's error text cannot tell "already a member"
/// from "another change is in progress").
fn join_through(id: u64, address: &str, member: &str) -> Result<(), String> {
  let (_, leader) = peer::leader(member)?.ok_or_else(|| format!("{member} knows no leader yet"))?;
  let role_now = |leader: &str| -> Result<Option<Option<wire::Role>>, String> {
    Ok(
      peer::members(leader)?
        .into_iter()
        .find(|m| m.id == id)
        .map(|m| m.role),
    )
  };
  if role_now(&leader)?.is_none() {
    peer::call(&leader, wire::Request::Add { id, address })?;
  }
  if role_now(&leader)? != Some(Some(wire::Role::Voter)) {
    let role = wire::Role::Voter;
    peer::call(&leader, wire::Request::Assign { id, role })?;
  }
  match role_now(&leader)? {
    Some(Some(wire::Role::Voter)) => Ok(()),
    role => Err(format!("{leader} lists this node as {role:?}, not yet a voter")),
  }
}

/// A leader hands leadership to another voter before it stops, so that the cluster need not
/// wait for an election timeout to notice it gone.
fn hand_over(id: u64, address: &str) {
  let Ok(Some((leader, _))) = peer::leader(address) else {
    return;
  };
  if leader != id {
    return;
  }
  let Ok(members) = peer::members(address) else {
    return;
  };
  // The first voter that answers and takes it: a voter may be down (then the transfer fails).
  let voters = members
    .iter()
    .filter(|m| m.id != id && m.role == Some(wire::Role::Voter));
  for voter in voters {
    if peer::leader(&voter.address).is_err() {
      continue;
    }
    match peer::call(address, wire::Request::Transfer { id: voter.id }) {
      Ok(_) => {
        eprintln!(
          "sqlite3-cluster-node: leadership handed to node {} ({})",
          voter.id, voter.address
        );
        return;
      }
      Err(e) => eprintln!(
        "sqlite3-cluster-node: could not hand leadership to {}: {e}",
        voter.address
      ),
    }
  }
}

fn run(options: Options) -> Result<(), String> {
  let dir = options
    .dir
    .to_str()
    .ok_or("--dir must be valid UTF-8")?
    .to_owned();
  std::fs::create_dir_all(&options.dir).map_err(|e| format!("{dir}: {e}"))?;
  let (id, new) = node_id(&options.dir, &options)?;
  let mut node = ffi::Node::create(id, &options.listen, &dir)?;
  node.bind(&options.listen)?;
  node.set_latency_ms(options.latency_ms)?;
  node.connect_without_delay()?;
  node.start()?;
  let joined = options.dir.join("sqlite3-cluster-node.joined");
  if id != BOOTSTRAP_ID && !joined.exists() {
    if options.join.is_empty() {
      return Err("this node has not joined a cluster yet: give --join".into());
    }
    join(id, &options.listen, &options.join)?;
    std::fs::write(&joined, b"").map_err(|e| format!("{}: {e}", joined.display()))?;
  }
  eprintln!(
    "sqlite3-cluster-node: node {id} serving on {} ({}), data in {dir}",
    options.listen,
    if new { "new" } else { "restarted" }
  );
  while !STOP.load(Ordering::SeqCst) {
    std::thread::sleep(Duration::from_millis(50));
  }
  hand_over(id, &options.listen);
  drop(node);
  eprintln!("sqlite3-cluster-node: node {id} stopped");
  Ok(())
}

fn main() {
  install_signal_handlers();
  let options = match parse(std::env::args().skip(1)) {
    Ok(options) => options,
    Err(why) => {
      if why.is_empty() {
        println!("{USAGE}");
        return;
      }
      eprintln!("sqlite3-cluster-node: {why}\n\n{USAGE}");
      std::process::exit(2);
    }
  };
  if let Err(why) = run(options) {
    eprintln!("sqlite3-cluster-node: {why}");
    std::process::exit(1);
  }
}
