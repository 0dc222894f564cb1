//! The conformance suite against `alipay_msg_async_std::Client`.

use std::sync::{Arc, Mutex};

use alipay_msg_async_std::{Client, Network, Proxy};
use alipay_msg_conformance::tls::TlsClientUnderTest;
use alipay_msg_conformance::{conformance_suite, tls_suite, valve_suite, ClientUnderTest, Handler};
use alipay_msg_core::client::{ClientConfig, ClientError, ClientEvent};
use alipay_msg_core::produce_ack::ProduceAck;
use serde_json::Value;

struct AsyncStdClient {
    client: Arc<Client>,
    events: Arc<Mutex<Vec<ClientEvent>>>,
    run: Mutex<Option<async_std::task::JoinHandle<Result<(), ClientError>>>>,
}

impl AsyncStdClient {
    fn connect_network(config: ClientConfig, network: Network) -> Result<Self, ClientError> {
        let client = Arc::new(async_std::task::block_on(Client::connect_with_network(
            config, network,
        ))?);
        let events = Arc::new(Mutex::new(Vec::new()));
        let (mut rx, sink) = (client.events(), events.clone());
        async_std::task::spawn(async move {
            while let Some(event) = rx.recv().await {
                sink.lock().unwrap().push(event);
            }
        });
        Ok(AsyncStdClient {
            client,
            events,
            run: Mutex::new(None),
        })
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

conformance_suite!(AsyncStdClient);
tls_suite!(AsyncStdClient);
valve_suite!(AsyncStdClient);
