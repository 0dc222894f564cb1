"""The client configuration: alipay_msg.Config, the Rust ClientConfig's names and defaults."""

from dataclasses import dataclass, field
from typing import Literal, Optional, Union

from ._native import PrivateKey, PublicKey

__all__ = ["Config", "SharedWindowConfig"]


@dataclass(frozen=True)
class SharedWindowConfig:
    """The duplicate window shared by every instance of a service (the Rust
    ``SharedWindowConfig``, module ``alipay_msg_core::window``; PROTOCOL §6): before a
    message's handler runs its ``x-msgId`` is claimed in a shared store (a RedisWindow,
    or any object with an ``answer(query)`` method) for ``lease`` seconds; handled
    elsewhere → acked SUCCESS without the handler; held by another instance's live
    claim → acked FAIL (redelivered later); after the handler succeeded the id is
    recorded as handled for ``window`` seconds before the SUCCESS ack; a failure
    releases the claim. Durations are seconds (float), more than 0, at most 365 days.

    Attributes:
        lease: How long a claim lives before another instance may take the id (s;
            default 60). Set it above the longest handler run.
        window: How long a handled id stays handled (s; default 90000, 25 hours, the
            platform's retry span).
        on_store_failure: When the store cannot answer a claim or a record: ``"fail"``
            (default) acks FAIL (the platform redelivers; nothing is handled twice);
            ``"local_window"`` goes on with this process's duplicate window alone
            (another instance may handle the message too while the store is away).
            Either way a SharedWindowFailed event reports it.
        record_retry: How often a success whose record failed is recorded again, in
            the background, until it is (s; default 1).
    """

    lease: float = 60.0
    window: float = 90000.0
    on_store_failure: Literal["fail", "local_window"] = "fail"
    record_retry: float = 1.0


