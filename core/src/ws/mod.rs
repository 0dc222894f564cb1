//! The websocket protocol (RFC 6455) over bytes, for both ends of a connection.
//!
//! The platform's message channel is a websocket (PROTOCOL §1, §4). This module speaks it
//! sans-IO, as the rest of the core does: it takes the bytes read from the TCP (or TLS)
//! stream and returns the bytes to write. Nothing here reads a clock or a random source;
//! the websocket key and the client's frame masks come from the caller.
//!
//! - [`handshake`] — the opening handshake (RFC 6455 §4): the client's upgrade request
//!   and the check of the server's `101` answer ([`handshake::ClientHandshake`]); the
//!   server's reading of an upgrade request and its answer
//!   ([`handshake::ServerHandshake`]).
//! - [`frame`] — the frame layout (RFC 6455 §5.2), through tungstenite's public frame
//!   codec: header parsing with every check that can be made before the payload
//!   arrives, and frame encoding with a caller-supplied mask.
//! - [`WsConnection`] — the message layer of one open connection (RFC 6455 §5.4–5.5, §7):
//!   reassembly of fragmented messages under a size limit, pings answered, pongs
//!   reported, the close handshake.
//!
//! Text payloads are bytes, not strings: the platform writes text frames in the app's
//! charset (UTF-8 or GBK, PROTOCOL §4), which RFC 6455 readers would refuse as invalid
//! UTF-8. Decoding is the caller's step, with [`crate::charset::Charset::decode_strict`].

mod close_code;
mod connection;
mod error;
pub mod frame;
pub mod handshake;

pub use close_code::CloseCode;
pub use connection::{WsConnection, WsEvent, WsLimits};
pub use error::{ProtocolViolation, WriteError};

/// Which end of the connection this is. It decides masking (RFC 6455 §5.1): a client
/// masks every frame it sends and refuses masked frames; a server sends unmasked frames
/// and refuses unmasked ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The end that opened the connection (the app's message client).
    Client,
    /// The end that accepted it (the platform, or the simulator playing it).
    Server,
}
