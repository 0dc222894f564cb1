//! Redelivery on another connection ([`ServerConfig::redeliver_elsewhere`]): with
//! several instances of a service connected for one app, the platform's redelivery of a
//! message may reach another instance than the one that had it. Messages go to the
//! app's connections round robin anyway ([`ServerSession::pick_conn`]); this makes a
//! redelivery avoid the connection of the message's last attempt whenever another one
//! can take it.

use super::{ConnectionId, MsgId, ServerSession};

#[cfg(doc)]
use super::ServerConfig;

impl ServerSession {
    /// Turns [`ServerConfig::redeliver_elsewhere`] on or off while running (the
    /// simulator's switch).
    pub fn set_redeliver_elsewhere(&mut self, on: bool) {
        self.config.redeliver_elsewhere = on;
    }

    /// Whether redeliveries avoid the connection of the last attempt.
    pub fn redeliver_elsewhere(&self) -> bool {
        self.config.redeliver_elsewhere
    }

    /// The connection for message `id`'s next attempt: `picked` (the round robin's
    /// choice), unless redelivering elsewhere and `picked` carried its last attempt;
    /// then the next other open connection of the app with window space, if any.
    pub(crate) fn redelivery_conn(
        &mut self,
        app_id: &str,
        id: &MsgId,
        picked: ConnectionId,
    ) -> ConnectionId {
        if !self.config.redeliver_elsewhere {
            return picked;
        }
        let last = self.messages.get(id).and_then(|m| m.last_conn);
        if last != Some(picked) {
            return picked;
        }
        let candidates = self.apps.get(app_id).map_or(0, |a| a.conns.len());
        // The round robin moves on past `picked`: at most one pass over the others.
        for _ in 0..candidates {
            match self.pick_conn(app_id) {
                Some(conn) if conn != picked => return conn,
                Some(_) => {}
                None => break,
            }
        }
        picked
    }
}
