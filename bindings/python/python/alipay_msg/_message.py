"""The read-only fields of a verified platform message, shared by the asyncio client's
Message (alipay_msg.aio.Message) and the blocking client's (alipay_msg.Message)."""

from typing import TYPE_CHECKING, Any, Dict, Optional, Union

if TYPE_CHECKING:
    from ._native import Message as SessionMessage
    from .aio import Message as AsyncMessage


class MessageFields:
    """Each field read from ``self._message``: the message the class wraps (the native
    session's Message for the asyncio client, the asyncio Message for the blocking one).
    The wrapping class declares the ``_message`` slot and says how a message is
    answered."""

    __slots__ = ()

    _message: Union["SessionMessage", "AsyncMessage"]

    @property
    def msg_id(self) -> str:
        return self._message.msg_id

    @property
    def msg_api(self) -> str:
        return self._message.msg_api

    @property
    def app_id(self) -> str:
        return self._message.app_id

    @property
    def timestamp_ms(self) -> Optional[int]:
        return self._message.timestamp_ms

    @property
    def biz_content(self) -> Dict[str, Any]:
        return self._message.biz_content

    @property
    def biz_content_text(self) -> str:
        return self._message.biz_content_text
