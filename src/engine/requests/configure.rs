//! `db.configure()`: connection settings (busy timeout, limits) and the session's hooks.

use super::Turn;
use crate::engine::database::Database;
use crate::engine::session::Session;
use crate::protocol::Setting;

impl Database {
  pub(super) fn configure(&mut self, session: &mut Session, setting: Setting, turn: &impl Turn) {
    let conn = self.conn.as_mut().expect("checked by handle()");
    match setting {
      Setting::BusyTimeout(ms) => conn.set_busy_timeout(ms),
      Setting::Limit { id, value } => conn.set_limit(id, value),
      Setting::Trace(on) => session.hooks.trace = on,
      Setting::Profile(on) => session.hooks.profile = on,
      Setting::Change(on) => session.hooks.change = on,
    }
    if matches!(
      setting,
      Setting::Trace(_) | Setting::Profile(_) | Setting::Change(_)
    ) {
      // Each connection hook is on while any session (this one included) wants it.
      self.set_hooks(session.hooks.union(turn.hooks_of_others()));
    }
  }
}
