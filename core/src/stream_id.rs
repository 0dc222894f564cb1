//! Stream ids for PRODUCE frames (PROTOCOL §7).

/// Base 62 digits in the platform client's order.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The sequence wraps here, as in the platform client (3 base-62 digits hold 238 328).
const SEQUENCE_WRAP: u32 = 200_000;

/// Makes stream ids the way the platform's client does: `c`, the millisecond timestamp
/// in 8 base-62 digits, 2 base-62 digits fixed per generator (random), and a sequence
/// number modulo 200 000 in 3 base-62 digits (PROTOCOL §7).
///
/// Ids from one generator are unique as long as fewer than 200 000 are made within one
/// millisecond; the platform accepts any unique token.
///
/// ```
/// use alipay_msg_core::stream_id::StreamIdGenerator;
/// let mut ids = StreamIdGenerator::new(0xab);
/// assert_eq!(ids.next_id(1_795_430_400_123), "c0Vbn8zAh2l000");
/// assert_eq!(ids.next_id(1_795_430_400_123), "c0Vbn8zAh2l001");
/// ```
#[derive(Debug, Clone)]
pub struct StreamIdGenerator {
    tag: [u8; 2],
    sequence: u32,
}

impl StreamIdGenerator {
    /// A generator whose 2-digit tag is taken from `random` (pass a random value so that
    /// two processes started in the same millisecond do not collide).
    pub fn new(random: u64) -> Self {
        let tag = random % (62 * 62);
        StreamIdGenerator {
            tag: [BASE62[(tag / 62) as usize], BASE62[(tag % 62) as usize]],
            sequence: 0,
        }
    }

    /// The next id for a PRODUCE sent at `now_ms` (milliseconds since the epoch).
    pub fn next_id(&mut self, now_ms: u64) -> String {
        let mut id = String::with_capacity(14);
        id.push('c');
        push_base62(&mut id, now_ms, 8);
        id.push(self.tag[0] as char);
        id.push(self.tag[1] as char);
        push_base62(&mut id, u64::from(self.sequence), 3);
        self.sequence = (self.sequence + 1) % SEQUENCE_WRAP;
        id
    }
}

/// Appends `value` in base 62, left-padded with `0` to `width` digits (more digits
/// when the value needs them).
fn push_base62(out: &mut String, mut value: u64, width: usize) {
    let mut digits = [0u8; 11]; // u64::MAX needs 11 base-62 digits
    let mut n = 0;
    loop {
        digits[n] = BASE62[(value % 62) as usize];
        n += 1;
        value /= 62;
        if value == 0 {
            break;
        }
    }
    for _ in n..width {
        out.push('0');
    }
    for &d in digits[..n].iter().rev() {
        out.push(d as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62() {
        let mut s = String::new();
        push_base62(&mut s, 0, 3);
        push_base62(&mut s, 61, 1);
        push_base62(&mut s, 62, 1);
        push_base62(&mut s, u64::MAX, 8);
        assert_eq!(s, "000z10LygHa16AHYF");
    }

    #[test]
    fn sequence_wraps() {
        let mut g = StreamIdGenerator::new(0);
        g.sequence = SEQUENCE_WRAP - 1;
        assert!(g.next_id(0).ends_with("q1n"));
        assert!(g.next_id(0).ends_with("000"));
    }
}
