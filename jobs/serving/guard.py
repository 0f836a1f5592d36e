"""What every request to the play server passes before any route sees it: the Host check and
the body cap.

Host: a page on another site can point its own name at 127.0.0.1 (DNS rebinding) and then read
this server as if it were its own origin; the browser still sends that name as `Host`. So only
requests addressed to a loopback name (127.0.0.1, localhost, [::1], any port, so a port-forward
works) or to a name the operator allowed are served; others get 403.

Body: each route takes at most so many bytes (`body_limit(method, path, content type)`, 0 for
routes that take none). The body is read here, up to the cap and no further, then handed to the
route: a declared Content-Length over the cap is refused before a byte is read, and a chunked
body as soon as it passes the cap, with 413. Ray Serve's HTTP proxy queues a request's body
until the replica answers, so answering early is what bounds it there too.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
BodyLimit = Callable[[str, str, str], int]  # (method, path, content type) -> max body bytes


def host_name(host: str) -> str:
    """The name part of a Host header, lower-cased: 'LocalHost:8000' -> 'localhost',
    '[::1]:8000' -> '[::1]'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.split(":", 1)[0]


class RequestGuard:
    """ASGI middleware: refuses a foreign Host (403) and a body over its route's cap (413)."""

    def __init__(self, app: ASGIApp, allowed_hosts: frozenset[str], body_limit: BodyLimit):
        self.app = app
        self.allowed_hosts = LOOPBACK_HOSTS | {host_name(h) for h in allowed_hosts}
        self.body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if host_name(host) not in self.allowed_hosts:
            await refuse(
                send,
                403,
                f"Host {host[:80]!r} is not served here: open the page at http://127.0.0.1:<port>/"
                " (or start genie play with --allowed-host for another name)",
            )
            return
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        limit = self.body_limit(scope["method"], scope["path"], content_type)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await refuse(send, 413, body_message(limit, f"body is {int(declared):,} bytes"))
            return
        body = bytearray()
        more = declared != "0" and ("transfer-encoding" in headers or declared.isdigit())
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await refuse(send, 413, body_message(limit, "body is over the limit"))
                return
        await self.app(scope, replay(bytes(body), receive), send)


def body_message(limit: int, what: str) -> str:
    if limit == 0:
        return f"{what}; this route takes no body"
    return f"{what}; the limit for this route is {limit:,} bytes"


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the already read body once, then passes through (disconnects)."""
    given = False

    async def receive_body() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_body


async def refuse(send: Send, status: int, message: str) -> None:
    """A JSON `{"error": message}` response, as every other refusal of the play server."""
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
