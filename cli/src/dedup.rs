//! `[dedup]` in the configuration of `listen`: the shared duplicate window on Redis is
//! answered by the blocking client today (`alipay_msg_blocking::Client::connect_with_window`);
//! the tokio client answers its queries once it runs on the generic async driver. Until
//! then `listen` refuses a configuration that asks for it, rather than run with local
//! windows the operator did not ask for.

use std::path::Path;

use crate::config_file;

use crate::Failure;

/// `Err` (exit code 2) when the file has a `[dedup]` table.
pub(crate) fn refuse_until_wired(path: &Path) -> Result<(), Failure> {
    match config_file::load_dedup(path).map_err(|e| Failure::malformed(e.to_string()))? {
        None => Ok(()),
        Some(_) => Err(Failure::malformed(format!(
            "{}: [dedup] redis_url: this alipay-msg listens with the tokio client, which \
             does not run a shared duplicate window yet (see docs/clusters.md); remove \
             [dedup] to listen with the local window",
            path.display()
        ))),
    }
}
