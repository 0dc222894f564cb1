//! The exceptions the package raises: one base class, one subclass per kind of failure.
//! Messages are the core's error messages, which never contain key material.

use alipay_msg_core::cert::CertError;
use alipay_msg_core::client::{
    ClientError, ConfigError as CoreConfigError, SendError as CoreSendError,
};
use alipay_msg_core::key::KeyError;
use alipay_msg_core::notify::NotifyError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::PyErr;

create_exception!(
    alipay_msg,
    AlipayMsgError,
    PyException,
    "Base class of every error this package raises about its input (a notification, a key, \
     a certificate, a configuration) or about the message channel (a send that failed, a \
     connection that could not be made). Misuse of the API (a wrong argument type, neither \
     or both keys, an unknown rule, a time that is not a number) raises TypeError or \
     ValueError instead, and calling a client in a state that does not allow it \
     RuntimeError."
);
create_exception!(
    alipay_msg,
    SignatureError,
    AlipayMsgError,
    "A well-formed notification whose signature does not verify with the platform key \
     (PROTOCOL §10): it was not sent by the platform, or it was altered after it was sent, \
     or it was signed under the other rule (v1/v2). Answer `fail`."
);
create_exception!(
    alipay_msg,
    MalformedError,
    AlipayMsgError,
    "A notification body that cannot be checked or used (PROTOCOL §10): too large, a bad \
     percent escape, a duplicate parameter, an unsupported charset or sign_type, a missing \
     sign, sign_type or required field, a biz_content that is not a JSON object, an amount \
     that is not a decimal number. Answer `fail`."
);
create_exception!(
    alipay_msg,
    InvalidKeyError,
    AlipayMsgError,
    "An RSA key that cannot be loaded: empty, not PEM or base64, the wrong kind (a private \
     key where a public one is expected, a certificate, an encrypted key), not RSA. The \
     message says which; it never contains key material."
);
create_exception!(
    alipay_msg,
    CertificateError,
    AlipayMsgError,
    "A certificate file that cannot be used (PROTOCOL §9): no CERTIFICATE block, unreadable \
     PEM or DER, a public key that is not RSA, a root bundle without an RSA-signed \
     certificate."
);

