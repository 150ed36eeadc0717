"""The request size limit, as ASGI middleware: a body over ``max_bytes`` (``Content-Length`` or not,
chunked too) is answered 413 in the one error shape before any route sees it.

The body is read to the end (up to :data:`DRAIN_LIMIT`), so a client that sends all of it before
reading gets the 413 rather than a broken connection. ``on_too_large`` may keep the start of the
body (the events route stores it as a rejected event) and add fields to the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestration.api.errors import ApiError

#: Past this many bytes an over-large body is no longer read: the connection is closed after the 413.
DRAIN_LIMIT = 64 * 1024 * 1024

#: ``(scope, first bytes, bytes received) -> fields added to the error``.
TooLarge = Callable[[Scope, bytes, int], Awaitable[dict[str, Any]]]


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, on_too_large: TooLarge | None = None) -> None:
        self.app, self.max_bytes, self.on_too_large = app, max_bytes, on_too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, kept, more = 0, 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            room = self.max_bytes + 1 - kept
            if room > 0:  # keep no more than one byte past the limit
                chunks.append(chunk[:room])
                kept += min(room, len(chunk))
            more = bool(message.get("more_body")) and size <= DRAIN_LIMIT
        body = b"".join(chunks)
        if size > self.max_bytes:
            await self._refuse(scope, send, body[: self.max_bytes], size)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _refuse(self, scope: Scope, send: Send, prefix: bytes, size: int) -> None:
        shown = f"{size}" if size <= DRAIN_LIMIT else f"more than {DRAIN_LIMIT}"
        extra = await self.on_too_large(scope, prefix, size) if self.on_too_large else {}
        error = ApiError(
            413,
            "body_too_large",
            f"the request body has {shown} bytes, over the limit of {self.max_bytes} "
            "(CAMPAIGNFLOW_API_MAX_BODY_BYTES); send large content by reference, or raise the limit",
            "body",
            **extra,
        )
        response = error.response({"Connection": "close"})
        await response(scope, _no_receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over the buffered body once, then waits on the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
