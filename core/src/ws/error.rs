//! What can go wrong on an open connection: the peer breaking RFC 6455
//! ([`ProtocolViolation`]) or the caller asking for something the protocol forbids
//! ([`WriteError`]).

use super::CloseCode;

/// The peer sent bytes that break RFC 6455 (or exceed our size limit). Fatal: the
/// connection answers every later read with the same error, and queues a Close frame
/// with [`ProtocolViolation::close_code`] to send before closing the stream (RFC 6455
/// §7.1.7, "Fail the WebSocket Connection").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolViolation {
    /// RSV1–3 set, with no extension negotiated (RFC 6455 §5.2). `bits` are the three
    /// bits as RSV1 RSV2 RSV3, high to low.
    #[error("reserved bits {bits:03b} set with no extension negotiated (RFC 6455 §5.2)")]
    ReservedBits {
        /// RSV1, RSV2, RSV3 as a 3-bit number.
        bits: u8,
    },
    /// An opcode RFC 6455 reserves (3–7, 11–15; §5.2).
    #[error("reserved opcode {0:#x} (RFC 6455 §5.2)")]
    ReservedOpcode(u8),
    /// A client frame without a mask, read by a server (RFC 6455 §5.1).
    #[error("unmasked frame from a client (RFC 6455 §5.1)")]
    UnmaskedClientFrame,
    /// A server frame with a mask, read by a client (RFC 6455 §5.1).
    #[error("masked frame from a server (RFC 6455 §5.1)")]
    MaskedServerFrame,
    /// A control frame without FIN (RFC 6455 §5.5).
    #[error("fragmented control frame (RFC 6455 §5.5)")]
    FragmentedControl,
    /// A control frame declaring more than 125 bytes of payload (RFC 6455 §5.5).
    #[error("control frame of {len} bytes, over 125 (RFC 6455 §5.5)")]
    ControlTooLong {
        /// The declared payload length, in bytes.
        len: u64,
    },
    /// A data frame declaring a payload larger than the message limit, refused on its
    /// header, before any of the payload is buffered.
    #[error("frame declares {declared} bytes of payload, over the limit of {limit} bytes")]
    FrameTooLarge {
        /// The declared payload length, in bytes.
        declared: u64,
        /// The limit, in bytes ([`super::WsLimits::max_message_bytes`]).
        limit: u64,
    },
    /// A continuation frame that would take the message past the limit, refused on its
    /// header.
    #[error("fragmented message would reach {total} bytes, over the limit of {limit} bytes")]
    MessageTooLarge {
        /// The bytes already assembled plus the continuation's declared length.
        total: u64,
        /// The limit, in bytes ([`super::WsLimits::max_message_bytes`]).
        limit: u64,
    },
    /// A continuation frame with no fragmented message to continue (RFC 6455 §5.4).
    #[error("continuation frame with no message to continue (RFC 6455 §5.4)")]
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is unfinished (RFC 6455
    /// §5.4).
    #[error("new data frame inside an unfinished fragmented message (RFC 6455 §5.4)")]
    UnfinishedMessage,
    /// A Close frame whose payload is a single byte (RFC 6455 §5.5.1).
    #[error("close frame with a 1-byte payload (RFC 6455 §5.5.1)")]
    CloseTooShort,
    /// A Close frame with a code that may not be sent (RFC 6455 §7.4).
    #[error("close frame with code {0}, which may not be sent (RFC 6455 §7.4)")]
    BadCloseCode(u16),
    /// A Close frame whose reason is not UTF-8 (RFC 6455 §5.5.1, §8.1: the endpoint
    /// must fail the connection, with 1007).
    #[error("close frame whose reason is not UTF-8 (RFC 6455 §5.5.1, §8.1)")]
    CloseReasonNotUtf8,
}

impl ProtocolViolation {
    /// The close code to fail the connection with: 1009 for the size limits, 1007 for
    /// a close reason that is not UTF-8, 1002 otherwise (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolViolation::CloseReasonNotUtf8 => CloseCode::INVALID_PAYLOAD,
            ProtocolViolation::FrameTooLarge { .. } | ProtocolViolation::MessageTooLarge { .. } => {
                CloseCode::MESSAGE_TOO_BIG
            }
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// The caller asked to send something RFC 6455 forbids. Nothing was encoded; the
/// connection is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// A Close frame was already sent or queued (by [`super::WsConnection::close`], as the
    /// echo of the peer's close, or after a protocol violation): no frame may follow it
    /// (RFC 6455 §5.5.1).
    #[error("the connection is closing: no frame may follow a close frame (RFC 6455 §5.5.1)")]
    Closing,
    /// A ping payload over 125 bytes, or a close reason over 123 bytes (RFC 6455 §5.5).
    #[error("control frame payload of {len} bytes, over 125 (RFC 6455 §5.5)")]
    ControlTooLong {
        /// The payload length that would have been sent, in bytes.
        len: usize,
    },
    /// A close code that may not be sent (RFC 6455 §7.4; see [`CloseCode::is_sendable`]).
    #[error("close code {0} may not be sent (RFC 6455 §7.4)")]
    CloseCodeNotSendable(u16),
}