create_exception!(
    alipay_msg,
    ConfigError,
    AlipayMsgError,
    "A client configuration that cannot be used, found before any connection (the core's \
     ClientConfig checks): an app id that is not the platform's decimal number, a key or \
     certificate that does not load (the message names which), an app private key that \
     does not belong to the app certificate, neither or both of public-key and certificate \
     mode, an endpoint, charset or sign_type that is not one the platform knows, a setting \
     out of range (e.g. dead_after not longer than heartbeat_interval, a duration over 365 \
     days). The message never contains key material."
);
create_exception!(
    alipay_msg,
    ConnectError,
    AlipayMsgError,
    "The client could not connect, and has stopped: RefusedError or ConnectTimeoutError."
);
create_exception!(
    alipay_msg,
    RefusedError,
    ConnectError,
    "The platform refused the configuration at register.do (a bad signature, an unknown \
     app id, a certificate SN mismatch), or this client refused the platform's answer (its \
     signature does not verify with the configured platform key): PROTOCOL §3. Retrying \
     does not help (unless the configuration's retry_on_auth_error is set); fix the keys."
);
create_exception!(
    alipay_msg,
    ConnectTimeoutError,
    ConnectError,
    "No connection opened within the configuration's first_connect_timeout (seconds), \
     attempts and backoff included; the message names the last attempt's failure. Once a \
     connection has opened, the client reconnects for ever instead."
);
create_exception!(
    alipay_msg,
    ProxyError,
    AlipayMsgError,
    "An HTTP CONNECT proxy did not open the tunnel (RFC 9110 §9.3.6), from \
     alipay_msg.session.ConnectAnswer.feed: it refused (a status other than 2xx, e.g. 407 \
     Proxy Authentication Required when it wants credentials, 403 when its policy forbids \
     the target), closed the connection before answering, answered something that is not \
     HTTP/1.x, or sent 8192 bytes without ending its header section. The message is the core's (\"the \
     proxy refused the tunnel: 407 Proxy Authentication Required\"). Attributes: status \
     (int) and reason (str) of a refusal, else None. The clients hand it to the session \
     (Input.connect_failed), which retries and names it as the attempt's failure; a proxy \
     URL that cannot be used raises ConfigError instead."
);
create_exception!(
    alipay_msg,
    SendError,
    AlipayMsgError,
    "A PRODUCE (send) that failed or got no answer; one of the subclasses. A PRODUCE_ACK \
     that says FAIL is not an error: send returns it (ProduceAck.result says why)."
);
create_exception!(
    alipay_msg,
    NotConnectedError,
    SendError,
    "send while no websocket is open (between reconnects, or before the first connection). \
     Nothing was sent; try again once connected."
);
create_exception!(
    alipay_msg,
    TooManyPendingError,
    SendError,
    "The configuration's max_pending_sends PRODUCEs are still waiting for their \
     PRODUCE_ACK. Nothing was sent."
);
create_exception!(
    alipay_msg,
    ShuttingDownError,
    SendError,
    "send after shutdown started. Nothing was sent."
);
create_exception!(
    alipay_msg,
    InvalidMessageError,
    SendError,
    "The PRODUCE could not be built: an empty msg_api, a biz_content that is not the text of \
     one JSON object, a frame over the size limit, a signing failure (PROTOCOL §5). Nothing \
     was sent."
);
create_exception!(
    alipay_msg,
    SendTimeoutError,
    SendError,
    "No PRODUCE_ACK within the configuration's send_timeout (seconds). The platform may or \
     may not have the message."
);
create_exception!(
    alipay_msg,
    ConnectionLostError,
    SendError,
    "The connection closed before the PRODUCE_ACK arrived. The platform may or may not have \
     the message."
);
create_exception!(
    alipay_msg,
    UnknownDeliveryError,
    AlipayMsgError,
    "ClientSession.complete for a message the session does not track: already completed, \
     or forgotten when the session closed after shutdown_timeout."
);
create_exception!(
    alipay_msg,
    ClientClosedError,
    AlipayMsgError,
    "The client has shut down (or stopped on a fatal error): it sends and delivers nothing \
     any more."
);
create_exception!(
    alipay_msg,
    WindowError,
    AlipayMsgError,
    "The shared duplicate window's store could not answer (alipay_msg_core::window::\
     WindowError): Redis unreachable, slower than its timeout, or refusing the command. \
     A client turns it into a FAIL ack (or goes on with its local window, per \
     SharedWindowConfig.on_store_failure). The message never contains the Redis URL."
);

/// The exception for a configuration the core refuses.
pub(crate) fn config_error(e: CoreConfigError) -> PyErr {
    ConfigError::new_err(e.to_string())
}

/// The exception for a failed send, by its kind.
pub(crate) fn send_error(e: &CoreSendError) -> PyErr {
    let message = e.to_string();
    match e {
        CoreSendError::NotConnected => NotConnectedError::new_err(message),
        CoreSendError::TooManyPending { .. } => TooManyPendingError::new_err(message),
        CoreSendError::ShuttingDown => ShuttingDownError::new_err(message),
        CoreSendError::Invalid(_) => InvalidMessageError::new_err(message),
        CoreSendError::Timeout => SendTimeoutError::new_err(message),
        CoreSendError::ConnectionLost => ConnectionLostError::new_err(message),
        _ => SendError::new_err(message),
    }
}

/// The exception for why a session stopped on its own (`ClientSession::error`).
pub(crate) fn client_error(e: &ClientError) -> PyErr {
    let message = e.to_string();
    match e {
        ClientError::Refused(_) => RefusedError::new_err(message),
        ClientError::ConnectTimeout { .. } => ConnectTimeoutError::new_err(message),
        ClientError::Config(_) => ConfigError::new_err(message),
        ClientError::Send(e) => send_error(e),
        ClientError::Closed => ClientClosedError::new_err(message),
        _ => AlipayMsgError::new_err(message),
    }
}

/// The exception for a rejected notification: [`SignatureError`] when the signature
/// failed, [`MalformedError`] for everything else.
pub(crate) fn notify_error(e: NotifyError) -> PyErr {
    if e.is_signature_failure() {
        SignatureError::new_err(e.to_string())
    } else {
        MalformedError::new_err(e.to_string())
    }
}

/// The exception for a key that does not load.
pub(crate) fn key_error(e: KeyError) -> PyErr {
    InvalidKeyError::new_err(e.to_string())
}

/// The exception for a certificate file that cannot be used.
pub(crate) fn cert_error(e: CertError) -> PyErr {
    CertificateError::new_err(e.to_string())
}
