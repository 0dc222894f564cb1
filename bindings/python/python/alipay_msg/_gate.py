"""The notification endpoint decision (PROTOCOL §10): NotifyGate and its verdicts."""

from dataclasses import dataclass, field
from typing import Any, Dict, Literal, Optional, Tuple, Union, cast

from . import _native
from ._native import MalformedError, NotifyClaim
from ._notification import Notification, _build, _Key, _platform_key, _raw_body, _rule

__all__ = [
    "FORM_CONTENT_TYPE",
    "DuplicateVerdict",
    "HandleVerdict",
    "NotifyClaim",
    "NotifyGate",
    "RefusedVerdict",
    "Verdict",
]

#: The content type the platform posts notifications with (PROTOCOL §10).
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class HandleVerdict:
    """A verified notification for this app, not handled before and not being handled:
    run the handler, then give the verdict back with ``gate.complete(verdict, success)``
    and answer what that returns (``"success"`` only when the handler succeeded).

    Attributes:
        notification: The verified, typed notification (TradeNotification,
            GatewayMessage or OtherNotification).
        claim: The claim on its ``notify_id`` (NotifyClaim); NotifyGate.complete gives
            it back. While it is held, the same ``notify_id`` is refused
            (``"in_progress"``).
    """

    notification: Notification
    claim: NotifyClaim = field(repr=False, compare=False)

    @property
    def notify_id(self) -> str:
        """The ``notify_id`` claimed (str)."""
        return self.claim.notify_id

    @property
    def immediate_response(self) -> None:
        """None: the answer waits for the handler (NotifyGate.complete gives it)."""
        return None


@dataclass(frozen=True)
class DuplicateVerdict:
    """A verified notification whose ``notify_id`` was already handled successfully:
    answer ``"success"`` at once, without running the handler again.

    Attributes:
        notify_id: The ``notify_id`` (str).
    """

    notify_id: str

    @property
    def immediate_response(self) -> Literal["success"]:
        """The answer: ``"success"``."""
        return "success"


@dataclass(frozen=True)
class RefusedVerdict:
    """Not accepted: answer ``"fail"`` (the platform re-sends later). Log the reason.

    Attributes:
        kind: Why, by name (str): ``"content_type"`` (the Content-Type is absent or not
            ``application/x-www-form-urlencoded``), ``"too_large"`` (the body is over
            64 KiB), ``"malformed"`` (the body cannot be checked, or lacks ``notify_id``
            or ``app_id``), ``"bad_signature"`` (it does not verify with the platform
            key: forged, altered, or signed under the other rule), ``"foreign_app_id"``
            (for another app), ``"stale"`` / ``"no_time"`` (outside the freshness
            window / no readable time while one is set), ``"in_progress"`` (the same
            ``notify_id`` is being handled right now), ``"busy"`` (``max_in_progress``
            notifications are being handled).
        message: The core's message (str): the reason with its details (quoted input
            cut to 64 characters, never key material).
    """

    kind: str
    message: str

    @property
    def immediate_response(self) -> Literal["fail"]:
        """The answer: ``"fail"``."""
        return "fail"

    @property
    def is_signature_failure(self) -> bool:
        """Whether the request was not shown to come from the platform (bad_signature)."""
        return self.kind == "bad_signature"

    def __str__(self) -> str:
        return self.message


#: What NotifyGate.check returns.
Verdict = Union[HandleVerdict, DuplicateVerdict, RefusedVerdict]


