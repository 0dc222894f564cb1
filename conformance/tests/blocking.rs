//! The conformance suite against `alipay_msg_blocking::Client`.

use std::sync::{Arc, Mutex};

use alipay_msg_blocking::{Client, Network, PoolConfig, Proxy};
use alipay_msg_conformance::cluster::ClusterClientUnderTest;
use alipay_msg_conformance::tls::TlsClientUnderTest;
use alipay_msg_conformance::{
    cluster_suite, conformance_suite, tls_suite, ClientUnderTest, Handler,
};
use alipay_msg_core::client::{ClientConfig, ClientError, ClientEvent};
use alipay_msg_core::produce_ack::ProduceAck;
use alipay_msg_redis::{RedisWindow, RedisWindowConfig};
use serde_json::Value;

struct BlockingClient {
    client: Arc<Client>,
    events: Arc<Mutex<Vec<ClientEvent>>>,
    run: Mutex<Option<std::thread::JoinHandle<Result<(), ClientError>>>>,
}

impl BlockingClient {
    fn connect_network(config: ClientConfig, network: Network) -> Result<Self, ClientError> {
        Self::wrap(Client::connect_with_network(config, network)?)
    }

    fn wrap(client: Client) -> Result<Self, ClientError> {
        let client = Arc::new(client);
        let events = Arc::new(Mutex::new(Vec::new()));
        let (rx, sink) = (client.events(), events.clone());
        // Ends when the client shuts down and its event queue closes.
        std::thread::spawn(move || {
            for event in rx {
                sink.lock().unwrap().push(event);
            }
        });
        Ok(BlockingClient {
            client,
            events,
            run: Mutex::new(None),
        })
    }
}

impl ClientUnderTest for BlockingClient {
    fn connect(config: ClientConfig) -> Result<Self, ClientError> {
        Self::connect_network(config, Network::default())
    }

    fn start(&self, handler: Handler) {
        let client = self.client.clone();
        let run = std::thread::spawn(move || client.run(move |message| handler(&message)));
        *self.run.lock().unwrap() = Some(run);
    }

    fn send(&self, msg_api: &str, biz_content: &Value) -> Result<ProduceAck, ClientError> {
        self.client.send(msg_api, biz_content)
    }

    fn events(&self) -> Vec<ClientEvent> {
        self.events.lock().unwrap().clone()
    }

    fn shutdown(&self) {
        self.client.shutdown();
        if let Some(run) = self.run.lock().unwrap().take() {
            run.join().expect("run thread").expect("run");
        }
    }
}

impl TlsClientUnderTest for BlockingClient {
    fn connect_tls(
        config: ClientConfig,
        tls: Arc<rustls::ClientConfig>,
        proxy: Option<String>,
    ) -> Result<Self, ClientError> {
        let proxy = match proxy {
            Some(url) => Proxy::http(&url).expect("a proxy URL"),
            None => Proxy::None,
        };
        Self::connect_network(config, Network::default().tls(tls).proxy(proxy))
    }
}

impl ClusterClientUnderTest for BlockingClient {
    fn connect_shared(config: ClientConfig, redis: RedisWindowConfig) -> Result<Self, ClientError> {
        let window = RedisWindow::new(redis).map_err(|e| ClientError::Io(e.to_string()))?;
        Self::wrap(Client::connect_with_window(
            config,
            PoolConfig::default(),
            Network::default(),
            Arc::new(window),
        )?)
    }
}

conformance_suite!(BlockingClient);
cluster_suite!(BlockingClient);
tls_suite!(BlockingClient);
