//! The conformance suite against `alipay_msg_tokio::Client`.

use std::sync::{Arc, Mutex};

use alipay_msg_conformance::cluster::ClusterClientUnderTest;
use alipay_msg_conformance::tls::TlsClientUnderTest;
use alipay_msg_conformance::{
    cluster_suite, conformance_suite, tls_suite, valve_suite, ClientUnderTest, Handler,
};
use alipay_msg_core::client::{ClientConfig, ClientError, ClientEvent};
use alipay_msg_core::produce_ack::ProduceAck;
use alipay_msg_redis::{AsyncRedisWindow, RedisWindowConfig};
use alipay_msg_tokio::{Client, Network, Proxy};
use serde_json::Value;

struct TokioClient {
    runtime: tokio::runtime::Runtime,
    client: Arc<Client>,
    events: Arc<Mutex<Vec<ClientEvent>>>,
    run: Mutex<Option<tokio::task::JoinHandle<Result<(), ClientError>>>>,
}

impl TokioClient {
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    fn connect_network(config: ClientConfig, network: Network) -> Result<Self, ClientError> {
        let runtime = Self::runtime();
        let client = runtime.block_on(Client::connect_with_network(config, network))?;
        Ok(Self::wrap(runtime, client))
    }

    fn wrap(runtime: tokio::runtime::Runtime, client: Client) -> Self {
        let client = Arc::new(client);
        let events = Arc::new(Mutex::new(Vec::new()));
        let (mut rx, sink) = (client.events(), events.clone());
        runtime.spawn(async move {
            while let Some(event) = rx.recv().await {
                sink.lock().unwrap().push(event);
            }
        });
        TokioClient {
            runtime,
            client,
            events,
            run: Mutex::new(None),
        }
    }
}

impl ClientUnderTest for TokioClient {
    fn connect(config: ClientConfig) -> Result<Self, ClientError> {
        Self::connect_network(config, Network::default())
    }

    fn start(&self, handler: Handler) {
        let client = self.client.clone();
        let task = self.runtime.spawn(async move {
            client
                .run(move |message| {
                    let handler = handler.clone();
                    // The suite's handlers block: run them as blocking work, as a tokio
                    // user would.
                    async move {
                        match tokio::task::spawn_blocking(move || handler(&message)).await {
                            Ok(result) => result,
                            Err(e) => std::panic::resume_unwind(e.into_panic()),
                        }
                    }
                })
                .await
        });
        *self.run.lock().unwrap() = Some(task);
    }

    fn send(&self, msg_api: &str, biz_content: &Value) -> Result<ProduceAck, ClientError> {
        self.runtime
            .block_on(self.client.send(msg_api, biz_content))
    }

    fn events(&self) -> Vec<ClientEvent> {
        self.events.lock().unwrap().clone()
    }

    fn shutdown(&self) {
        self.runtime.block_on(self.client.shutdown());
        if let Some(run) = self.run.lock().unwrap().take() {
            self.runtime.block_on(run).expect("run task").expect("run");
        }
    }
}

impl TlsClientUnderTest for TokioClient {
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

impl ClusterClientUnderTest for TokioClient {
    fn connect_shared(config: ClientConfig, redis: RedisWindowConfig) -> Result<Self, ClientError> {
        let runtime = Self::runtime();
        let client = runtime.block_on(async {
            // Made inside the runtime: its connections are the runtime's.
            let window =
                AsyncRedisWindow::new(redis).map_err(|e| ClientError::Io(e.to_string()))?;
            Client::connect_with_window(config, Network::default(), Arc::new(window)).await
        })?;
        Ok(Self::wrap(runtime, client))
    }
}

conformance_suite!(TokioClient);
cluster_suite!(TokioClient);
tls_suite!(TokioClient);
valve_suite!(TokioClient);
