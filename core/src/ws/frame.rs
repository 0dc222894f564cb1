//! The frame layout (RFC 6455 §5.2), through tungstenite's public frame codec
//! (`FrameHeader::parse` / `FrameHeader::format`).
//!
//! [`parse_head`] reads one frame header and makes every check that needs no payload —
//! reserved bits and opcodes, masking direction, control-frame rules, the size limit —
//! so a frame is refused before a byte of its payload is buffered. [`encode_frame`]
//! writes one frame, masked with the mask the caller gives (RFC 6455 §5.3 wants masks
//! unpredictable; the core takes its randomness from the caller).

use std::io::Cursor;

use tungstenite::protocol::frame::coding::{Control, Data, OpCode as TOpCode};
use tungstenite::protocol::frame::FrameHeader;

use super::{ProtocolViolation, Role};

/// Longest frame header, in bytes: 2 + 8 (64-bit length) + 4 (mask) (RFC 6455 §5.2).
pub const MAX_HEAD_BYTES: usize = 14;

/// Largest control-frame payload, in bytes (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// What a frame carries (RFC 6455 §5.2, §11.8). Reserved opcodes are refused on reading
/// and cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: text (for this protocol: in the app's charset, PROTOCOL §4).
    Text,
    /// 0x2: binary.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// Close, ping and pong are control frames (RFC 6455 §5.5).
    pub const fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }

    /// The 4-bit value on the wire.
    pub const fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    fn from_tungstenite(op: TOpCode) -> Result<Self, ProtocolViolation> {
        Ok(match op {
            TOpCode::Data(Data::Continue) => OpCode::Continuation,
            TOpCode::Data(Data::Text) => OpCode::Text,
            TOpCode::Data(Data::Binary) => OpCode::Binary,
            TOpCode::Control(Control::Close) => OpCode::Close,
            TOpCode::Control(Control::Ping) => OpCode::Ping,
            TOpCode::Control(Control::Pong) => OpCode::Pong,
            TOpCode::Data(Data::Reserved(b)) | TOpCode::Control(Control::Reserved(b)) => {
                return Err(ProtocolViolation::ReservedOpcode(b))
            }
        })
    }

    fn to_tungstenite(self) -> TOpCode {
        TOpCode::from(self.as_u8())
    }
}

/// One parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// FIN: the last frame of its message.
    pub fin: bool,
    /// What the frame carries.
    pub opcode: OpCode,
    /// The masking key, present on client frames (RFC 6455 §5.3).
    pub mask: Option<[u8; 4]>,
    /// The declared payload length, in bytes (never more than the limit given to
    /// [`parse_head`]).
    pub payload_len: u64,
    /// The length of the header itself, in bytes (2 to [`MAX_HEAD_BYTES`]).
    pub head_len: usize,
}

/// Parses the frame header at the start of `bytes`, as `receiver` reads it.
///
/// `Ok(None)` means the header is not complete yet (it never needs more than
/// [`MAX_HEAD_BYTES`]). Refused, in this order: reserved opcodes, reserved bits (no
/// extension is ever negotiated), a frame masked the wrong way for `receiver`
/// (RFC 6455 §5.1), a fragmented or over-125-byte control frame (§5.5), and a data frame
/// declaring more than `max_payload` bytes.
pub fn parse_head(
    bytes: &[u8],
    receiver: Role,
    max_payload: u64,
) -> Result<Option<FrameHead>, ProtocolViolation> {
    let mut cursor = Cursor::new(bytes);
    let (header, payload_len) = match FrameHeader::parse(&mut cursor) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Ok(None),
        Err(_) => {
            // Reading from a slice cannot fail with I/O errors; the one error
            // `FrameHeader::parse` returns otherwise is the reserved opcode.
            let opcode = bytes.first().map_or(0, |b| b & 0x0F);
            return Err(ProtocolViolation::ReservedOpcode(opcode));
        }
    };
    // At most 14 bytes were read from a slice: the position fits in usize.
    let head_len = usize::try_from(cursor.position()).unwrap_or(MAX_HEAD_BYTES);
    let opcode = OpCode::from_tungstenite(header.opcode)?;
    if header.rsv1 || header.rsv2 || header.rsv3 {
        let bits = u8::from(header.rsv1) << 2 | u8::from(header.rsv2) << 1 | u8::from(header.rsv3);
        return Err(ProtocolViolation::ReservedBits { bits });
    }
    match (receiver, header.mask.is_some()) {
        (Role::Server, false) => return Err(ProtocolViolation::UnmaskedClientFrame),
        (Role::Client, true) => return Err(ProtocolViolation::MaskedServerFrame),
        _ => {}
    }
    if opcode.is_control() {
        if !header.is_final {
            return Err(ProtocolViolation::FragmentedControl);
        }
        if payload_len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(ProtocolViolation::ControlTooLong { len: payload_len });
        }
    } else if payload_len > max_payload {
        return Err(ProtocolViolation::FrameTooLarge {
            declared: payload_len,
            limit: max_payload,
        });
    }
    Ok(Some(FrameHead {
        fin: header.is_final,
        opcode,
        mask: header.mask,
        payload_len,
        head_len,
    }))
}

