//! The message layer of one open websocket connection (RFC 6455 §5.4–5.5, §7), sans-IO.

use super::frame::{self, apply_mask, encode_frame, FrameHead, OpCode, MAX_HEAD_BYTES};
use super::{CloseCode, ProtocolViolation, Role, WriteError};

/// Bounds on what a [`WsConnection`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsLimits {
    /// Largest message, in bytes, summed over its fragments (default 1 MiB, the default
    /// of [`crate::frame::FrameLimits::max_frame_bytes`]). A frame whose header declares
    /// more is refused before its payload is read (close 1009).
    pub max_message_bytes: usize,
}

impl Default for WsLimits {
    fn default() -> Self {
        WsLimits {
            max_message_bytes: 1024 * 1024,
        }
    }
}

/// What a [`WsConnection::read`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WsEvent {
    /// A complete text message (fragments joined), its payload as received: in the app's
    /// charset, not checked as UTF-8 (PROTOCOL §4). Decode it with
    /// [`crate::charset::Charset::decode_strict`].
    Text(Vec<u8>),
    /// A complete binary message. The platform never sends one (PROTOCOL §4 has text
    /// frames only); it is handed over as is and the caller decides (the session drops
    /// it).
    Binary(Vec<u8>),
    /// A pong, with its payload (at most 125 bytes): the answer to a heartbeat ping, or
    /// an unsolicited one (RFC 6455 §5.5.3).
    Pong(Vec<u8>),
    /// The close handshake is over (RFC 6455 §7.1.4): the peer sent a Close frame, either
    /// first (`by_peer`; the echo is queued for [`WsConnection::poll_transmit`]) or as
    /// the answer to ours. Write what `poll_transmit` still gives, then close the stream.
    Closed {
        /// The peer's code; `None` when its Close frame had no payload (1005, §7.1.5).
        code: Option<CloseCode>,
        /// The peer's reason (UTF-8: a reason that is not fails the connection with
        /// [`ProtocolViolation::CloseReasonNotUtf8`], RFC 6455 §8.1).
        reason: String,
        /// The peer closed first.
        by_peer: bool,
    },
}

/// Where the connection is in its life (RFC 6455 §7).
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Both directions open.
    Open,
    /// We sent (or queued) a Close frame and wait for the peer's.
    CloseSent,
    /// Close frames went both ways (or ours is queued as the echo): nothing more is read.
    Closed,
    /// The peer broke the protocol; every read answers this.
    Failed(ProtocolViolation),
}

/// The frame whose payload is being read.
#[derive(Debug)]
struct InFrame {
    head: FrameHead,
    /// Payload bytes read so far.
    read: u64,
}

/// One websocket connection after the opening handshake, for either [`Role`]: bytes in,
/// messages out; messages in, bytes out.
///
/// Reading: feed what the stream gives to [`WsConnection::read`]; it consumes bytes up to
/// the end of the first frame that completes an event and returns that event, so call it
/// again with the rest. After each read, write whatever [`WsConnection::poll_transmit`]
/// gives (pongs, the close echo, the close that fails the connection).
///
/// Memory is bounded: at most one frame header ([`frame::MAX_HEAD_BYTES`]) is buffered,
/// payloads go straight into the message being assembled (never more than
/// [`WsLimits::max_message_bytes`], reserved only once a frame header has been checked
/// against the limit) or into a control payload (at most 125 bytes), and at most one pong
/// and one close wait to be sent: a pong answers the latest ping only (RFC 6455 §5.5.3
/// allows it).
///
/// Masks: the client role masks every frame with the 4 bytes the caller passes (draw them
/// from a random source for each frame, RFC 6455 §5.3); the server role ignores them.
#[derive(Debug)]
pub struct WsConnection {
    role: Role,
    limits: WsLimits,
    state: State,
    /// Header bytes of the next frame, while incomplete.
    head: [u8; MAX_HEAD_BYTES],
    head_len: usize,
    /// The frame whose payload is being read.
    frame: Option<InFrame>,
    /// The data message being assembled: its opcode (text or binary) and bytes so far.
    message: Option<(OpCode, Vec<u8>)>,
    /// The payload of the control frame being read.
    control: Vec<u8>,
    /// A pong to send: the payload of the latest ping.
    pending_pong: Option<Vec<u8>>,
    /// A close frame payload to send (echo or failure).
    pending_close: Option<Vec<u8>>,
}

