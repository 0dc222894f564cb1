//! Reading and checking frames away from the session: the costly half of taking a
//! frame in (PROTOCOL §4–5).
//!
//! Decoding a text frame in the app's charset, parsing it and verifying a CONSUME's
//! signature depend on nothing but the frame's bytes and the platform key, and the
//! signature check is nearly all of a message's cost. By default the session does it
//! inline. After [`ClientSession::set_check_offload`] it hands each text frame out as a
//! numbered [`CheckJob`] ([`super::Output::Check`]); a [`FrameChecker`] (taken with
//! [`ClientSession::frame_checker`]) runs it on any thread, and the [`CheckedFrame`]
//! comes back with [`super::Input::Checked`], in any order: the session restores read
//! order itself.
//!
//! A `CheckedFrame` cannot be made but by a checker, and a session takes only those of
//! its own checker: what is delivered has been verified with this session's key.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::charset::{Charset, MalformedText};
use crate::consume::ConsumeFrame;
use crate::frame::{Command, Frame, FrameError, FrameLimits, SignatureStatus};
use crate::produce_ack::ProduceAck;
use crate::signature::Verifier;

use super::link::ConnId;

#[cfg(doc)]
use super::ClientSession;

/// Tells sessions apart, so that a frame checked for one is not taken by another.
static NEXT_TAG: AtomicU64 = AtomicU64::new(1);

/// One text frame to check, from [`super::Output::Check`]: run it with
/// [`FrameChecker::run`] anywhere and give the result back with
/// [`super::Input::Checked`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckJob {
    /// Read order of the frame within the session (increasing by 1 per frame).
    pub seq: u64,
    /// The connection the frame was read on.
    pub conn: ConnId,
    /// The text frame's payload as received: bytes in the app's charset (PROTOCOL §4),
    /// at most `frame_limits.max_frame_bytes` long.
    pub payload: Vec<u8>,
}

/// Decodes, parses and verifies frames for one [`ClientSession`]. Cheap to clone;
/// `Send` and `Sync`.
///
/// ```
/// # let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/frame_vectors.json")).unwrap()).unwrap();
/// # let text = v["consume"]["frame"].as_str().unwrap().to_owned();
/// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/keys");
/// use std::time::Instant;
/// use alipay_msg_core::client::{ClientConfig, ClientSession, Credentials};
///
/// let credentials = Credentials::public_key(
///     &std::fs::read_to_string(format!("{dir}/app_private_pkcs1.pem")).unwrap(),
///     &std::fs::read_to_string(format!("{dir}/alipay_public.pem")).unwrap(),
/// ).unwrap();
/// let session = ClientSession::new(
///     ClientConfig::new("2021000000000001", credentials), [7; 32], Instant::now(), 1_795_430_400_000,
/// ).unwrap();
///
/// // On another thread (the session hands out `CheckJob`s to run the same way):
/// let checker = session.frame_checker();
/// let checked = std::thread::spawn(move || checker.check(&text)).join().unwrap();
/// assert!(checked.is_verified_consume());
/// ```
#[derive(Clone)]
pub struct FrameChecker {
    verifier: Arc<Verifier>,
    limits: FrameLimits,
    charset: Charset,
    tag: u64,
}

impl std::fmt::Debug for FrameChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameChecker")
            .field("limits", &self.limits)
            .field("charset", &self.charset)
            .field("session", &self.tag)
            .finish_non_exhaustive()
    }
}

impl FrameChecker {
    pub(crate) fn new(verifier: Arc<Verifier>, limits: FrameLimits, charset: Charset) -> Self {
        FrameChecker {
            verifier,
            limits,
            charset,
            tag: NEXT_TAG.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Runs a [`CheckJob`]: decodes the payload in the app's charset (bytes that do not
    /// decode are a checked frame too, which the session rejects), then
    /// [`FrameChecker::check`]. The result goes back with [`super::Input::Checked`].
    pub fn run(&self, job: CheckJob) -> CheckedFrame {
        let mut checked = self.check_bytes(&job.payload);
        checked.job = Some((job.seq, job.conn));
        checked
    }

    /// Decodes `payload` in the app's charset and checks it (PROTOCOL §4–5).
    pub(crate) fn check_bytes(&self, payload: &[u8]) -> CheckedFrame {
        match self.charset.decode_strict(payload) {
            Ok(text) => self.check(&text),
            Err(e) => CheckedFrame {
                tag: self.tag,
                job: None,
                checked: Checked::Undecodable(e),
            },
        }
    }

    /// Parses `text` under the session's frame limits and, for a CONSUME, checks its
    /// signature with the platform key (PROTOCOL §4–5). Never fails: a bad frame is a
    /// checked frame too, which the session rejects.
    pub fn check(&self, text: &str) -> CheckedFrame {
        let checked = match Frame::parse(text, &self.limits) {
            Err(e) => Checked::Malformed(e),
            Ok(frame) => match frame.command {
                Command::Consume => match ConsumeFrame::from_frame(frame) {
                    Ok(consume) => {
                        let signature = consume.verify(&self.verifier);
                        Checked::Consume { consume, signature }
                    }
                    Err(e) => Checked::Malformed(e),
                },
                Command::ProduceAck => match ProduceAck::from_frame(frame) {
                    Ok(ack) => Checked::ProduceAck(ack),
                    Err(e) => Checked::Malformed(e),
                },
                cmd => Checked::Unexpected {
                    msg_id: frame.protocol.msg_id,
                    cmd,
                },
            },
        };
        CheckedFrame {
            tag: self.tag,
            job: None,
            checked,
        }
    }

    pub(crate) fn tag(&self) -> u64 {
        self.tag
    }
}

/// A frame parsed and, for a CONSUME, signature-checked by a [`FrameChecker`]. From
/// [`FrameChecker::run`], for [`super::Input::Checked`]; a frame from
/// [`FrameChecker::check`] belongs to no job and the session ignores it.
#[derive(Debug)]
pub struct CheckedFrame {
    tag: u64,
    /// The job's `seq` and `conn`, when made by [`FrameChecker::run`].
    pub(crate) job: Option<(u64, ConnId)>,
    pub(crate) checked: Checked,
}

impl CheckedFrame {
    /// A CONSUME whose signature verified (it may still be refused for its app id or
    /// timestamp, or be a duplicate).
    pub fn is_verified_consume(&self) -> bool {
        matches!(
            self.checked,
            Checked::Consume {
                signature: SignatureStatus::Valid,
                ..
            }
        )
    }

    pub(crate) fn tag(&self) -> u64 {
        self.tag
    }
}

/// What a checker found.
// A CONSUME is nearly every frame: boxing it would add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Checked {
    Undecodable(MalformedText),
    Malformed(FrameError),
    Consume {
        consume: ConsumeFrame,
        signature: SignatureStatus,
    },
    ProduceAck(ProduceAck),
    Unexpected {
        msg_id: Option<String>,
        cmd: Command,
    },
}
