//! The websocket of one accepted connection, server role (RFC 6455 §5–7): frames read
//! and unmasked by [`crate::ws::WsConnection`], text payloads decoded strictly in the
//! connection's charset (PROTOCOL §4), pings answered, the close handshake, and the
//! connection failed on a violation.
//!
//! What a client can do wrong, and what the platform does:
//!
//! - a text frame whose bytes are not valid in the connection's charset → close 1007
//!   ("not valid GBK"), as the platform's Java client does (PROTOCOL §4),
//!   [`ServerEvent::UndecodableText`];
//! - an RFC 6455 violation (unmasked frame §5.1, reserved bits or opcodes §5.2, broken
//!   fragmentation §5.4, oversized control frames §5.5) → close 1002; a message over
//!   [`crate::frame::FrameLimits::max_frame_bytes`] → close 1009;
//!   [`ServerEvent::ProtocolViolation`].
//!
//! Either way the websocket counts as closed by the server at once (its messages in
//! flight are redelivered, PROTOCOL §6) and [`ServerOutput::Close`] follows the close
//! frame.

use std::time::Instant;

use crate::ws::{CloseCode, WsEvent};

use super::{ConnectionId, ServerEvent, ServerOutput, ServerSession};

/// The mask argument of the server role, which sends unmasked frames (RFC 6455 §5.1)
/// and ignores it.
pub(super) const NO_MASK: [u8; 4] = [0; 4];

impl ServerSession {
    /// Reads websocket bytes of open connection `conn`: every text message to
    /// [`ServerSession::on_text`], every frame the websocket wants written (pongs, the
    /// close echo, the failing close) to [`ServerOutput::Write`].
    pub(super) fn read_websocket(&mut self, conn: ConnectionId, mut input: &[u8], now: Instant) {
        loop {
            let Some(c) = self.connections.get_mut(&conn).filter(|c| !c.closing) else {
                // Closed by the platform: what the client still sends means nothing.
                return;
            };
            let result = c.ws.read(input);
            let mut bytes = Vec::new();
            while let Some(frame) = c.ws.poll_transmit(NO_MASK) {
                bytes.extend_from_slice(&frame);
            }
            let charset = c.charset;
            if !bytes.is_empty() {
                self.outputs.push_back(ServerOutput::Write { conn, bytes });
            }
            let event = match result {
                Ok((used, event)) => {
                    input = &input[used..];
                    event
                }
                Err(violation) => {
                    // The failing close frame was written above.
                    self.event(ServerEvent::ProtocolViolation { conn, violation });
                    self.closed_by_server(conn, now);
                    return;
                }
            };
            match event {
                None => return,
                Some(WsEvent::Text(payload)) => match charset.decode_strict(&payload) {
                    Ok(text) => self.on_text(conn, &text, now),
                    Err(error) => {
                        let reason = format!("not valid {charset}");
                        self.event(ServerEvent::UndecodableText { conn, error });
                        self.close_websocket(conn, CloseCode::INVALID_PAYLOAD, &reason);
                        self.close_connection(conn, true, now);
                        return;
                    }
                },
                Some(WsEvent::Closed { .. }) => {
                    // The close handshake is over; the echo, if any, was written above.
                    self.outputs.push_back(ServerOutput::Close { conn });
                    self.close_connection(conn, false, now);
                    return;
                }
                // Pongs and binary messages mean nothing here (PROTOCOL §4 has text
                // frames only); pings were answered through `poll_transmit`.
                Some(_) => {}
            }
        }
    }

    /// The websocket failed: its close frame is written already; close the stream.
    fn closed_by_server(&mut self, conn: ConnectionId, now: Instant) {
        if let Some(c) = self.connections.get_mut(&conn) {
            c.closing = true;
        }
        self.outputs.push_back(ServerOutput::Close { conn });
        self.close_connection(conn, true, now);
    }
}