impl WsConnection {
    /// A connection in the open state, as `role`, right after the opening handshake
    /// (feed it the bytes that followed the handshake answer first).
    pub fn new(role: Role, limits: WsLimits) -> Self {
        WsConnection {
            role,
            limits,
            state: State::Open,
            head: [0; MAX_HEAD_BYTES],
            head_len: 0,
            frame: None,
            message: None,
            control: Vec::with_capacity(frame::MAX_CONTROL_PAYLOAD),
            pending_pong: None,
            pending_close: None,
        }
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Neither side has sent a Close frame: messages may be sent.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// The close handshake is over or the connection failed: once
    /// [`WsConnection::poll_transmit`] gives nothing more, close the stream.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed | State::Failed(_))
    }

    /// Reads `input`: returns how many bytes were consumed and the event, if a frame
    /// completed one. When an event comes back, the bytes after it were not consumed:
    /// call again with `&input[consumed..]`. Without an event, all of `input` was
    /// consumed.
    ///
    /// Once the close handshake is over, input is consumed and ignored. A protocol
    /// violation is fatal and sticky: this and every later read return it, and a Close
    /// frame with its code is queued (unless we had sent one already).
    pub fn read(&mut self, input: &[u8]) -> Result<(usize, Option<WsEvent>), ProtocolViolation> {
        match &self.state {
            State::Failed(violation) => return Err(violation.clone()),
            State::Closed => return Ok((input.len(), None)),
            State::Open | State::CloseSent => {}
        }
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            let Some(in_frame) = &mut self.frame else {
                let had = self.head_len;
                let take = (MAX_HEAD_BYTES - had).min(rest.len());
                self.head[had..had + take].copy_from_slice(&rest[..take]);
                let parsed = frame::parse_head(
                    &self.head[..had + take],
                    self.role,
                    self.limits.max_message_bytes as u64,
                );
                match parsed {
                    Ok(None) => {
                        self.head_len = had + take;
                        used += take;
                    }
                    Ok(Some(head)) => {
                        // The header was incomplete with `had` bytes, so it ends in `rest`.
                        used += head.head_len - had;
                        self.head_len = 0;
                        self.start_frame(head).map_err(|v| self.fail(v))?;
                        if head.payload_len == 0 {
                            if let Some(event) = self.finish_frame()? {
                                return Ok((used, Some(event)));
                            }
                        }
                    }
                    Err(violation) => return Err(self.fail(violation)),
                }
                continue;
            };
            let left = in_frame.head.payload_len - in_frame.read;
            // `left` is at most the message limit, a usize.
            let take = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
            let offset = in_frame.read;
            in_frame.read += take as u64;
            let done = in_frame.read == in_frame.head.payload_len;
            let mask = in_frame.head.mask;
            let target = if in_frame.head.opcode.is_control() {
                &mut self.control
            } else {
                match &mut self.message {
                    Some((_, bytes)) => bytes,
                    // start_frame opened the message for every data frame.
                    None => &mut self.control,
                }
            };
            let start = target.len();
            target.extend_from_slice(&rest[..take]);
            if let Some(mask) = mask {
                apply_mask(&mut target[start..], mask, offset);
            }
            used += take;
            if done {
                if let Some(event) = self.finish_frame()? {
                    return Ok((used, Some(event)));
                }
            }
        }
        Ok((used, None))
    }

    /// Checks a new frame against the message in progress (RFC 6455 §5.4) and the limit,
    /// then reserves its payload.
    fn start_frame(&mut self, head: FrameHead) -> Result<(), ProtocolViolation> {
        let limit = self.limits.max_message_bytes as u64;
        // parse_head checked payload_len against the limit (usize) or 125.
        let len = usize::try_from(head.payload_len).unwrap_or(usize::MAX);
        match head.opcode {
            OpCode::Continuation => {
                let Some((_, bytes)) = &mut self.message else {
                    return Err(ProtocolViolation::UnexpectedContinuation);
                };
                let total = bytes.len() as u64 + head.payload_len;
                if total > limit {
                    return Err(ProtocolViolation::MessageTooLarge { total, limit });
                }
                bytes.reserve_exact(len);
            }
            OpCode::Text | OpCode::Binary => {
                if self.message.is_some() {
                    return Err(ProtocolViolation::UnfinishedMessage);
                }
                self.message = Some((head.opcode, Vec::with_capacity(len)));
            }
            OpCode::Close | OpCode::Ping | OpCode::Pong => self.control.clear(),
        }
        self.frame = Some(InFrame { head, read: 0 });
        Ok(())
    }

    /// The current frame's payload is complete: what it means.
    fn finish_frame(&mut self) -> Result<Option<WsEvent>, ProtocolViolation> {
        let Some(InFrame { head, .. }) = self.frame.take() else {
            return Ok(None);
        };
        match head.opcode {
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if !head.fin {
                    return Ok(None);
                }
                Ok(self.message.take().map(|(opcode, bytes)| match opcode {
                    OpCode::Binary => WsEvent::Binary(bytes),
                    _ => WsEvent::Text(bytes),
                }))
            }
            OpCode::Ping => {
                if self.state == State::Open {
                    self.pending_pong = Some(self.control.clone());
                }
                Ok(None)
            }
            OpCode::Pong => Ok(Some(WsEvent::Pong(self.control.clone()))),
            OpCode::Close => {
                let (code, reason) = match self.control.as_slice() {
                    [] => (None, String::new()),
                    [_] => return Err(self.fail(ProtocolViolation::CloseTooShort)),
                    [hi, lo, reason @ ..] => {
                        let code = u16::from_be_bytes([*hi, *lo]);
                        if !CloseCode(code).is_sendable() {
                            return Err(self.fail(ProtocolViolation::BadCloseCode(code)));
                        }
                        let Ok(reason) = std::str::from_utf8(reason) else {
                            return Err(self.fail(ProtocolViolation::CloseReasonNotUtf8));
                        };
                        (Some(CloseCode(code)), reason.to_owned())
                    }
                };
                let by_peer = self.state == State::Open;
                if by_peer {
                    // Echo the code (RFC 6455 §5.5.1); no pong may follow the close.
                    self.pending_pong = None;
                    self.pending_close =
                        Some(code.map_or_else(Vec::new, |c| c.0.to_be_bytes().to_vec()));
                }
                self.state = State::Closed;
                self.message = None;
                Ok(Some(WsEvent::Closed {
                    code,
                    reason,
                    by_peer,
                }))
            }
        }
    }

    /// Fails the connection (RFC 6455 §7.1.7): sticky error, close queued, buffers freed.
    fn fail(&mut self, violation: ProtocolViolation) -> ProtocolViolation {
        if self.state == State::Open {
            self.pending_close = Some(violation.close_code().0.to_be_bytes().to_vec());
        }
        self.pending_pong = None;
        self.frame = None;
        self.message = None;
        self.state = State::Failed(violation.clone());
        violation
    }

    /// The next frame the connection itself wants written: a pong answering the latest
    /// ping, then the close echo or the close that fails the connection. Call after every
    /// [`WsConnection::read`] until it gives `None`. `mask` masks the frame in the client
    /// role (fresh random bytes per call).
    pub fn poll_transmit(&mut self, mask: [u8; 4]) -> Option<Vec<u8>> {
        if let Some(payload) = self.pending_pong.take() {
            return Some(self.encode(OpCode::Pong, &payload, mask));
        }
        let payload = self.pending_close.take()?;
        Some(self.encode(OpCode::Close, &payload, mask))
    }

    /// A text message as one frame, payload as given (already in the app's charset,
    /// PROTOCOL §4).
    pub fn encode_text(&mut self, payload: &[u8], mask: [u8; 4]) -> Result<Vec<u8>, WriteError> {
        self.check_open()?;
        Ok(self.encode(OpCode::Text, payload, mask))
    }

    /// A ping (the heartbeat, PROTOCOL §8) with `payload` (at most 125 bytes).
    pub fn ping(&mut self, payload: &[u8], mask: [u8; 4]) -> Result<Vec<u8>, WriteError> {
        self.check_open()?;
        if payload.len() > frame::MAX_CONTROL_PAYLOAD {
            return Err(WriteError::ControlTooLong { len: payload.len() });
        }
        Ok(self.encode(OpCode::Ping, payload, mask))
    }

    /// Starts the close handshake (RFC 6455 §7.1.2) with `code` and `reason` (UTF-8, at
    /// most 123 bytes). No frame may be sent after it; reads go on until the peer's Close
    /// arrives ([`WsEvent::Closed`] with `by_peer: false`).
    pub fn close(
        &mut self,
        code: CloseCode,
        reason: &str,
        mask: [u8; 4],
    ) -> Result<Vec<u8>, WriteError> {
        self.check_open()?;
        if !code.is_sendable() {
            return Err(WriteError::CloseCodeNotSendable(code.0));
        }
        let mut payload = Vec::with_capacity(2 + reason.len());
        payload.extend_from_slice(&code.0.to_be_bytes());
        payload.extend_from_slice(reason.as_bytes());
        if payload.len() > frame::MAX_CONTROL_PAYLOAD {
            return Err(WriteError::ControlTooLong { len: payload.len() });
        }
        self.pending_pong = None;
        self.state = State::CloseSent;
        Ok(self.encode(OpCode::Close, &payload, mask))
    }

    fn check_open(&self) -> Result<(), WriteError> {
        if self.state == State::Open {
            Ok(())
        } else {
            Err(WriteError::Closing)
        }
    }

    fn encode(&self, opcode: OpCode, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mask = match self.role {
            Role::Client => Some(mask),
            Role::Server => None,
        };
        encode_frame(true, opcode, payload, mask)
    }
}
