//! The result shapes (column names) a session has sent, reused when the same columns come again.
//!
//! JavaScript builds row objects with a small function it compiles once per shape id
//! (`lib/session.js`). The local engine keeps a shape with each cached statement; dqlite sends
//! only column names, so without this every result would carry a new id and cost a compile.

use std::collections::HashMap;
use std::sync::Arc;

use crate::engine::new_shape;
use crate::protocol::Shape;

/// How many shapes a session remembers before it starts over: enough for an app's statements,
/// bounded for one that makes its SQL up as it goes.
const KNOWN_LIMIT: usize = 256;

#[derive(Default)]
pub struct Shapes {
  known: HashMap<Vec<String>, Arc<Shape>>,
}

impl Shapes {
  /// The shape of a result with these columns.
  pub fn of(&mut self, columns: Vec<String>) -> Arc<Shape> {
    if let Some(shape) = self.known.get(&columns) {
      return shape.clone();
    }
    if self.known.len() >= KNOWN_LIMIT {
      self.known.clear();
    }
    let shape = new_shape(columns.clone());
    self.known.insert(columns, shape.clone());
    shape
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn the_same_columns_get_the_same_shape_and_others_another() {
    let mut shapes = Shapes::default();
    let a = shapes.of(vec!["id".into(), "name".into()]);
    assert_eq!(shapes.of(vec!["id".into(), "name".into()]).id, a.id);
    assert_ne!(shapes.of(vec!["name".into(), "id".into()]).id, a.id);
    for i in 0..KNOWN_LIMIT {
      shapes.of(vec![format!("c{i}")]);
    }
    assert!(shapes.known.len() <= KNOWN_LIMIT, "bounded");
  }
}
