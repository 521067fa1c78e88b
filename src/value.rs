//! SQL values as they travel between JavaScript, the engine and (later) the socket.
//!
//! A value keeps its exact content on every hop: text may hold NUL, a float keeps every bit,
//! a blob stays bytes. The JavaScript type rules (int32 → INTEGER, other numbers → REAL, …)
//! are applied once, where a JavaScript value becomes a [`Value`], in `js::convert`.

use serde::{Deserialize, Serialize};

/// One SQLite value, by storage class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
  Null,
  Integer(i64),
  Real(f64),
  Text(String),
  Blob(Vec<u8>),
}

impl Value {
  /// About how many bytes the value takes in a message (its content plus a little framing).
  pub fn size(&self) -> usize {
    match self {
      Value::Text(text) => text.len() + 9,
      Value::Blob(bytes) => bytes.len() + 9,
      _ => 9,
    }
  }
}

/// A value to bind. `Skip` leaves the parameter unbound (NULL) and is never a range error:
/// node-sqlite3 treats `undefined`, BigInt and Symbol this way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Bind {
  Skip,
  Value(Value),
}

/// Where a named parameter goes: an explicit position (`{ 1: … }`) or a name with its prefix
/// exactly as written in the SQL (`$id`, `:id`, `@id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ParamKey {
  Index(i32),
  Name(String),
}

/// The parameters of one call, in node-sqlite3's three shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum Params {
  /// No parameters were given: existing bindings of a prepared statement are kept.
  #[default]
  None,
  /// Positions 1..n.
  Positional(Vec<Bind>),
  /// Keys of a plain object.
  Named(Vec<(ParamKey, Bind)>),
}

impl Params {
  pub fn is_none(&self) -> bool {
    matches!(self, Params::None)
  }
}
