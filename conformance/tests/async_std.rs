//! The conformance suite against `alipay_msg_async_std::Client`.

use std::sync::{Arc, Mutex};

use alipay_msg_async_std::{Client, Network, Proxy};
use alipay_msg_conformance::cluster::ClusterClientUnderTest;
use alipay_msg_conformance::tls::TlsClientUnderTest;
use alipay_msg_conformance::{
    cluster_suite, conformance_suite, tls_suite, valve_suite, ClientUnderTest, Handler,
};
use alipay_msg_core::client::{ClientConfig, ClientError, ClientEvent};
use alipay_msg_core::produce_ack::ProduceAck;
use alipay_msg_redis::{AsyncRedisWindow, RedisWindowConfig};
use serde_json::Value;

struct AsyncStdClient {
    client: Arc<Client>,
    events: Arc<Mutex<Vec<ClientEvent>>>,
    run: Mutex<Option<async_std::task::JoinHandle<Result<(), ClientError>>>>,
}

impl AsyncStdClient {
    fn connect_network(config: ClientConfig, network: Network) -> Result<Self, ClientError> {
        let client = async_std::task::block_on(Client::connect_with_network(config, network))?;
        Ok(Self::wrap(client))
    }

    fn wrap(client: Client) -> Self {
        let client = Arc::new(client);
        let events = Arc::new(Mutex::new(Vec::new()));
        let (mut rx, sink) = (client.events(), events.clone());
        async_std::task::spawn(async move {
            while let Some(event) = rx.recv().await {
                sink.lock().unwrap().push(event);
            }
        });
        AsyncStdClient {
            client,
            events,
            run: Mutex::new(None),
        }
    }
}

impl ClientUnderTest for AsyncStdClient {
    fn connect(config: ClientConfig) -> Result<Self, ClientError> {
        Self::connect_network(config, Network::default())
    }

    fn start(&self, handler: Handler) {
        let client = self.client.clone();
        let task = async_std::task::spawn(async move {
            client
                .run(move |message| {
                    let handler = handler.clone();
                    // The suite's handlers block: run them as blocking work.
                    async move { async_std::task::spawn_blocking(move || handler(&message)).await }
                })
                .await
        });
        *self.run.lock().unwrap() = Some(task);
    }

    fn send(&self, msg_api: &str, biz_content: &Value) -> Result<ProduceAck, ClientError> {
        async_std::task::block_on(self.client.send(msg_api, biz_content))
    }

    fn events(&self) -> Vec<ClientEvent> {
        self.events.lock().unwrap().clone()
    }

    fn shutdown(&self) {
        async_std::task::block_on(self.client.shutdown());
        if let Some(run) = self.run.lock().unwrap().take() {
            async_std::task::block_on(run).expect("run");
        }
    }
}

impl TlsClientUnderTest for AsyncStdClient {
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

impl ClusterClientUnderTest for AsyncStdClient {
    fn connect_shared(config: ClientConfig, redis: RedisWindowConfig) -> Result<Self, ClientError> {
        let client = async_std::task::block_on(async {
            let window =
                AsyncRedisWindow::new(redis).map_err(|e| ClientError::Io(e.to_string()))?;
            Client::connect_with_window(config, Network::default(), Arc::new(window)).await
        })?;
        Ok(Self::wrap(client))
    }
}

conformance_suite!(AsyncStdClient);
cluster_suite!(AsyncStdClient);
tls_suite!(AsyncStdClient);
valve_suite!(AsyncStdClient);
