//! One-shot statements kept prepared for the next time the same SQL comes (`db.run(sql)` in a
//! loop compiles once). When full, the statement used longest ago makes room: an app's hot
//! statements stay, a burst of one-off SQL passes through.

use std::collections::HashMap;

use super::connection::Statement;

pub struct StatementCache {
  entries: HashMap<String, (Statement, u64)>,
  capacity: usize,
  /// Counts uses: the entry with the smallest stamp was used longest ago.
  clock: u64,
}

impl StatementCache {
  pub fn new(capacity: usize) -> Self {
    StatementCache {
      entries: HashMap::new(),
      capacity,
      clock: 0,
    }
  }

  /// The statement prepared for `sql`, taken out while it runs.
  pub fn take(&mut self, sql: &str) -> Option<Statement> {
    self.entries.remove(sql).map(|(stmt, _)| stmt)
  }

  /// Gives a statement back (reset and unbound by the caller), evicting the least recently used
  /// one when the cache is full.
  pub fn put(&mut self, sql: String, stmt: Statement) {
    if self.entries.len() >= self.capacity && !self.entries.contains_key(&sql) {
      let oldest = self
        .entries
        .iter()
        .min_by_key(|(_, (_, used))| *used)
        .map(|(sql, _)| sql.clone());
      if let Some(oldest) = oldest {
        self.entries.remove(&oldest);
      }
    }
    self.clock += 1;
    self.entries.insert(sql, (stmt, self.clock));
  }

  /// Finalizes every statement (before their connection closes).
  pub fn clear(&mut self) {
    self.entries.clear();
  }

  #[cfg(test)]
  fn holds(&self, sql: &str) -> bool {
    self.entries.contains_key(sql)
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::engine::connection::Connection;

  #[test]
  fn the_statement_used_longest_ago_makes_room() {
    let conn = Connection::open(":memory:", 2 | 4, 1000).unwrap();
    let prepare = |sql: &str| conn.prepare(sql).unwrap().expect("a statement");
    let mut cache = StatementCache::new(2);
    cache.put("SELECT 1".into(), prepare("SELECT 1"));
    cache.put("SELECT 2".into(), prepare("SELECT 2"));
    // SELECT 1 runs again: SELECT 2 is now the one used longest ago.
    let again = cache.take("SELECT 1").unwrap();
    cache.put("SELECT 1".into(), again);
    cache.put("SELECT 3".into(), prepare("SELECT 3"));
    assert!(cache.holds("SELECT 1"));
    assert!(!cache.holds("SELECT 2"));
    assert!(cache.holds("SELECT 3"));
    cache.clear();
  }
}