@dataclass(frozen=True)
class Config:
    """Everything a client (or a ClientSession) needs, with the Rust ``ClientConfig``'s
    names and defaults. Durations are seconds (float); ``None`` turns a check off where
    that is allowed.

    Give the platform key one way (PROTOCOL §9):

    * public-key mode: ``alipay_public_key``;
    * certificate mode: ``app_cert``, ``alipay_cert`` and ``alipay_root_cert`` (the three
      files the platform's console issues), ``alipay_public_key`` left out.

    Keys are text (PEM, or the bare base64 the platform's console shows) or keys loaded
    once with load_private_key / load_public_key. The configuration is checked when a
    ClientSession (or a client's connection) starts: ConfigError says what is wrong,
    never with key material. ``repr()`` leaves the keys out.

    Attributes:
        app_id: The app id, the decimal number the platform issued (str).
        app_private_key: The app private key: signs register.do, the websocket upgrade
            and every PRODUCE (str PEM/base64 or PrivateKey; text in certificate mode).
        alipay_public_key: Public-key mode: the platform public key, which verifies
            every CONSUME and register answer (str PEM/base64 or PublicKey).
        app_cert: Certificate mode: the app public-key certificate (str PEM,
            appCertPublicKey_*.crt); its SN goes out as ``app_cert_sn``.
        alipay_cert: Certificate mode: the platform public-key certificate (str PEM,
            alipayCertPublicKey_RSA2.crt): its key verifies, its SN is checked.
        alipay_root_cert: Certificate mode: the platform root bundle (str PEM,
            alipayRootCert.crt); its SN goes out as ``alipay_root_cert_sn``.
        endpoint: Where the platform is (str): ``"production"``
            (openchannel.alipay.com over TLS, the default), ``"sandbox"``,
            ``"HOST:PORT"`` (plain, e.g. the local simulator ``"127.0.0.1:7001"``),
            ``"https://HOST[:PORT]"`` / ``"wss://…"`` (TLS) or ``"http://…"`` /
            ``"ws://…"`` (plain).
        charset: The app's charset (str): ``"UTF-8"`` or ``"GBK"`` (any letter case):
            signed content and websocket text frames are in it (PROTOCOL §4).
        sign_type: What the app signs with (str): ``"RSA2"`` (SHA256withRSA, default)
            or ``"RSA"`` (SHA1withRSA, apps created before RSA2).
        heartbeat_interval: A websocket ping this often while connected (s).
        dead_after: No pong for this long: the connection is dead and is closed (s;
            more than ``heartbeat_interval``).
        connect_timeout: One attempt (register.do and the upgrade) gives up after (s).
        first_connect_timeout: The first connection gives up after this long, attempts
            and backoff included, with ConnectTimeoutError naming the last failure (s);
            None retries for as long as it takes. Reconnects never give up.
        backoff_base: Upper bound of the first jittered wait between attempts (s); the
            first retry is immediate, the n-th waits up to ``backoff_base · 2^(n-1)``.
        backoff_cap: No wait between attempts is longer than this (s).
        backoff_reset_after: A connection that stayed up this long starts the backoff
            schedule over (s).
        retry_on_auth_error: Keep retrying after the platform refused the configuration
            (bad signature, app id); by default that stops the client (RefusedError).
        max_clock_skew: Refuse CONSUMEs whose ``x-timestamp`` is further ahead than
            this (s); None: no check.
        max_message_age: Refuse CONSUMEs older than this (s; default 25 hours, the
            platform's retry horizon); None: no check.
        duplicate_capacity: Handled message ids remembered to suppress duplicates.
        duplicate_max_age: How long a handled message id is remembered (s).
        max_in_flight: Messages delivered and not completed at most; past it the
            client stops reading the socket (backpressure: the platform holds them).
        consumer_grace: How long a message waits for a consumer while none is attached
            (a client that only sends), before it is answered FAIL for redelivery (s).
        check_parallelism: Threads that check signatures (without the GIL): 0 (default)
            one per core, at most 4; 1 checks each frame as it is read; at most 64.
        max_pending_sends: PRODUCEs waiting for their PRODUCE_ACK at most.
        send_timeout: A PRODUCE without its PRODUCE_ACK after this long fails with
            SendTimeoutError (s).
        shutdown_timeout: A graceful shutdown closes after this long even with messages
            still in flight (s).
        max_frame_bytes: Largest websocket message accepted (bytes).
        max_register_response_bytes: Largest register.do answer accepted (bytes).
        shared_window: The duplicate window shared with the service's other instances
            (SharedWindowConfig), or None (the default: this process's window alone).
            A client with it needs a store (``Client(config, window=...)``).
    """

    app_id: str
    app_private_key: Union[str, PrivateKey] = field(repr=False)
    alipay_public_key: Optional[Union[str, PublicKey]] = field(default=None, repr=False)
    app_cert: Optional[str] = field(default=None, repr=False)
    alipay_cert: Optional[str] = field(default=None, repr=False)
    alipay_root_cert: Optional[str] = field(default=None, repr=False)
    endpoint: str = "production"
    charset: str = "UTF-8"
    sign_type: str = "RSA2"
    heartbeat_interval: float = 5.0
    dead_after: float = 15.0
    connect_timeout: float = 10.0
    first_connect_timeout: Optional[float] = 30.0
    backoff_base: float = 1.0
    backoff_cap: float = 10.0
    backoff_reset_after: float = 30.0
    retry_on_auth_error: bool = False
    max_clock_skew: Optional[float] = 600.0
    max_message_age: Optional[float] = 90000.0
    duplicate_capacity: int = 100_000
    duplicate_max_age: float = 90000.0
    max_in_flight: int = 64
    consumer_grace: float = 0.5
    check_parallelism: int = 0
    max_pending_sends: int = 200
    send_timeout: float = 10.0
    shutdown_timeout: float = 30.0
    max_frame_bytes: int = 1024 * 1024
    max_register_response_bytes: int = 64 * 1024
    shared_window: Optional[SharedWindowConfig] = None

    @property
    def certificate_mode(self) -> bool:
        """Whether the certificates are given instead of ``alipay_public_key``."""
        return self.alipay_public_key is None and self.app_cert is not None
