//! Frame header lines (PROTOCOL §4).

/// The header lines of a frame: `from-sys`, `from-sys-ip`, `stream-id`.
///
/// On read, values are trimmed and unknown keys are ignored. On write, present lines
/// come in that order, `key:value\r\n`, no space after the colon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameHeaders {
    /// `from-sys`: the platform system that sent the frame.
    pub from_sys: Option<String>,
    /// `from-sys-ip`: the address of that system.
    pub from_sys_ip: Option<String>,
    /// `stream-id`: matches a PRODUCE_ACK to its PRODUCE; copied into a CONSUME_ACK.
    pub stream_id: Option<String>,
}

impl FrameHeaders {
    /// Headers holding only a stream id (what a client writes on a PRODUCE).
    pub fn with_stream_id(stream_id: impl Into<String>) -> Self {
        FrameHeaders {
            stream_id: Some(stream_id.into()),
            ..FrameHeaders::default()
        }
    }

    pub(crate) fn set(&mut self, key: &str, value: &str) {
        let slot = match key {
            "from-sys" => &mut self.from_sys,
            "from-sys-ip" => &mut self.from_sys_ip,
            "stream-id" => &mut self.stream_id,
            _ => return,
        };
        // An empty value counts as absent, as on write (the platform's client omits
        // empty lines and cannot read them back).
        *slot = (!value.is_empty()).then(|| value.to_owned());
    }

    /// Appends the header block, including the blank line that ends it. With no header
    /// lines the block is the bare `\r\n\r\n` (PROTOCOL §4).
    pub(crate) fn write(&self, out: &mut String) {
        let lines = [
            ("from-sys", &self.from_sys),
            ("from-sys-ip", &self.from_sys_ip),
            ("stream-id", &self.stream_id),
        ];
        let mut any = false;
        for (key, value) in lines {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                out.push_str(key);
                out.push(':');
                out.push_str(value);
                out.push_str("\r\n");
                any = true;
            }
        }
        if !any {
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
    }

    /// Rough size of the written block, for buffer reservation.
    pub(crate) fn written_len(&self) -> usize {
        [&self.from_sys, &self.from_sys_ip, &self.stream_id]
            .iter()
            .map(|v| v.as_ref().map_or(0, |v| v.len() + 14))
            .sum::<usize>()
            + 4
    }
}