/// Encodes one frame: header (tungstenite's layout) and payload, masked with `mask`
/// when given (client frames, RFC 6455 §5.3). No check is made here that the frame
/// is allowed (control payload length, fragmentation); [`super::WsConnection`] does.
pub fn encode_frame(fin: bool, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let header = FrameHeader {
        is_final: fin,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode: opcode.to_tungstenite(),
        mask,
    };
    let len = payload.len() as u64;
    let mut out = Vec::with_capacity(header.len(len) + payload.len());
    // Formatting into a Vec cannot fail: writes to a Vec never return an error.
    let _ = header.format(len, &mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(mask) = mask {
        apply_mask(&mut out[start..], mask, 0);
    }
    out
}

/// Masks or unmasks `bytes` in place (the operation is its own inverse, RFC 6455 §5.3),
/// for bytes that start `offset` bytes into the payload.
pub fn apply_mask(bytes: &mut [u8], mask: [u8; 4], offset: u64) {
    let start = (offset % 4) as usize;
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte ^= mask[(start + i) % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::frame::Frame;

    #[test]
    fn rfc_examples() {
        // RFC 6455 §5.7: a single-frame unmasked text "Hello" and its masked form.
        assert_eq!(
            encode_frame(true, OpCode::Text, b"Hello", None),
            [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
        let masked = encode_frame(true, OpCode::Text, b"Hello", Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(
            masked,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        let head = parse_head(&masked, Role::Server, 100).unwrap().unwrap();
        assert_eq!(
            head,
            FrameHead {
                fin: true,
                opcode: OpCode::Text,
                mask: Some([0x37, 0xfa, 0x21, 0x3d]),
                payload_len: 5,
                head_len: 6
            }
        );
        // 256 bytes binary: 16-bit length; 64 KiB: 64-bit length.
        assert_eq!(
            encode_frame(true, OpCode::Binary, &[0; 256], None)[..4],
            [0x82, 0x7E, 0x01, 0x00]
        );
        assert_eq!(
            encode_frame(true, OpCode::Binary, &[0; 65536], None)[..10],
            [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]
        );
    }

    #[test]
    fn same_bytes_as_tungstenite_frame_format() {
        for len in [0usize, 1, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut header = FrameHeader {
                    is_final: false,
                    opcode: TOpCode::Data(Data::Binary),
                    ..FrameHeader::default()
                };
                header.mask = mask;
                let mut theirs = Vec::new();
                Frame::from_payload(header, payload.clone().into())
                    .format(&mut theirs)
                    .unwrap();
                assert_eq!(encode_frame(false, OpCode::Binary, &payload, mask), theirs);
            }
        }
    }

    #[test]
    fn partial_heads_need_more() {
        let frame = encode_frame(true, OpCode::Text, &[0; 70000], Some([9, 9, 9, 9]));
        for cut in 0..14 {
            assert_eq!(
                parse_head(&frame[..cut], Role::Server, 1 << 20),
                Ok(None),
                "{cut}"
            );
        }
        assert_eq!(
            parse_head(&frame[..14], Role::Server, 1 << 20)
                .unwrap()
                .unwrap()
                .payload_len,
            70000
        );
    }

    #[test]
    fn refusals() {
        let parse = |bytes: &[u8], role| parse_head(bytes, role, 1000);
        assert_eq!(
            parse(&[0x83, 0x00], Role::Client),
            Err(ProtocolViolation::ReservedOpcode(3))
        );
        assert_eq!(
            parse(&[0x8B, 0x00], Role::Client),
            Err(ProtocolViolation::ReservedOpcode(0xB))
        );
        assert_eq!(
            parse(&[0xC1, 0x00], Role::Client),
            Err(ProtocolViolation::ReservedBits { bits: 0b100 })
        );
        assert_eq!(
            parse(&[0x91, 0x00], Role::Client),
            Err(ProtocolViolation::ReservedBits { bits: 0b001 })
        );
        assert_eq!(
            parse(&[0x81, 0x00], Role::Server),
            Err(ProtocolViolation::UnmaskedClientFrame)
        );
        assert_eq!(
            parse(&[0x81, 0x80, 1, 2, 3, 4], Role::Client),
            Err(ProtocolViolation::MaskedServerFrame)
        );
        assert_eq!(
            parse(&[0x09, 0x00], Role::Client),
            Err(ProtocolViolation::FragmentedControl)
        );
        assert_eq!(
            parse(&[0x89, 0x7E, 0x00, 0x7E], Role::Client),
            Err(ProtocolViolation::ControlTooLong { len: 126 })
        );
        // A header claiming 2^62 bytes is refused on its 10 header bytes.
        let huge = [0x82, 0x7F, 0x40, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse(&huge, Role::Client),
            Err(ProtocolViolation::FrameTooLarge {
                declared: 1 << 62,
                limit: 1000
            })
        );
    }

    #[test]
    fn mask_offsets() {
        let mask = [0xA1, 0xB2, 0xC3, 0xD4];
        let mut whole: Vec<u8> = (0..23).collect();
        apply_mask(&mut whole, mask, 0);
        for split in 0..23 {
            let mut parts: Vec<u8> = (0..23).collect();
            let (a, b) = parts.split_at_mut(split);
            apply_mask(a, mask, 0);
            apply_mask(b, mask, split as u64);
            assert_eq!(parts, whole);
        }
    }
}
