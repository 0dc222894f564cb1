//! `alipay-msg cert-sn [--root] FILE`.

use std::path::PathBuf;

use alipay_msg_core::cert::{platform_cert_sn, root_cert_sn, Certificate};
use clap::Args;

use crate::{read_file, Failure};

#[derive(Args)]
pub(crate) struct CertSnArgs {
    /// The file is a root certificate bundle: print the SNs of its RSA certificates
    /// joined with `_` (alipay_root_cert_sn).
    #[arg(long)]
    root: bool,
    /// Certificate file (PEM).
    file: PathBuf,
}

pub(crate) fn run(args: CertSnArgs) -> Result<u8, Failure> {
    let text = read_file(&args.file)?;
    let name = args.file.display();
    let certs =
        Certificate::all_from_pem(&text).map_err(|e| Failure::malformed(format!("{name}: {e}")))?;
    let sn = if args.root {
        root_cert_sn(&certs)
    } else {
        platform_cert_sn(&certs)
    }
    .map_err(|e| Failure::malformed(format!("{name}: {e}")))?;
    println!("{sn}");
    Ok(0)
}
