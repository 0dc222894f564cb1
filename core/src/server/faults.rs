//! Deterministic fault injection: what the simulated platform does wrong, on purpose,
//! so that client tests can see each failure the real platform (or the network) can
//! produce. Counters say "the next N"; each use decrements them.

use std::time::Duration;

use super::ConnectionId;

/// The text sent by [`FaultPlan::garbage_before_consumes`]: no `\r\n\r\n`, so it is not
/// a frame (PROTOCOL §4).
pub const GARBAGE_FRAME: &str = "this is not a frame";

/// Which faults are armed. Set with [`super::ServerSession::set_faults`] or adjust with
/// [`super::ServerSession::faults_mut`]; `FaultPlan::default()` is "no faults".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Close a connection right after N more frames were sent to it: the N-th frame
    /// (CONSUME, duplicate, garbage or PRODUCE_ACK) is followed by
    /// [`super::ServerOutput::Close`], and the connection counts as closed by the
    /// server (its unacked messages are redelivered, as for any disconnect). Fires once.
    pub close_after_frames: Option<CloseAfterFrames>,
    /// Never answer the next N PRODUCEs (the client's PRODUCE timeout should fire).
    pub withhold_produce_acks: u32,
    /// Answer every PRODUCE this long after it arrived (while set). The answer is
    /// dropped if the connection has closed by then.
    pub delay_produce_acks: Option<Duration>,
    /// The next N CONSUMEs of genuine messages go out with a corrupted `x-sign` (its
    /// first base64 character replaced), so they do not verify. Each counts as an
    /// attempt; the client should answer FAIL and the message is redelivered intact.
    pub corrupt_consumes: u32,
    /// The next N CONSUMEs are sent twice: a second copy with the same `x-msgId` right
    /// after the first, on another open connection of the app when there is one, else on
    /// the same connection. The copy is not an extra attempt; an ack from either
    /// connection counts, later acks are reported as
    /// [`super::UnexpectedAck::NotInFlight`].
    pub duplicate_consumes: u32,
    /// The next N CONSUMEs are preceded by [`GARBAGE_FRAME`] on the same connection.
    pub garbage_before_consumes: u32,
}

/// Close a connection after a number of frames (see
/// [`FaultPlan::close_after_frames`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseAfterFrames {
    /// The connection; `None` = whichever connection next reaches the count (frames
    /// are counted over all connections together).
    pub conn: Option<ConnectionId>,
    /// Frames still to send before closing; 0 behaves as 1.
    pub frames: u32,
}

/// Uses one unit of a "next N" counter.
pub(crate) fn take(counter: &mut u32) -> bool {
    if *counter > 0 {
        *counter -= 1;
        true
    } else {
        false
    }
}

/// A signature that no longer verifies but is still base64: the first character
/// replaced by another base64 character (PROTOCOL §5).
pub(crate) fn corrupt_sign(sign: &str) -> String {
    let mut chars = sign.chars();
    let replacement = match chars.next() {
        Some('A') => 'B',
        _ => 'A',
    };
    std::iter::once(replacement).chain(chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_corruption() {
        let mut n = 2;
        assert!(take(&mut n) && take(&mut n) && !take(&mut n));
        assert_eq!(corrupt_sign("Abc="), "Bbc=");
        assert_eq!(corrupt_sign("xbc="), "Abc=");
        assert_eq!(corrupt_sign(""), "A");
    }
}
