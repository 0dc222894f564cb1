//! The `alipay-msg` client on tokio.
//!
//! This crate currently ships the offline commands of the `alipay-msg` CLI
//! (`cert-sn`, `verify-notify`, `inspect-frame`); the tokio client and the local
//! platform simulator come next (see the repository README). The protocol itself lives
//! in [`alipay_msg_core`], re-exported here.
#![forbid(unsafe_code)]

pub use alipay_msg_core as core;
