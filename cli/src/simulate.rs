//! `alipay-msg simulate`: run the local platform simulator until Ctrl-C, printing one
//! line per register, connection, push, delivery, ack, redelivery and PRODUCE.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use alipay_msg_core::cert::{platform_cert_sn, Certificate};
use alipay_msg_core::key::{PrivateKey, PublicKey};
use alipay_msg_core::signature::SignType;
use alipay_msg_simulator::{test_keys, AppKey, Simulator, SimulatorOptions};
use clap::Args;
use tokio::sync::broadcast::error::RecvError;

use crate::{read_file, Failure};

#[derive(Args)]
pub(crate) struct SimulateArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7001")]
    listen: SocketAddr,
    /// The app id the simulated platform knows.
    #[arg(long, value_name = "ID", default_value = test_keys::APP_ID)]
    app_id: String,
    /// The app's public key (PEM or bare base64); default: the embedded test key.
    #[arg(long, value_name = "FILE", conflicts_with = "app_cert")]
    app_public_key: Option<PathBuf>,
    /// Certificate mode: the app public-key certificate.
    #[arg(long, value_name = "FILE")]
    app_cert: Option<PathBuf>,
    /// Certificate mode: the platform root certificate bundle the app sends the SN of
    /// (without it any root SN is accepted).
    #[arg(long, value_name = "FILE", requires = "app_cert")]
    root_cert: Option<PathBuf>,
    /// The platform private key that signs answers and messages; default: the embedded
    /// test key.
    #[arg(long, value_name = "FILE")]
    platform_private_key: Option<PathBuf>,
    /// Certificate mode: the platform public-key certificate, whose SN is sent as
    /// `alipay_cert_sn` in register answers.
    #[arg(long, value_name = "FILE")]
    platform_cert: Option<PathBuf>,
    /// The app's sign type: `RSA2` (SHA256withRSA) or `RSA` (SHA1withRSA, apps created
    /// before RSA2). The simulator signs the app's CONSUMEs with it (PROTOCOL §5);
    /// register answers follow the sign type of each request.
    #[arg(long, value_name = "TYPE", default_value = "RSA2")]
    sign_type: SignType,
    /// Push the messages of this JSON-lines file at start (one
    /// `{"msg_api": …, "biz_content": {…}}` a line).
    #[arg(long = "push", value_name = "FILE")]
    push: Option<PathBuf>,
    /// Scale the waits between the attempts of an HTTP notification (`POST
    /// /admin/notify`; the platform's 4 min, 10 min, 10 min, 1 h, 2 h, 6 h, 15 h) by this
    /// factor, in (0, 1]: 0.001 makes 4 min 240 ms.
    #[arg(long, value_name = "SCALE", default_value_t = 1.0)]
    notify_time_scale: f64,
}

fn malformed(path: &std::path::Path, e: impl std::fmt::Display) -> Failure {
    Failure::malformed(format!("{}: {e}", path.display()))
}

fn options(args: &SimulateArgs) -> Result<(SimulatorOptions, bool), Failure> {
    let mut test_keys_used = true;
    let app_key = match (&args.app_public_key, &args.app_cert) {
        (Some(path), _) => {
            test_keys_used = false;
            AppKey::PublicKey(
                PublicKey::from_pem_or_base64(&read_file(path)?).map_err(|e| malformed(path, e))?,
            )
        }
        (None, Some(path)) => {
            test_keys_used = false;
            let root = args.root_cert.as_deref().map(read_file).transpose()?;
            AppKey::from_certificates(&read_file(path)?, root.as_deref())
                .map_err(|e| malformed(path, e))?
        }
        (None, None) => AppKey::PublicKey(
            // The embedded test key is valid (the library's tests load it).
            PublicKey::from_pem_or_base64(test_keys::APP_PUBLIC_KEY)
                .map_err(|e| Failure::malformed(e.to_string()))?,
        ),
    };
    let platform_key = match &args.platform_private_key {
        Some(path) => {
            test_keys_used = false;
            PrivateKey::from_pem_or_base64(&read_file(path)?).map_err(|e| malformed(path, e))?
        }
        None => PrivateKey::from_pem_or_base64(test_keys::PLATFORM_PRIVATE_KEY)
            .map_err(|e| Failure::malformed(e.to_string()))?,
    };
    let mut options = SimulatorOptions::new(&args.app_id, &app_key, &platform_key)
        .map_err(|e| Failure::malformed(format!("keys: {e}")))?
        .listen(args.listen)
        .app_sign_type(args.sign_type)
        .notify_time_scale(args.notify_time_scale);
    if let Some(path) = &args.platform_cert {
        let chain = Certificate::all_from_pem(&read_file(path)?).map_err(|e| malformed(path, e))?;
        options =
            options.platform_cert_sn(platform_cert_sn(&chain).map_err(|e| malformed(path, e))?);
    }
    Ok((options, test_keys_used))
}

pub(crate) fn run(args: SimulateArgs) -> Result<u8, Failure> {
    let (options, test_keys_used) = options(&args)?;
    let app_id = options.app_id.clone();
    crate::runtime()?.block_on(async move {
        let started = Instant::now();
        let sim = Simulator::start(options).await.map_err(|e| Failure {
            code: 2,
            message: format!("cannot start the simulator on {}: {e}", args.listen),
        })?;
        let mut events = sim.events();
        let endpoint = sim.endpoint();
        let authority = endpoint.authority();
        println!("alipay-msg simulate: listening on {endpoint} (plain HTTP and websocket, no TLS)");
        println!("  app id:    {app_id}");
        if test_keys_used {
            println!("  keys:      the repository's test keys (public; for local tests only)");
            println!("             client: app private key testdata/vectors/keys/app_private_pkcs1.pem,");
            println!("                     platform public key testdata/vectors/keys/alipay_public.pem");
        }
        println!("  client:    endpoint = \"{authority}\" in the configuration file, then");
        println!("             alipay-msg listen --config FILE");
        println!(
            "  push:      curl -s -X POST http://{authority}/admin/push -d '{{\"msg_api\":\"alipay.open.mini.version.audit.passed\",\"biz_content\":{{\"mini_app_id\":\"2014072300007148\"}}}}'"
        );
        println!(
            "  notify:    curl -s -X POST http://{authority}/admin/notify -d '{{\"url\":\"http://127.0.0.1:8080/notify\",\"payment\":{{\"out_trade_no\":\"20261120102126001\",\"total_amount\":\"88.88\"}}}}'"
        );
        println!("  status:    curl -s http://{authority}/admin/status");
        println!("  Ctrl-C stops.");
        // Pushed after subscribing, so that the pushes are printed too.
        if let Some(path) = &args.push {
            if let Err(e) = sim.push_jsonl(path).await {
                sim.shutdown().await;
                return Err(Failure::malformed(e.to_string()));
            }
        }
        let printer = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => println!("[{:>9.3}] {event}", started.elapsed().as_secs_f64()),
                    Err(RecvError::Lagged(n)) => println!("({n} events not shown: output too slow)"),
                    Err(RecvError::Closed) => break,
                }
            }
        });
        let _ = tokio::signal::ctrl_c().await;
        println!("alipay-msg simulate: stopping");
        sim.shutdown().await;
        drop(sim);
        let _ = printer.await;
        Ok(0)
    })
}