class NotifyGate:
    """The whole notification endpoint decision, from the Rust core (PROTOCOL §10): raw
    request body in, a Verdict out, with duplicate suppression by ``notify_id``.

    One gate per endpoint, made at start-up and shared by every worker thread (a lock
    inside; signatures are checked side by side, without the GIL). The rule, in order
    (the first that fails decides, as RefusedVerdict):

    1. the Content-Type is ``application/x-www-form-urlencoded`` (parameters such as
       ``charset`` allowed);
    2. the body is at most 64 KiB (and 256 parameters);
    3. its signature verifies with the platform key under ``rule``, and it has a
       ``notify_id`` and an ``app_id``;
    4. the ``app_id`` is ``app_id``;
    5. with a ``freshness`` window, ``notify_time`` (payment notifications, Beijing
       time) or ``utc_timestamp`` (gateway messages) is within it of the wall clock;
    6. a ``notify_id`` handled successfully within ``duplicate_max_age`` is a
       DuplicateVerdict (answer ``success`` without the handler); one being handled
       right now is refused (``"in_progress"``: answer ``fail``, the platform re-sends);
    7. anything else is a HandleVerdict: run the handler, then ``complete(verdict,
       success)``. Success remembers the ``notify_id``; failure releases it, so the
       platform's retry is handled again.

    A body whose signature fails never reaches the duplicate check: it can never be
    answered ``success``.

    Args:
        alipay_public_key: The platform public key: a PublicKey from load_public_key()
            or its text (PEM or bare base64).
        alipay_cert: Certificate mode instead: the platform public-key certificate
            (alipayCertPublicKey_RSA2.crt) as PEM text, or a PublicKey from
            load_cert_public_key().
        app_id: Our app id (str); notifications for another are refused.
        rule: ``"v1"`` (default; payment notifications, rsaCheckV1: the signed content
            leaves out ``sign`` and ``sign_type``) or ``"v2"`` (gateway messages that
            keep ``sign_type`` in it, rsaCheckV2).
        duplicate_capacity: How many handled ``notify_id`` are remembered (int, at least
            0; default 65 536); the oldest are forgotten first.
        duplicate_max_age: For how long, in seconds (float, default 90 000: 25 hours,
            the span over which the platform re-sends).
        freshness: None (default: off), or a window in seconds (float): refuse a
            notification whose time is further than that from now, either way. Signatures
            already prove the origin; if the platform's retries keep the first time, a
            window under 25 hours refuses the late retries of a notification that failed.
        max_in_progress: How many notifications may be handled at once (int, at least 1;
            default 1024); more are refused (``"busy"``).
        claim_timeout: After how many seconds a claim never given back to complete() is
            forgotten (float, default 600), so that a lost claim cannot block a
            ``notify_id`` for good.

    Raises:
        TypeError: Not exactly one of ``alipay_public_key`` and ``alipay_cert``, or a key
            of another type.
        ValueError: An unknown rule, an empty app_id, a count or duration out of range
            (durations more than 0 and at most 365 days).
        InvalidKeyError: The key text does not load. CertificateError: the certificate
            text does not load.
    """

    __slots__ = ("_gate",)

    def __init__(
        self,
        *,
        alipay_public_key: Optional[_Key] = None,
        alipay_cert: Optional[_Key] = None,
        app_id: str,
        rule: Literal["v1", "v2"] = "v1",
        duplicate_capacity: int = 65_536,
        duplicate_max_age: float = 90_000.0,
        freshness: Optional[float] = None,
        max_in_progress: int = 1024,
        claim_timeout: float = 600.0,
    ) -> None:
        key = _platform_key(alipay_public_key, alipay_cert)
        if not isinstance(app_id, str):
            raise TypeError(f"app_id must be a str, not {type(app_id).__name__}")
        self._gate = _native._NotifyGate(
            key,
            app_id,
            _rule(rule),
            duplicate_capacity,
            duplicate_max_age,
            freshness,
            max_in_progress,
            claim_timeout,
        )

    def check(
        self,
        body: bytes,
        *,
        content_type: Optional[str] = FORM_CONTENT_TYPE,
        now: Optional[float] = None,
        unix_ms: Optional[int] = None,
    ) -> Verdict:
        """Decide what to do with one notification request (steps 1–7 above).

        Pass the body exactly as received (Flask ``request.get_data()``, Django
        ``request.body``, Starlette/FastAPI ``await request.body()``), never the
        framework's parsed form: the signature covers the values decoded once in the
        notification's own charset. The signature check runs without the GIL.

        Args:
            body: The raw request body (bytes; bytearray and memoryview are copied).
            content_type: The request's ``Content-Type`` header (str), None when it has
                none (refused). Default: the form type, i.e. step 1 is not checked;
                pass the header to have it checked.
            now: ``time.monotonic()`` seconds (float); default: read now. For tests.
            unix_ms: The wall clock, milliseconds since the Unix epoch (int); default:
                read now. Used only by the freshness window.

        Returns:
            A HandleVerdict (run the handler, then complete()), a DuplicateVerdict
            (answer ``"success"``) or a RefusedVerdict (answer ``"fail"``):
            ``verdict.immediate_response`` is that answer, None for HandleVerdict.

        Raises:
            TypeError: ``body`` is not bytes (e.g. a str, already decoded).
            ValueError: ``now`` is not a finite number.

        Every problem with the request itself is a RefusedVerdict, not an exception.
        """
        raw = self._gate.check(_raw_body(body), content_type, now=now, unix_ms=unix_ms)
        if raw[0] == "handle":
            _, fields, claim = cast(Tuple[str, Dict[str, Any], NotifyClaim], raw)
            try:
                notification = _build(fields)
            except MalformedError as e:
                # Verified, but not a notification this package can type (an amount that
                # is not a decimal, a biz_content that is not a JSON object): refused,
                # and the claim released at once.
                self._gate.complete(claim, False, now=now)
                return RefusedVerdict("malformed", str(e))
            return HandleVerdict(notification, claim)
        if raw[0] == "duplicate":
            return DuplicateVerdict(cast(str, raw[1]))
        return RefusedVerdict(cast(str, raw[1]), cast(str, raw[2]))

    def complete(
        self, verdict: HandleVerdict, success: bool, *, now: Optional[float] = None
    ) -> Literal["success", "fail"]:
        """Give a HandleVerdict back with the handler's outcome and return the answer.

        Call it once per HandleVerdict, whatever happened (in a ``finally:``, or with
        ``success=False`` when the handler raised): a claim never given back holds its
        ``notify_id`` (refused as ``"in_progress"``) until ``claim_timeout``.

        Args:
            verdict: The HandleVerdict from this gate's check().
            success: Whether the handler stored the notification durably (bool).
            now: ``time.monotonic()`` seconds (float); default: read now. For tests.

        Returns:
            ``"success"`` when ``success`` (the ``notify_id`` is remembered: later
            deliveries are duplicates), else ``"fail"`` (released: the platform's retry
            is handled again). The HTTP response body, as text/plain.

        Raises:
            TypeError: ``verdict`` is not a HandleVerdict, or ``success`` not a bool.
            RuntimeError: The verdict was completed already.
            ValueError: The verdict is from another gate, or ``now`` is not finite.
        """
        if not isinstance(verdict, HandleVerdict):
            raise TypeError(
                f"complete takes the HandleVerdict from check(), not {type(verdict).__name__}"
            )
        answer = self._gate.complete(verdict.claim, success, now=now)
        return cast(Literal["success", "fail"], answer)

    @property
    def app_id(self) -> str:
        """Our app id (str)."""
        return self._gate.app_id

    @property
    def rule(self) -> Literal["v1", "v2"]:
        """The sign-content rule: ``"v1"`` or ``"v2"``."""
        return cast(Literal["v1", "v2"], self._gate.rule)

    @property
    def handled_len(self) -> int:
        """How many ``notify_id`` are remembered as handled (int)."""
        return self._gate.handled_len

    @property
    def in_progress_len(self) -> int:
        """How many notifications are being handled: claims not given back yet (int)."""
        return self._gate.in_progress_len

    def __repr__(self) -> str:
        return (
            f"<alipay_msg.NotifyGate app_id={self.app_id!r} rule={self.rule!r}"
            f" handled={self.handled_len} in_progress={self.in_progress_len}>"
        )
